using System.Text;
using Broker.Tests.Shared;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Broker.EndToEnd.Tests.Amqp;

/// <summary>RabbitMQ.Client 7 against one in-process node: channel-wide prefetch, queue management refusals and queue expiry.</summary>
public sealed class AmqpChannelFeatureTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(600);

    private int Port => fixture.Node.AmqpPort;

    /// <summary>Waits until <paramref name="count"/> reaches <paramref name="expected"/>, then checks it stays there for <see cref="Quiet"/>.</summary>
    private static async Task SettlesAtAsync(Func<int> count, int expected, string what)
    {
        await Wait.UntilAsync(() => count() >= expected, TimeSpan.FromSeconds(10), $"{what} to reach {expected}");
        var until = DateTime.UtcNow + Quiet;
        while (DateTime.UtcNow < until)
        {
            Assert.True(count() == expected, $"{what}: {count()} instead of {expected}");
            await Task.Delay(20);
        }
    }

    private static List<RecordingConsumer.Delivery> TakeAll(RecordingConsumer consumer)
    {
        var taken = new List<RecordingConsumer.Delivery>();
        while (consumer.Count > 0)
        {
            taken.Add(consumer.Next());
        }
        return taken;
    }

    private static async Task<string> QueueWithMessagesAsync(IChannel confirmChannel, int messages, IDictionary<string, object?>? arguments = null)
    {
        var queue = (await confirmChannel.QueueDeclareAsync(Ids.New("q"), durable: false, exclusive: false, autoDelete: false, arguments: arguments)).QueueName;
        for (var i = 0; i < messages; i++)
        {
            await confirmChannel.PublishTextAsync("", queue, "m" + i);
        }
        return queue;
    }

    [Fact]
    public async Task Global_prefetch_bounds_the_unacknowledged_deliveries_of_every_consumer_on_the_channel()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var setup = await connection.ConfirmChannelAsync();
        var queue = await QueueWithMessagesAsync(setup, 0);
        await using var channel = await connection.CreateChannelAsync();
        await channel.BasicQosAsync(0, 3, global: true);
        var a = new RecordingConsumer(channel);
        var b = new RecordingConsumer(channel);
        await channel.BasicConsumeAsync(queue, false, a);
        await channel.BasicConsumeAsync(queue, false, b);
        // Published once both consumers are there, so the queue offers messages to both in turn.
        for (var i = 0; i < 10; i++)
        {
            await setup.PublishTextAsync("", queue, "m" + i);
        }
        await SettlesAtAsync(() => a.Count + b.Count, 3, "unacked deliveries of both consumers");
        Assert.True(a.Count > 0 && b.Count > 0, $"both consumers share the window: a={a.Count} b={b.Count}");
        var held = TakeAll(a).Concat(TakeAll(b)).ToList();
        // Each ack makes room for exactly one more, whichever consumer it goes to.
        for (var round = 0; round < 3; round++)
        {
            await channel.BasicAckAsync(held[round].Tag, false);
            await SettlesAtAsync(() => a.Count + b.Count, 1, $"deliveries after ack {round + 1}");
            held.AddRange(TakeAll(a).Concat(TakeAll(b)));
        }
        Assert.Equal(6, held.Select(d => d.Text).Distinct().Count());
        await setup.QueueDeleteAsync(queue);
    }

    [Fact]
    public async Task A_consumer_takes_from_its_queue_no_more_than_the_channel_wide_prefetch()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var setup = await connection.ConfirmChannelAsync();
        var queue = await QueueWithMessagesAsync(setup, 10);
        await using var channel = await connection.CreateChannelAsync();
        await channel.BasicQosAsync(0, 100, global: false);
        await channel.BasicQosAsync(0, 2, global: true);
        var a = new RecordingConsumer(channel);
        await channel.BasicConsumeAsync(queue, false, a);
        await SettlesAtAsync(() => a.Count, 2, "deliveries under a channel limit of 2");
        // The rest stays ready in the queue (for consumers elsewhere), not held for this channel.
        Assert.Equal(8u, (await setup.QueueDeclarePassiveAsync(queue)).MessageCount);
        await setup.QueueDeleteAsync(queue);
    }

    [Fact]
    public async Task Per_consumer_and_global_prefetch_combine_and_the_tighter_one_binds()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var setup = await connection.ConfirmChannelAsync();

        // Per consumer 2, channel 3: two consumers could take 4, the channel stops them at 3.
        var first = await QueueWithMessagesAsync(setup, 10);
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.BasicQosAsync(0, 2, global: false);
            await channel.BasicQosAsync(0, 3, global: true);
            var a = new RecordingConsumer(channel);
            var b = new RecordingConsumer(channel);
            await channel.BasicConsumeAsync(queue: first, autoAck: false, consumer: a);
            await channel.BasicConsumeAsync(queue: first, autoAck: false, consumer: b);
            await SettlesAtAsync(() => a.Count + b.Count, 3, "unacked deliveries under a channel limit of 3");
            Assert.True(a.Count <= 2 && b.Count <= 2, $"each consumer keeps to 2: a={a.Count} b={b.Count}");
            var fromA = TakeAll(a);
            _ = TakeAll(b);
            // An ack of a's frees a slot of the channel and one of a's own.
            await channel.BasicAckAsync(fromA[0].Tag, false);
            await SettlesAtAsync(() => a.Count + b.Count, 1, "deliveries after one ack");
        }

        // Per consumer 1, channel 3: the consumer limit binds first, 2 in all.
        var second = await QueueWithMessagesAsync(setup, 10);
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.BasicQosAsync(0, 3, global: true);
            await channel.BasicQosAsync(0, 1, global: false);
            var a = new RecordingConsumer(channel);
            var b = new RecordingConsumer(channel);
            await channel.BasicConsumeAsync(queue: second, autoAck: false, consumer: a);
            await channel.BasicConsumeAsync(queue: second, autoAck: false, consumer: b);
            await SettlesAtAsync(() => a.Count + b.Count, 2, "unacked deliveries under a consumer limit of 1");
            Assert.Equal((1, 1), (a.Count, b.Count));
        }
        await setup.QueueDeleteAsync(first);
        await setup.QueueDeleteAsync(second);
    }

    [Fact]
    public async Task Purge_reports_how_many_messages_it_removed()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.ConfirmChannelAsync();
        var queue = await QueueWithMessagesAsync(channel, 3);
        Assert.Equal(3u, await channel.QueuePurgeAsync(queue));
        Assert.Null(await channel.BasicGetAsync(queue, true));
        Assert.Equal(0u, await channel.QueuePurgeAsync(queue));
        await channel.QueueDeleteAsync(queue);
    }

    [Fact]
    public async Task Delete_if_empty_refuses_a_queue_with_messages_with_406_and_keeps_it()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.ConfirmChannelAsync();
        var queue = await QueueWithMessagesAsync(channel, 2);
        var probe = await connection.CreateChannelAsync();
        var ex = await Assert.ThrowsAsync<OperationInterruptedException>(() => probe.QueueDeleteAsync(queue, ifUnused: false, ifEmpty: true));
        Assert.Equal(406, ex.ShutdownReason!.ReplyCode);
        Assert.True(probe.IsClosed);
        Assert.Equal(2u, (await channel.QueueDeclarePassiveAsync(queue)).MessageCount);
        Assert.Equal(2u, await channel.QueuePurgeAsync(queue));
        Assert.Equal(0u, await channel.QueueDeleteAsync(queue, ifUnused: false, ifEmpty: true));
    }

    [Fact]
    public async Task A_server_named_queue_is_named_amq_gen()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var first = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        var second = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        Assert.StartsWith("amq.gen-", first, StringComparison.Ordinal);
        Assert.StartsWith("amq.gen-", second, StringComparison.Ordinal);
        Assert.NotEqual(first, second);
        Assert.Equal(first, (await channel.QueueDeclarePassiveAsync(first)).QueueName);
    }

    [Fact]
    public async Task An_exclusive_consumer_refuses_other_consumers_with_403_and_is_refused_next_to_one()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var queue = Ids.New("excl-consume");
        await channel.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: false);
        await channel.BasicConsumeAsync(queue, true, "owner", false, true, null, new RecordingConsumer(channel));

        await using var other = await AmqpTestClient.ConnectAsync(Port);
        var refused = await other.CreateChannelAsync();
        var ex = await Assert.ThrowsAsync<OperationInterruptedException>(() => refused.BasicConsumeAsync(queue, true, new RecordingConsumer(refused)));
        Assert.Equal(403, ex.ShutdownReason!.ReplyCode);
        Assert.StartsWith("ACCESS_REFUSED", ex.ShutdownReason.ReplyText, StringComparison.Ordinal);
        Assert.True(other.IsOpen);

        // Once the exclusive consumer is gone a plain one may come, and then an exclusive one is refused.
        await channel.BasicCancelAsync("owner");
        await using var plainChannel = await other.CreateChannelAsync();
        await plainChannel.BasicConsumeAsync(queue, true, new RecordingConsumer(plainChannel));
        var second = await connection.CreateChannelAsync();
        var ex2 = await Assert.ThrowsAsync<OperationInterruptedException>(() =>
            second.BasicConsumeAsync(queue, true, "wants-all", false, true, null, new RecordingConsumer(second)));
        Assert.Equal(403, ex2.ShutdownReason!.ReplyCode);
        await channel.QueueDeleteAsync(queue);
    }

    [Fact]
    public async Task A_queue_with_x_expires_is_deleted_once_unused_for_that_long()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var queue = Ids.New("expires");
        var declaredAt = DateTime.UtcNow;
        await channel.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-expires"] = 500 });
        await using var probe = await connection.ConfirmChannelAsync();
        await UntilGoneAsync(probe, queue, "the unused queue to expire");
        Assert.True(DateTime.UtcNow - declaredAt >= TimeSpan.FromMilliseconds(500), "not deleted before its expiry");
        var check = await connection.CreateChannelAsync();
        var ex = await Assert.ThrowsAsync<OperationInterruptedException>(() => check.QueueDeclarePassiveAsync(queue));
        Assert.Equal(404, ex.ShutdownReason!.ReplyCode);
    }

    [Fact]
    public async Task A_queue_with_x_expires_stays_while_it_has_a_consumer()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var queue = Ids.New("expires-used");
        await channel.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-expires"] = 300 });
        var consumer = new RecordingConsumer(channel);
        var tag = await channel.BasicConsumeAsync(queue, true, consumer);
        // Several expiry periods pass with the consumer there; the queue keeps taking (routed, confirmed) messages.
        var until = DateTime.UtcNow.AddMilliseconds(1500);
        await using var publisher = await connection.ConfirmChannelAsync();
        var sent = 0;
        while (DateTime.UtcNow < until)
        {
            await publisher.PublishTextAsync("", queue, "m" + sent, mandatory: true);
            Assert.Equal("m" + sent, consumer.Next().Text);
            sent++;
        }
        await channel.BasicCancelAsync(tag);
        await UntilGoneAsync(publisher, queue, "the queue to expire once its consumer left");
    }

    /// <summary>
    /// Waits until <paramref name="queue"/> is gone, probing with mandatory publishes on a confirm channel, which
    /// (unlike a declare) do not count as use: a return means no queue.
    /// </summary>
    private static Task UntilGoneAsync(IChannel confirmChannel, string queue, string what) =>
        Wait.UntilAsync(async () =>
        {
            try
            {
                await confirmChannel.PublishTextAsync("", queue, "probe", mandatory: true);
                return false;
            }
            catch (PublishException ex) when (ex.IsReturn)
            {
                return true;
            }
        }, TimeSpan.FromSeconds(15), what);
}

