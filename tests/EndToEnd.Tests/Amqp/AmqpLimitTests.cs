using System.Net.Sockets;
using Broker.Actors.Amqp.Content;
using Broker.Edge.Amqp;
using Broker.Tests.Shared;
using RabbitMQ.Client;
using BasicProperties = Broker.Actors.Amqp.Content.BasicProperties;
using QueueDeclareOk = Broker.Edge.Amqp.QueueDeclareOk;

namespace Broker.EndToEnd.Tests.Amqp;

/// <summary>A node with the broker.amqp limits set low enough for a test to cross each of them.</summary>
public sealed class AmqpLimitsFixture : IAsyncLifetime
{
    public const ushort ChannelMax = 300;
    public const long MaxPendingContentBytes = 8 * 1024 * 1024;
    public const int MaxUnconfirmedPerChannel = 4;
    public const int MaxTxPublishes = 3;
    public const long MaxTxBytes = 2000;
    public const int MaxTableDepth = 4;

    public TestNode Node { get; private set; } = null!;

    public async Task InitializeAsync() => Node = await TestNode.StartAsync($$"""
        broker.amqp {
          channel-max = {{ChannelMax}}
          max-pending-content-bytes = {{MaxPendingContentBytes}}
          max-unconfirmed-per-channel = {{MaxUnconfirmedPerChannel}}
          max-tx-publishes = {{MaxTxPublishes}}
          max-tx-bytes = {{MaxTxBytes}}
          max-table-depth = {{MaxTableDepth}}
        }
        """);

    public async Task DisposeAsync()
    {
        await Node.DisposeAsync();
        Node.DeleteData();
    }
}

/// <summary>
/// Each broker.amqp bound crossed over a raw socket: the protocol's answer, and another client of the node
/// unaffected afterwards.
/// </summary>
public sealed class AmqpLimitTests(AmqpLimitsFixture fixture) : IClassFixture<AmqpLimitsFixture>
{
    private const int FramePayload = 131072 - 8;

    private int Port => fixture.Node.AmqpPort;

    /// <summary>A stock client on a fresh connection round-trips a body spanning several frames.</summary>
    private async Task AssertAnotherClientWorksAsync()
    {
        await using var connection = await AmqpTestClient.ConnectAsync(Port);
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        var body = new byte[3 * FramePayload + 17];
        Random.Shared.NextBytes(body);
        await channel.BasicPublishAsync("", queue, body);
        var deadline = DateTime.UtcNow + RawAmqpClient.Timeout;
        while (true)
        {
            if (await channel.BasicGetAsync(queue, autoAck: true) is { } got)
            {
                Assert.True(body.AsSpan().SequenceEqual(got.Body.Span), "the body came back intact");
                return;
            }
            Assert.True(DateTime.UtcNow < deadline, "the message reached its queue in time");
        }
    }

    private static async Task OpenChannelAsync(RawAmqpClient client, ushort number)
    {
        await client.SendAsync(number, ChannelOpen.Instance);
        Assert.IsType<ChannelOpenOk>(await client.ReadMethodAsync(number));
    }

    /// <summary>The next method on <paramref name="channel"/> that is not a publisher confirm.</summary>
    private static async Task<AmqpMethod?> ReadSkippingAcksAsync(RawAmqpClient client, ushort channel)
    {
        while (await client.ReadMethodAsync(channel) is { } method)
        {
            if (method is not BasicAck)
            {
                return method;
            }
        }
        return null;
    }

    [Fact]
    public async Task Declared_body_sizes_take_no_memory_and_unfinished_bodies_past_the_connection_bound_close_it_with_506()
    {
        const int channels = 200;
        var declared = (ulong)(16 * 1024 * 1024); // the default max-message-size: each header passes the size check
        using var client = await RawAmqpClient.OpenAsync(Port);
        for (ushort n = 1; n <= channels; n++)
        {
            AmqpFrameWriter.WriteMethod(client.Output, n, ChannelOpen.Instance);
        }
        await client.FlushAsync();
        for (ushort n = 1; n <= channels; n++)
        {
            Assert.IsType<ChannelOpenOk>(await client.ReadMethodAsync(n));
        }
        var before = GC.GetTotalMemory(forceFullCollection: true);
        for (ushort n = 1; n <= channels; n++)
        {
            AmqpFrameWriter.WriteMethod(client.Output, n, new BasicPublish("", "nowhere", false, false));
            client.WriteContentHeader(n, declared);
        }
        await client.FlushAsync();
        // The node reads a connection's frames in order: once this is answered, every header above was taken in.
        await OpenChannelAsync(client, channels + 1);
        var growth = GC.GetTotalMemory(forceFullCollection: true) - before;
        var declaredTotal = (long)declared * channels;
        Assert.True(growth < declaredTotal / 16, $"the heap grew by {growth} bytes for {declaredTotal} declared");

        // Now bodies arrive: a full frame on each channel, 200 x 128 KiB in all, so the 8 MiB bound is crossed
        // at about the 64th channel.
        var payload = new byte[FramePayload];
        var sender = Task.Run(async () =>
        {
            try
            {
                for (ushort n = 1; n <= channels; n++)
                {
                    client.WriteBodyFrame(n, payload);
                    await client.FlushAsync();
                }
            }
            catch (SocketException)
            {
                // The node closed the socket while the rest was still going out.
            }
        });
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal(AmqpReplyCode.ResourceError, close.ReplyCode);
        Assert.StartsWith("RESOURCE_ERROR", close.ReplyText, StringComparison.Ordinal);
        // The node no longer reads this socket and closes it a second after its close: the sender stops there.
        await sender.WaitAsync(RawAmqpClient.Timeout);
        await AssertAnotherClientWorksAsync();
    }

