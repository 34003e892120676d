using System.Net.Sockets;
using System.Text;
using Broker.Tests.Shared;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Broker.EndToEnd.Tests.Amqp;

/// <summary>RabbitMQ.Client 7 against one in-process node: the connection and channel behaviour of AMQP 0.9.1.</summary>
public sealed class AmqpProtocolTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    private int Port => fixture.Node.AmqpPort;

    private static string Name(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task A_wrong_protocol_header_gets_the_servers_header_and_the_socket_closes()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync("127.0.0.1", Port);
        await socket.SendAsync("AMQP\0\0\x0a\x00"u8.ToArray());
        var buffer = new byte[16];
        var read = 0;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read), cts.Token);
            if (n == 0)
            {
                break;
            }
            read += n;
        }
        Assert.Equal("AMQP\0\0\x09\x01"u8.ToArray(), buffer[..read]);
    }

    [Fact]
    public async Task Bad_credentials_are_refused_with_access_refused()
    {
        var ex = await Assert.ThrowsAnyAsync<Exception>(() => AmqpTestClient.ConnectAsync(Port, user: "guest", password: "wrong"));
        Assert.True(ex is AuthenticationFailureException or BrokerUnreachableException { InnerException: AuthenticationFailureException }, ex.ToString());
    }

    [Fact]
    public async Task An_unknown_vhost_is_refused_with_530()
    {
        var ex = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            var connection = await AmqpTestClient.ConnectAsync(Port, vhost: "other");
            throw new InvalidOperationException($"connected: open={connection.IsOpen} reason={connection.CloseReason}");
        });
        Assert.Contains("530", ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_published_message_keeps_every_property_and_header_type()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port, "props");
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        var headers = new Dictionary<string, object?>
        {
            ["string"] = Encoding.UTF8.GetBytes("text"),
            ["int"] = 42,
            ["long"] = 1L << 40,
            ["bool"] = true,
            ["double"] = 1.5,
            ["float"] = 2.5f,
            ["byte"] = (byte)7,
            ["short"] = (short)-3,
            ["decimal"] = 12.34m,
            ["timestamp"] = new AmqpTimestamp(1_700_000_000),
            ["nested"] = new Dictionary<string, object?> { ["inner"] = 1 },
            ["array"] = new List<object?> { 1, Encoding.UTF8.GetBytes("two") },
            ["void"] = null,
            ["binary"] = new BinaryTableValue([1, 2, 3]),
        };
        var props = new BasicProperties
        {
            ContentType = "application/json",
            ContentEncoding = "gzip",
            Headers = headers,
            DeliveryMode = DeliveryModes.Persistent,
            Priority = 5,
            CorrelationId = "corr",
            ReplyTo = "reply",
            Expiration = "60000",
            MessageId = "mid",
            Timestamp = new AmqpTimestamp(1_600_000_000),
            Type = "type",
            UserId = "guest",
            AppId = "app",
            ClusterId = "cluster",
        };
        await channel.BasicPublishAsync("", queue, false, props, "body"u8.ToArray());
        var got = await GetAsync(channel, queue);
        var p = got.BasicProperties;
        Assert.Equal("body", Encoding.UTF8.GetString(got.Body.Span));
        Assert.Equal(("application/json", "gzip", DeliveryModes.Persistent, (byte)5, "corr", "reply", "60000", "mid", 1_600_000_000L, "type", "guest", "app", "cluster"),
            (p.ContentType, p.ContentEncoding, p.DeliveryMode, p.Priority, p.CorrelationId, p.ReplyTo, p.Expiration, p.MessageId, p.Timestamp.UnixTime, p.Type, p.UserId, p.AppId, p.ClusterId));
        var h = p.Headers!;
        Assert.Equal("text", Encoding.UTF8.GetString((byte[])h["string"]!));
        Assert.Equal(42, h["int"]);
        Assert.Equal(1L << 40, h["long"]);
        Assert.Equal(true, h["bool"]);
        Assert.Equal(1.5, h["double"]);
        Assert.Equal(2.5f, h["float"]);
        Assert.Equal((byte)7, h["byte"]);
        Assert.Equal((short)-3, h["short"]);
        Assert.Equal(12.34m, h["decimal"]);
        Assert.Equal(new AmqpTimestamp(1_700_000_000), h["timestamp"]);
        Assert.Equal(1, ((IDictionary<string, object?>)h["nested"]!)["inner"]);
        var array = (IList<object?>)h["array"]!;
        Assert.Equal(1, array[0]);
        Assert.Equal("two", Encoding.UTF8.GetString((byte[])array[1]!));
        Assert.True(h.ContainsKey("void"));
        Assert.Null(h["void"]);
        Assert.Equal(new byte[] { 1, 2, 3 }, ((BinaryTableValue)h["binary"]!).Bytes);
    }

    [Fact]
    public async Task A_body_larger_than_frame_max_is_split_and_reassembled()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port, "big");
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        var body = new byte[300_000];
        Random.Shared.NextBytes(body);
        await channel.BasicPublishAsync("", queue, body);
        var got = await GetAsync(channel, queue);
        Assert.Equal(body, got.Body.ToArray());
    }

    [Fact]
    public async Task A_channel_error_closes_only_that_channel_and_the_connection_stays_usable()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port, "errors");
        var channel = await connection.CreateChannelAsync();
        var ex = await Assert.ThrowsAsync<OperationInterruptedException>(() => channel.QueueDeclarePassiveAsync(Name("missing")));
        Assert.Equal(404, ex.ShutdownReason!.ReplyCode);
        Assert.True(channel.IsClosed);
        Assert.True(connection.IsOpen);
        await using var again = await connection.CreateChannelAsync();
        var queue = (await again.QueueDeclareAsync(exclusive: true)).QueueName;
        await again.BasicPublishAsync("", queue, "still works"u8.ToArray());
        Assert.Equal("still works", Encoding.UTF8.GetString((await GetAsync(again, queue)).Body.Span));
    }

    [Fact]
    public async Task Redeclaring_an_exchange_with_another_type_is_a_406()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var exchange = Name("x");
        await channel.ExchangeDeclareAsync(exchange, ExchangeType.Direct, autoDelete: true);
        await using var second = await connection.CreateChannelAsync();
        var ex = await Assert.ThrowsAsync<OperationInterruptedException>(() => second.ExchangeDeclareAsync(exchange, ExchangeType.Fanout, autoDelete: true));
        Assert.Equal(406, ex.ShutdownReason!.ReplyCode);
        await channel.ExchangeDeleteAsync(exchange);
    }

    [Fact]
    public async Task Publishing_to_a_missing_exchange_closes_the_channel_with_404()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        var channel = await connection.CreateChannelAsync();
        await channel.BasicPublishAsync(Name("nowhere"), "k", "x"u8.ToArray());
        await Wait.UntilAsync(() => Task.FromResult(channel.IsClosed), TimeSpan.FromSeconds(10), "channel closed");
        Assert.Equal(404, channel.CloseReason!.ReplyCode);
        Assert.True(connection.IsOpen);
    }

    [Fact]
    public async Task An_exclusive_queue_is_locked_for_other_connections()
    {
        await using var owner = await AmqpTestClient.ConnectAsync(Port);
        await using var ownerChannel = await owner.CreateChannelAsync();
        var queue = Name("excl");
        await ownerChannel.QueueDeclareAsync(queue, durable: false, exclusive: true, autoDelete: false);
        await using var other = await AmqpTestClient.ConnectAsync(Port);
        await using var otherChannel = await other.CreateChannelAsync();
        var ex = await Assert.ThrowsAsync<OperationInterruptedException>(() => otherChannel.BasicConsumeAsync(queue, true, new RecordingConsumer(otherChannel)));
        Assert.Equal(405, ex.ShutdownReason!.ReplyCode);
    }

    [Fact]
    public async Task An_exclusive_queue_is_deleted_when_its_connection_closes()
    {
        var queue = Name("gone");
        await using (var owner = await AmqpTestClient.ConnectAsync(Port))
        {
            await using var channel = await owner.CreateChannelAsync();
            await channel.QueueDeclareAsync(queue, durable: false, exclusive: true, autoDelete: false);
        }
        await using var other = await AmqpTestClient.ConnectAsync(Port);
        await Wait.UntilAsync(async () =>
        {
            await using var probe = await other.CreateChannelAsync();
            try
            {
                await probe.QueueDeclarePassiveAsync(queue);
                return false;
            }
            catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
            {
                return true;
            }
        }, TimeSpan.FromSeconds(10), "exclusive queue deleted");
    }

    [Fact]
    public async Task A_mandatory_publish_with_no_route_is_returned()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.ConfirmChannelAsync();
        var returned = new TaskCompletionSource<ushort>(TaskCreationOptions.RunContinuationsAsynchronously);
        channel.BasicReturnAsync += (_, e) =>
        {
            returned.TrySetResult(e.ReplyCode);
            return Task.CompletedTask;
        };
        var ex = await Assert.ThrowsAnyAsync<PublishException>(() => channel.PublishTextAsync("amq.direct", Name("nobody"), "lost?", mandatory: true).AsTask());
        Assert.True(ex.IsReturn);
        Assert.Equal(312, await returned.Task.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Confirms_acknowledge_persistent_messages_in_a_durable_queue()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.ConfirmChannelAsync();
        var queue = Name("durable");
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        for (var i = 0; i < 200; i++)
        {
            await channel.PublishTextAsync("", queue, "m" + i, persistent: true);
        }
        var declared = await channel.QueueDeclarePassiveAsync(queue);
        Assert.Equal(200u, declared.MessageCount);
        await channel.QueueDeleteAsync(queue);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Acks_sent_one_by_one_right_before_the_channel_or_connection_closes_all_take_effect(bool closeConnection)
    {
        var queue = Name("acked");
        await using var keeper = await AmqpTestClient.ConnectAsync(Port);
        await using var keeperChannel = await keeper.CreateChannelAsync();
        await keeperChannel.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: false);
        for (var i = 0; i < 300; i++)
        {
            await keeperChannel.PublishTextAsync("", queue, "m" + i);
        }
        var connection = await AmqpTestClient.ConnectAsync(Port);
        var channel = await connection.CreateChannelAsync();
        await channel.BasicQosAsync(0, 1000, false);
        var consumer = new RecordingConsumer(channel);
        await channel.BasicConsumeAsync(queue, false, consumer);

        // One basic.ack per message, then the channel (or the whole connection) goes at once: the acks the node
        // gathers to send as one batch must reach the queue before the queue requeues what the channel held.
        for (var i = 0; i < 300; i++)
        {
            var d = consumer.Next();
            Assert.Equal("m" + i, d.Text);
            await channel.BasicAckAsync(d.Tag, false);
        }
        if (closeConnection)
        {
            await connection.CloseAsync();
        }
        else
        {
            await channel.CloseAsync();
        }
        await channel.DisposeAsync();
        await connection.DisposeAsync();

        // Once the queue holds nothing unacknowledged it has let go of the channel (a connection's death can reach
        // it before the last acks do; it requeues only after those): after that, nothing is back.
        using var admin = new HttpClient { BaseAddress = new Uri(fixture.Node.AdminUrl) };
        await Wait.UntilAsync(async () => await QueueCounts(admin, queue) is (_, 0, 0), TimeSpan.FromSeconds(10),
            "the queue to let go of the closed channel");
        Assert.Equal((0, 0, 0), await QueueCounts(admin, queue));
        Assert.Equal(0u, (await keeperChannel.QueueDeclarePassiveAsync(queue)).MessageCount);
        Assert.Null(await keeperChannel.BasicGetAsync(queue, true));
        await keeperChannel.QueueDeleteAsync(queue);
    }

    /// <summary>Ready, unacknowledged and consumers of one queue, from the admin API.</summary>
    private static async Task<(int Ready, int Unacked, int Consumers)> QueueCounts(HttpClient admin, string queue)
    {
        var text = await admin.GetStringAsync("/api/v1/amqp/queues?prefix=" + Uri.EscapeDataString(queue));
        var q = System.Text.Json.JsonDocument.Parse(text).RootElement.GetProperty("queues").EnumerateArray()
            .Single(e => e.GetProperty("name").GetString() == queue);
        return (q.GetProperty("messages_ready").GetInt32(), q.GetProperty("messages_unacknowledged").GetInt32(), q.GetProperty("consumers").GetInt32());
    }

    [Fact]
    public async Task Prefetch_limits_unacknowledged_deliveries_exactly()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        for (var i = 0; i < 5; i++)
        {
            await channel.PublishTextAsync("", queue, "m" + i);
        }
        await channel.BasicQosAsync(0, 2, false);
        var consumer = new RecordingConsumer(channel);
        await channel.BasicConsumeAsync(queue, false, consumer);
        var first = consumer.Next();
        var second = consumer.Next();
        Assert.Equal(("m0", "m1"), (first.Text, second.Text));
        consumer.ExpectNothing(TimeSpan.FromMilliseconds(500));
        await channel.BasicAckAsync(first.Tag, false);
        Assert.Equal("m2", consumer.Next().Text);
        consumer.ExpectNothing(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Consumers_of_one_queue_get_messages_round_robin()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        var a = new RecordingConsumer(channel);
        var b = new RecordingConsumer(channel);
        await channel.BasicConsumeAsync(queue, true, a);
        await channel.BasicConsumeAsync(queue, true, b);
        for (var i = 0; i < 10; i++)
        {
            await channel.PublishTextAsync("", queue, "m" + i);
        }
        var got = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            got.Add(a.Next().Text);
            got.Add(b.Next().Text);
        }
        Assert.Equal(10, got.Distinct().Count());
    }

    [Fact]
    public async Task A_nacked_message_is_requeued_and_redelivered()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        await channel.PublishTextAsync("", queue, "again");
        var consumer = new RecordingConsumer(channel);
        await channel.BasicConsumeAsync(queue, false, consumer);
        var first = consumer.Next();
        Assert.False(first.Redelivered);
        await channel.BasicNackAsync(first.Tag, false, requeue: true);
        var second = consumer.Next();
        Assert.True(second.Redelivered);
        Assert.Equal("again", second.Text);
        await channel.BasicRejectAsync(second.Tag, requeue: false);
        consumer.ExpectNothing(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Unacknowledged_deliveries_return_to_the_queue_when_the_consumers_connection_dies()
    {
        await using var keeper = await AmqpTestClient.ConnectAsync(Port);
        await using var keeperChannel = await keeper.CreateChannelAsync();
        var queue = Name("redeliver");
        await keeperChannel.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: false);
        await keeperChannel.PublishTextAsync("", queue, "one");
        var first = await AmqpTestClient.ConnectAsync(Port);
        var firstChannel = await first.CreateChannelAsync();
        var firstConsumer = new RecordingConsumer(firstChannel);
        await firstChannel.BasicConsumeAsync(queue, false, firstConsumer);
        Assert.False(firstConsumer.Next().Redelivered);
        first.Dispose(); // no close handshake: the socket just goes away
        var second = new RecordingConsumer(keeperChannel);
        await keeperChannel.BasicConsumeAsync(queue, false, second);
        var again = second.Next(TimeSpan.FromSeconds(15));
        Assert.True(again.Redelivered);
        Assert.Equal("one", again.Text);
        await keeperChannel.BasicAckAsync(again.Tag, false);
        await keeperChannel.QueueDeleteAsync(queue);
    }

    [Fact]
    public async Task Get_returns_messages_then_get_empty()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        await channel.PublishTextAsync("", queue, "a");
        await channel.PublishTextAsync("", queue, "b");
        var a = await GetAsync(channel, queue, noAck: false);
        Assert.Equal(1u, a.MessageCount);
        await channel.BasicAckAsync(a.DeliveryTag, false);
        Assert.Equal("b", Encoding.UTF8.GetString((await GetAsync(channel, queue)).Body.Span));
        Assert.Null(await channel.BasicGetAsync(queue, true));
    }

    [Fact]
    public async Task Topic_fanout_and_headers_exchanges_route_by_their_rules()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var star = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        var hash = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        var headers = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        var fanout = Name("fan");
        await channel.ExchangeDeclareAsync(fanout, ExchangeType.Fanout, autoDelete: true);
        await channel.QueueBindAsync(star, "amq.topic", "sensors.*.temp");
        await channel.QueueBindAsync(hash, "amq.topic", "sensors.#");
        await channel.QueueBindAsync(hash, fanout, "");
        await channel.QueueBindAsync(headers, "amq.headers", "", new Dictionary<string, object?> { ["x-match"] = "any", ["kind"] = "alarm", ["level"] = 3 });
        await channel.PublishTextAsync("amq.topic", "sensors.a.temp", "t1");
        await channel.PublishTextAsync("amq.topic", "sensors.a.b.temp", "t2");
        await channel.PublishTextAsync(fanout, "ignored", "f1");
        await channel.BasicPublishAsync("amq.headers", "", false, new BasicProperties { Headers = new Dictionary<string, object?> { ["level"] = 3 } }, "h1"u8.ToArray());
        await channel.BasicPublishAsync("amq.headers", "", false, new BasicProperties { Headers = new Dictionary<string, object?> { ["level"] = 4 } }, "h2"u8.ToArray());
        Assert.Equal(["t1"], await DrainAsync(channel, star));
        Assert.Equal(["t1", "t2", "f1"], await DrainAsync(channel, hash));
        Assert.Equal(["h1"], await DrainAsync(channel, headers));
    }

    [Fact]
    public async Task Deleting_a_queue_cancels_its_consumers_and_reports_its_message_count()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var queue = Name("del");
        await channel.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: false);
        await channel.PublishTextAsync("", queue, "x");
        await channel.PublishTextAsync("", queue, "y");
        await using var other = await connection.CreateChannelAsync();
        var consumer = new RecordingConsumer(other);
        await other.BasicQosAsync(0, 1, false);
        await other.BasicConsumeAsync(queue, false, consumer);
        consumer.Next();
        var ifUnused = await Assert.ThrowsAsync<OperationInterruptedException>(async () =>
        {
            await using var probe = await connection.CreateChannelAsync();
            await probe.QueueDeleteAsync(queue, ifUnused: true, ifEmpty: false);
        });
        Assert.Equal(406, ifUnused.ShutdownReason!.ReplyCode);
        var count = await channel.QueueDeleteAsync(queue);
        Assert.Equal(1u, count);
        await consumer.Cancelled.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Transactions_publish_on_commit_and_drop_on_rollback()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        await channel.TxSelectAsync();
        await channel.PublishTextAsync("", queue, "rolled back");
        await channel.TxRollbackAsync();
        await channel.PublishTextAsync("", queue, "committed");
        Assert.Equal(0u, (await channel.QueueDeclarePassiveAsync(queue)).MessageCount);
        await channel.TxCommitAsync();
        Assert.Equal(1u, (await channel.QueueDeclarePassiveAsync(queue)).MessageCount);
        var got = await GetAsync(channel, queue, noAck: false);
        Assert.Equal("committed", Encoding.UTF8.GetString(got.Body.Span));
        // An acknowledgement rolled back leaves the delivery unacknowledged: a second one in a commit takes effect.
        await channel.BasicAckAsync(got.DeliveryTag, false);
        await channel.TxRollbackAsync();
        await channel.BasicAckAsync(got.DeliveryTag, false);
        await channel.TxCommitAsync();
        await channel.CloseAsync();
        await using var check = await connection.CreateChannelAsync();
        Assert.Null(await check.BasicGetAsync(queue, true));
    }

    private static async Task<BasicGetResult> GetAsync(IChannel channel, string queue, bool noAck = true)
    {
        BasicGetResult? result = null;
        await Wait.UntilAsync(async () => (result = await channel.BasicGetAsync(queue, noAck)) is not null, TimeSpan.FromSeconds(10), $"a message in {queue}");
        return result!;
    }

    private static async Task<List<string>> DrainAsync(IChannel channel, string queue)
    {
        var texts = new List<string>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(2);
        while (DateTime.UtcNow < deadline)
        {
            var got = await channel.BasicGetAsync(queue, true);
            if (got is null)
            {
                if (texts.Count > 0)
                {
                    break;
                }
                await Task.Delay(50);
                continue;
            }
            texts.Add(Encoding.UTF8.GetString(got.Body.Span));
        }
        return texts;
    }
}

