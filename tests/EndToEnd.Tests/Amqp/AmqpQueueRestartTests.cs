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
}