    [Fact]
    public async Task Channel_max_is_offered_in_tune_and_a_channel_above_it_closes_the_connection_with_530()
    {
        using var client = await RawAmqpClient.OpenAsync(Port);
        Assert.Equal(AmqpLimitsFixture.ChannelMax, client.Tune.ChannelMax);
        await OpenChannelAsync(client, AmqpLimitsFixture.ChannelMax);
        await client.SendAsync(AmqpLimitsFixture.ChannelMax + 1, ChannelOpen.Instance);
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal((AmqpReplyCode.NotAllowed, (ushort)20, (ushort)10), (close.ReplyCode, close.FailingClassId, close.FailingMethodId));
        await AssertAnotherClientWorksAsync();
    }

    [Fact]
    public async Task A_publish_on_channel_0_closes_the_connection_with_503_before_its_content_is_read()
    {
        using var client = await RawAmqpClient.OpenAsync(Port);
        AmqpFrameWriter.WriteMethod(client.Output, 0, new BasicPublish("", "q", false, false));
        client.WriteContentHeader(0, 1024 * 1024);
        await client.FlushAsync();
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal((AmqpReplyCode.CommandInvalid, (ushort)60, (ushort)40), (close.ReplyCode, close.FailingClassId, close.FailingMethodId));
        await AssertAnotherClientWorksAsync();
    }

    [Fact]
    public async Task Content_before_connection_open_closes_the_connection_with_504_without_waiting_for_its_body()
    {
        using var client = await RawAmqpClient.OpenAsync(Port, open: false);
        AmqpFrameWriter.WriteMethod(client.Output, 1, new BasicPublish("", "q", false, false));
        client.WriteContentHeader(1, 16 * 1024 * 1024);
        await client.FlushAsync();
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal(AmqpReplyCode.ChannelError, close.ReplyCode);
        Assert.Contains("before connection.open", close.ReplyText, StringComparison.Ordinal);
        await AssertAnotherClientWorksAsync();
    }

    [Fact]
    public async Task Unconfirmed_publishes_past_the_bound_close_the_channel_with_406()
    {
        using var client = await RawAmqpClient.OpenAsync(Port);
        await OpenChannelAsync(client, 1);
        var queue = Ids.New("unconfirmed");
        await client.SendAsync(1, new QueueDeclare(queue, false, true, false, false, false, FieldTable.Empty));
        Assert.IsType<QueueDeclareOk>(await client.ReadMethodAsync(1));
        await client.SendAsync(1, new ConfirmSelect(false));
        Assert.IsType<ConfirmSelectOk>(await client.ReadMethodAsync(1));
        // Persistent messages in a durable queue are confirmed only after a journal write: a burst in one
        // write has many more outstanding at once than the bound allows.
        var persistent = BasicPropertiesCodec.Write(new BasicProperties { DeliveryMode = 2 });
        for (var i = 0; i < 50 * AmqpLimitsFixture.MaxUnconfirmedPerChannel; i++)
        {
            AmqpFrameWriter.WriteMethod(client.Output, 1, new BasicPublish("", queue, false, false));
            AmqpFrameWriter.WriteContent(client.Output, 1, persistent, "m"u8, 131072);
        }
        await client.FlushAsync();
        var close = Assert.IsType<ChannelClose>(await ReadSkippingAcksAsync(client, 1));
        Assert.Equal((AmqpReplyCode.PreconditionFailed, (ushort)60, (ushort)40), (close.ReplyCode, close.FailingClassId, close.FailingMethodId));
        Assert.Contains("waiting for confirmation", close.ReplyText, StringComparison.Ordinal);
        await client.SendAsync(1, ChannelCloseOk.Instance);
        // Only the channel closed.
        await OpenChannelAsync(client, 2);
        await client.SendAsync(2, new QueueDelete(queue, false, false, false));
        Assert.IsType<QueueDeleteOk>(await client.ReadMethodAsync(2));
        await AssertAnotherClientWorksAsync();
    }

