using Akka.Actor;
using Broker.Tests.Shared;
using RabbitMQ.Client;

namespace Broker.EndToEnd.Tests.Amqp;

/// <summary>One in-process node whose queue entity stops under a consumer (as when its node fails) and starts again.</summary>
public sealed class AmqpQueueRestartTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    private int Port => fixture.Node.AmqpPort;

    /// <summary>Stops the queue's entity without a hand-off; sharding starts it again (remembered entity) from its journal.</summary>
    private void StopQueueEntity(string queue) =>
        fixture.Node.Node.System.ActorSelection($"/system/sharding/amqp-queue/*/{Uri.EscapeDataString(queue)}").Tell(PoisonPill.Instance);

    [Fact]
    public async Task An_acknowledgement_of_a_delivery_from_before_a_queue_restart_settles_nothing_in_the_restarted_queue()
    {
        var queue = "restart-" + Guid.NewGuid().ToString("N")[..8];
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var publisher = await connection.ConfirmChannelAsync();
        await publisher.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        var consuming = await connection.CreateChannelAsync();
        var consumer = new RecordingConsumer(consuming);
        await consuming.BasicConsumeAsync(queue, false, consumer);
        // Transient: not journaled, so the restarted queue hands out the same sequence number to the next message.
        await publisher.PublishTextAsync("", queue, "before");
        var before = consumer.Next();
        Assert.Equal("before", before.Text);

        StopQueueEntity(queue);
        // The consumer registers again with the new incarnation by itself; what is published now reaches it.
        RecordingConsumer.Delivery? after = null;
        var published = 0;
        await Wait.UntilAsync(async () =>
        {
            await publisher.PublishTextAsync("", queue, "after");
            published++;
            try
            {
                after = consumer.Next(TimeSpan.FromMilliseconds(500));
                return true;
            }
            catch (TimeoutException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(30), "a delivery from the restarted queue");
        Assert.Equal("after", after!.Text);

        // The acknowledgement names a delivery of the previous incarnation: it must not take an "after" away.
        await consuming.BasicAckAsync(before.Tag, false);
        await consuming.CloseAsync();
        await using var check = await connection.CreateChannelAsync();
        var left = 0;
        while (await check.BasicGetAsync(queue, autoAck: true) is { } got)
        {
            Assert.Equal("after", System.Text.Encoding.UTF8.GetString(got.Body.Span));
            left++;
        }
        Assert.Equal(published, left);
    }

    [Fact]
    public async Task An_acknowledgement_of_a_basic_get_from_before_a_queue_restart_settles_nothing_in_the_restarted_queue()
    {
        var queue = "restart-get-" + Guid.NewGuid().ToString("N")[..8];
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var publisher = await connection.ConfirmChannelAsync();
        await publisher.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        var getting = await connection.CreateChannelAsync();
        // Transient: not journaled, so the restarted queue gives the same sequence number to the next message.
        await publisher.PublishTextAsync("", queue, "before");
        var before = await getting.BasicGetAsync(queue, autoAck: false);
        Assert.Equal("before", System.Text.Encoding.UTF8.GetString(before!.Body.Span));

        StopQueueEntity(queue);
        // Once the new incarnation runs, the same channel gets "after" from it, under that first sequence number.
        BasicGetResult? after = null;
        await Wait.UntilAsync(async () =>
        {
            await publisher.PublishTextAsync("", queue, "after");
            after = await getting.BasicGetAsync(queue, autoAck: false);
            return after is not null && System.Text.Encoding.UTF8.GetString(after.Body.Span) == "after";
        }, TimeSpan.FromSeconds(30), "a basic.get from the restarted queue");

        // The acknowledgement names a delivery of the previous incarnation: it must not settle "after", which goes
        // back to the queue when its channel closes unacknowledged.
        await getting.BasicAckAsync(before.DeliveryTag, false);
        await getting.CloseAsync();
        await using var check = await connection.CreateChannelAsync();
        var again = await check.BasicGetAsync(queue, autoAck: true);
        Assert.NotNull(again);
        Assert.Equal("after", System.Text.Encoding.UTF8.GetString(again.Body.Span));
        Assert.True(again.Redelivered, "it came back from the closed channel");
    }
}