/// <summary>Queue arguments and lifetimes: TTL, max length, dead-lettering, auto-delete, exchange-to-exchange bindings.</summary>
public sealed class AmqpQueueFeatureTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    private int Port => fixture.Node.AmqpPort;

    private static string Name(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task An_expired_message_is_dead_lettered_with_an_x_death_header()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var dlx = Name("dlx");
        await channel.ExchangeDeclareAsync(dlx, ExchangeType.Fanout, autoDelete: true);
        var dead = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        await channel.QueueBindAsync(dead, dlx, "");
        var source = Name("ttl");
        await channel.QueueDeclareAsync(source, durable: false, exclusive: true, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-message-ttl"] = 100, ["x-dead-letter-exchange"] = dlx });
        await channel.PublishTextAsync("", source, "short-lived");

        var consumer = new RecordingConsumer(channel);
        await channel.BasicConsumeAsync(dead, true, consumer);
        var got = consumer.Next();
        Assert.Equal("short-lived", got.Text);
        var deaths = (IList<object?>)got.Properties.Headers!["x-death"]!;
        var death = (IDictionary<string, object?>)deaths[0]!;
        Assert.Equal("expired", Encoding.UTF8.GetString((byte[])death["reason"]!));
        Assert.Equal(source, Encoding.UTF8.GetString((byte[])death["queue"]!));
        Assert.Equal(0u, (await channel.QueueDeclarePassiveAsync(source)).MessageCount);
    }

    [Fact]
    public async Task A_rejected_message_goes_to_the_dead_letter_routing_key()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var parking = Name("parking");
        await channel.QueueDeclareAsync(parking, durable: false, exclusive: true, autoDelete: false);
        var work = Name("work");
        await channel.QueueDeclareAsync(work, durable: false, exclusive: true, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-dead-letter-exchange"] = "", ["x-dead-letter-routing-key"] = parking });
        await channel.PublishTextAsync("", work, "poison");
        var first = await channel.BasicGetAsync(work, false);
        await channel.BasicRejectAsync(first!.DeliveryTag, requeue: false);
        BasicGetResult? parked = null;
        await Wait.UntilAsync(async () => (parked = await channel.BasicGetAsync(parking, true)) is not null, TimeSpan.FromSeconds(10), "dead-lettered message");
        Assert.Equal("poison", Encoding.UTF8.GetString(parked!.Body.Span));
    }

    [Fact]
    public async Task Max_length_drops_the_oldest_messages()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var queue = Name("bounded");
        await channel.QueueDeclareAsync(queue, durable: false, exclusive: true, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-max-length"] = 3 });
        for (var i = 0; i < 5; i++)
        {
            await channel.PublishTextAsync("", queue, "m" + i);
        }
        var texts = new List<string>();
        while (await channel.BasicGetAsync(queue, true) is { } got)
        {
            texts.Add(Encoding.UTF8.GetString(got.Body.Span));
        }
        Assert.Equal(["m2", "m3", "m4"], texts);
    }

    [Fact]
    public async Task Max_length_with_reject_publish_nacks_the_publish_that_does_not_fit()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.ConfirmChannelAsync();
        var queue = Name("full");
        await channel.QueueDeclareAsync(queue, durable: false, exclusive: true, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-max-length"] = 2, ["x-overflow"] = "reject-publish" });
        await channel.PublishTextAsync("", queue, "m0");
        await channel.PublishTextAsync("", queue, "m1");
        var nack = await Assert.ThrowsAsync<PublishException>(async () => await channel.PublishTextAsync("", queue, "m2"));
        Assert.False(nack.IsReturn, "a nack, not a return");
        // The channel stays usable, and the queue kept the first two.
        Assert.Equal(2u, (await channel.QueueDeclarePassiveAsync(queue)).MessageCount);
        var first = await channel.BasicGetAsync(queue, autoAck: true);
        Assert.Equal("m0", Encoding.UTF8.GetString(first!.Body.Span));
        await channel.PublishTextAsync("", queue, "m3");
        var texts = new List<string>();
        while (await channel.BasicGetAsync(queue, true) is { } got)
        {
            texts.Add(Encoding.UTF8.GetString(got.Body.Span));
        }
        Assert.Equal(["m1", "m3"], texts);
    }

    [Fact]
    public async Task An_unknown_overflow_mode_is_a_406()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var ex = await Assert.ThrowsAsync<OperationInterruptedException>(() => channel.QueueDeclareAsync(Name("bad"), false, true, false,
            new Dictionary<string, object?> { ["x-max-length"] = 2, ["x-overflow"] = "drop-tail" }));
        Assert.Equal(406, ex.ShutdownReason!.ReplyCode);
    }

    [Fact]
    public async Task An_invalid_queue_argument_is_a_406()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var ex = await Assert.ThrowsAsync<OperationInterruptedException>(() => channel.QueueDeclareAsync(Name("bad"), false, true, false,
            new Dictionary<string, object?> { ["x-message-ttl"] = Encoding.UTF8.GetBytes("soon") }));
        Assert.Equal(406, ex.ShutdownReason!.ReplyCode);
    }

    [Fact]
    public async Task An_auto_delete_queue_goes_when_its_last_consumer_cancels()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var queue = Name("auto");
        await channel.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: true);
        var tag = await channel.BasicConsumeAsync(queue, true, new RecordingConsumer(channel));
        await channel.BasicCancelAsync(tag);
        await Wait.UntilAsync(async () =>
        {
            await using var probe = await connection.CreateChannelAsync();
            try
            {
                await probe.QueueDeclarePassiveAsync(queue);
                return false;
            }
            catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
            {
                return true;
            }
        }, TimeSpan.FromSeconds(10), "auto-delete queue deleted");
    }

    [Fact]
    public async Task Exchange_to_exchange_bindings_route_through()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var front = Name("front");
        var back = Name("back");
        await channel.ExchangeDeclareAsync(front, ExchangeType.Topic, autoDelete: false);
        await channel.ExchangeDeclareAsync(back, ExchangeType.Direct, autoDelete: false);
        await channel.ExchangeBindAsync(back, front, "orders.*");
        var queue = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        await channel.QueueBindAsync(queue, back, "orders.new");
        await channel.PublishTextAsync(front, "orders.new", "through");
        await channel.PublishTextAsync(front, "orders.old", "not bound at the back");
        BasicGetResult? got = null;
        await Wait.UntilAsync(async () => (got = await channel.BasicGetAsync(queue, true)) is not null, TimeSpan.FromSeconds(10), "routed message");
        Assert.Equal("through", Encoding.UTF8.GetString(got!.Body.Span));
        Assert.Null(await channel.BasicGetAsync(queue, true));
        await channel.ExchangeDeleteAsync(front);
        await channel.ExchangeDeleteAsync(back);
    }
}