    [Fact]
    public async Task A_transaction_holding_more_publishes_than_the_bound_closes_the_channel_with_406()
    {
        using var client = await RawAmqpClient.OpenAsync(Port);
        await OpenChannelAsync(client, 1);
        await client.SendAsync(1, TxSelect.Instance);
        Assert.IsType<TxSelectOk>(await client.ReadMethodAsync(1));
        // Exactly the bound fits, and a commit starts the count again.
        for (var round = 0; round < 2; round++)
        {
            for (var i = 0; i < AmqpLimitsFixture.MaxTxPublishes; i++)
            {
                await client.PublishAsync(1, "", "nowhere", "m");
            }
            await client.SendAsync(1, TxCommit.Instance);
            Assert.IsType<TxCommitOk>(await client.ReadMethodAsync(1));
        }
        for (var i = 0; i <= AmqpLimitsFixture.MaxTxPublishes; i++)
        {
            await client.PublishAsync(1, "", "nowhere", "m");
        }
        var close = Assert.IsType<ChannelClose>(await client.ReadMethodAsync(1));
        Assert.Equal((AmqpReplyCode.PreconditionFailed, (ushort)60, (ushort)40), (close.ReplyCode, close.FailingClassId, close.FailingMethodId));
        await client.SendAsync(1, ChannelCloseOk.Instance);
        await OpenChannelAsync(client, 2);
        await AssertAnotherClientWorksAsync();
    }

    [Fact]
    public async Task A_transaction_holding_more_body_bytes_than_the_bound_closes_the_channel_with_406()
    {
        using var client = await RawAmqpClient.OpenAsync(Port);
        await OpenChannelAsync(client, 1);
        await client.SendAsync(1, TxSelect.Instance);
        Assert.IsType<TxSelectOk>(await client.ReadMethodAsync(1));
        var half = new string('x', (int)AmqpLimitsFixture.MaxTxBytes / 2);
        await client.PublishAsync(1, "", "nowhere", half);
        await client.PublishAsync(1, "", "nowhere", half);
        await client.PublishAsync(1, "", "nowhere", "one byte too many");
        var close = Assert.IsType<ChannelClose>(await client.ReadMethodAsync(1));
        Assert.Equal((AmqpReplyCode.PreconditionFailed, (ushort)60, (ushort)40), (close.ReplyCode, close.FailingClassId, close.FailingMethodId));
        await AssertAnotherClientWorksAsync();
    }

    /// <summary>A table nested <paramref name="depth"/> levels deep, the outer table counting as 1.</summary>
    private static FieldTable Nested(int depth)
    {
        var table = new FieldTable([new("leaf", 1)]);
        for (var level = 1; level < depth; level++)
        {
            table = new FieldTable([new("inner", table)]);
        }
        return table;
    }

    [Fact]
    public async Task A_method_with_tables_nested_deeper_than_the_bound_closes_the_connection_with_502()
    {
        using var client = await RawAmqpClient.OpenAsync(Port);
        await OpenChannelAsync(client, 1);
        var queue = await DeclareExclusiveAsync(client, 1);
        await client.SendAsync(1, new QueueBind(queue, "amq.direct", "k", false, Nested(AmqpLimitsFixture.MaxTableDepth)));
        Assert.IsType<QueueBindOk>(await client.ReadMethodAsync(1));
        await client.SendAsync(1, new QueueBind(queue, "amq.direct", "k2", false, Nested(AmqpLimitsFixture.MaxTableDepth + 1)));
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal((AmqpReplyCode.SyntaxError, (ushort)50, (ushort)20), (close.ReplyCode, close.FailingClassId, close.FailingMethodId));
        await AssertAnotherClientWorksAsync();
    }

    [Fact]
    public async Task Message_headers_nested_deeper_than_the_bound_close_the_connection_with_502()
    {
        using var client = await RawAmqpClient.OpenAsync(Port);
        await OpenChannelAsync(client, 1);
        var queue = await DeclareExclusiveAsync(client, 1);
        await client.SendAsync(1, new ConfirmSelect(false));
        Assert.IsType<ConfirmSelectOk>(await client.ReadMethodAsync(1));
        AmqpFrameWriter.WriteMethod(client.Output, 1, new BasicPublish("", queue, false, false));
        AmqpFrameWriter.WriteContent(client.Output, 1, BasicPropertiesCodec.Write(new BasicProperties { Headers = Nested(AmqpLimitsFixture.MaxTableDepth) }), "ok"u8, 131072);
        await client.FlushAsync();
        Assert.IsType<BasicAck>(await client.ReadMethodAsync(1));
        AmqpFrameWriter.WriteMethod(client.Output, 1, new BasicPublish("", queue, false, false));
        AmqpFrameWriter.WriteContent(client.Output, 1, BasicPropertiesCodec.Write(new BasicProperties { Headers = Nested(AmqpLimitsFixture.MaxTableDepth + 1) }), "deep"u8, 131072);
        await client.FlushAsync();
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal((AmqpReplyCode.SyntaxError, (ushort)60, (ushort)40), (close.ReplyCode, close.FailingClassId, close.FailingMethodId));
        await AssertAnotherClientWorksAsync();
    }

    private static async Task<string> DeclareExclusiveAsync(RawAmqpClient client, ushort channel)
    {
        await client.SendAsync(channel, new QueueDeclare("", false, false, true, false, false, FieldTable.Empty));
        return Assert.IsType<QueueDeclareOk>(await client.ReadMethodAsync(channel)).Queue;
    }
}