/// <summary>A node that accepts message bodies of at most 1024 bytes.</summary>
public sealed class AmqpChannelFeatureSizeLimitTests : IAsyncLifetime
{
    private const int MaxMessageSize = 1024;
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync($"broker.amqp.max-message-size = {MaxMessageSize}");

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    [Fact]
    public async Task A_body_over_the_max_message_size_closes_only_its_channel_with_406()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(_node.AmqpPort);
        await using var keeper = await connection.CreateChannelAsync();
        var queue = (await keeper.QueueDeclareAsync(exclusive: true)).QueueName;
        var atLimit = new byte[MaxMessageSize];
        Array.Fill(atLimit, (byte)'a');
        await keeper.BasicPublishAsync("", queue, atLimit);

        var publisher = await connection.CreateChannelAsync();
        // Several body frames: the broker must skip them all to stay in step with the connection.
        var tooBig = new byte[300_000];
        await publisher.BasicPublishAsync("", queue, tooBig);
        await Wait.UntilAsync(() => publisher.IsClosed, TimeSpan.FromSeconds(10), "the publishing channel to close");
        Assert.Equal(406, publisher.CloseReason!.ReplyCode);
        Assert.StartsWith("PRECONDITION_FAILED", publisher.CloseReason.ReplyText, StringComparison.Ordinal);
        Assert.True(connection.IsOpen);

        await keeper.BasicPublishAsync("", queue, "after"u8.ToArray());
        var got = await keeper.BasicGetAsync(queue, true);
        Assert.Equal(atLimit, got!.Body.ToArray());
        Assert.Equal("after", Encoding.UTF8.GetString((await keeper.BasicGetAsync(queue, true))!.Body.Span));
        Assert.Null(await keeper.BasicGetAsync(queue, true));
        await using var fresh = await connection.CreateChannelAsync();
        Assert.Equal(queue, (await fresh.QueueDeclarePassiveAsync(queue)).QueueName);
    }
}
