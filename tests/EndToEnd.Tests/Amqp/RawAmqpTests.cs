using System.Buffers;
using Broker.Actors.Amqp.Content;
using Broker.Edge.Amqp;
using Broker.Tests.Shared;

namespace Broker.EndToEnd.Tests.Amqp;

/// <summary>
/// Frame-level behaviour a library client never shows: heartbeats, frame limits and protocol errors,
/// driven over a plain socket with the broker's own codec.
/// </summary>
public sealed class RawAmqpTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    [Fact]
    public async Task The_server_sends_heartbeats_and_closes_a_client_that_misses_two()
    {
        using var client = await RawAmqpClient.OpenAsync(fixture.Node.AmqpPort, heartbeat: 1);
        var started = DateTime.UtcNow;
        var heartbeats = 0;
        while (await client.ReadFrameAsync() is { } frame)
        {
            Assert.Equal(AmqpFrameType.Heartbeat, frame.Type);
            heartbeats++;
        }
        // The socket closed by itself: the client sent nothing for two intervals.
        Assert.True(heartbeats >= 1, "the server sent a heartbeat before closing");
        Assert.True(DateTime.UtcNow - started < RawAmqpClient.Timeout);
    }

    [Fact]
    public async Task A_client_that_sends_heartbeats_stays_connected()
    {
        using var client = await RawAmqpClient.OpenAsync(fixture.Node.AmqpPort, heartbeat: 1);
        var until = DateTime.UtcNow.AddSeconds(3.5);
        while (DateTime.UtcNow < until)
        {
            AmqpFrameWriter.WriteHeartbeat(client.Output);
            await client.FlushAsync();
            Assert.NotNull(await client.ReadFrameAsync()); // the server's heartbeat, about once a second
        }
        await client.SendAsync(1, ChannelOpen.Instance);
        Assert.IsType<ChannelOpenOk>(await client.ReadMethodAsync(1));
    }

    [Fact]
    public async Task A_frame_larger_than_frame_max_closes_the_connection_with_501()
    {
        using var client = await RawAmqpClient.OpenAsync(fixture.Node.AmqpPort, frameMax: 4096);
        await client.SendAsync(1, ChannelOpen.Instance);
        Assert.IsType<ChannelOpenOk>(await client.ReadMethodAsync(1));
        // type 3 (body), channel 1, size 10,000: refused from its header, before the payload arrives.
        await client.SendRawAsync([3, 0, 1, 0, 0, 0x27, 0x10]);
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal(AmqpReplyCode.FrameError, close.ReplyCode);
    }

    [Fact]
    public async Task A_content_frame_without_a_publish_closes_the_connection_with_505()
    {
        using var client = await RawAmqpClient.OpenAsync(fixture.Node.AmqpPort);
        await client.SendAsync(1, ChannelOpen.Instance);
        Assert.IsType<ChannelOpenOk>(await client.ReadMethodAsync(1));
        AmqpFrameWriter.WriteContent(client.Output, 1, BasicPropertiesCodec.Write(BasicProperties.Empty), "x"u8, 131072);
        await client.FlushAsync();
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal(AmqpReplyCode.UnexpectedFrame, close.ReplyCode);
        await client.SendAsync(0, ConnectionCloseOk.Instance);
        Assert.Null(await client.ReadFrameAsync());
    }

    [Fact]
    public async Task A_method_on_a_channel_that_is_not_open_closes_the_connection_with_504()
    {
        using var client = await RawAmqpClient.OpenAsync(fixture.Node.AmqpPort);
        await client.SendAsync(7, new BasicQos(0, 10, false));
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal(AmqpReplyCode.ChannelError, close.ReplyCode);
    }

    [Fact]
    public async Task A_channel_above_the_channel_max_the_client_asked_for_is_refused_with_530()
    {
        using var client = await RawAmqpClient.OpenAsync(fixture.Node.AmqpPort, channelMax: 10);
        await client.SendAsync(10, ChannelOpen.Instance);
        Assert.IsType<ChannelOpenOk>(await client.ReadMethodAsync(10));
        await client.SendAsync(11, ChannelOpen.Instance);
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal((AmqpReplyCode.NotAllowed, (ushort)20, (ushort)10), (close.ReplyCode, close.FailingClassId, close.FailingMethodId));
    }

    [Fact]
    public async Task Garbage_after_the_handshake_closes_only_that_connection()
    {
        using var healthy = await RawAmqpClient.OpenAsync(fixture.Node.AmqpPort);
        var random = new Random(1234);
        for (var i = 0; i < 20; i++)
        {
            // With heartbeats on, bytes that leave the server waiting for the rest of a frame end in the missed-heartbeat close.
            using var client = await RawAmqpClient.OpenAsync(fixture.Node.AmqpPort, heartbeat: 1);
            var junk = new byte[random.Next(1, 400)];
            random.NextBytes(junk);
            await client.SendRawAsync(junk);
            // Whatever the bytes were, the connection ends (close method or closed socket) and the node stays up.
            while (await client.ReadFrameAsync() is { } frame)
            {
                if (frame.Type == AmqpFrameType.Method && frame.Channel == 0 &&
                    AmqpMethodCodec.Decode(new ReadOnlySequence<byte>(frame.Payload)) is ConnectionClose)
                {
                    break;
                }
            }
        }
        await healthy.SendAsync(1, ChannelOpen.Instance);
        Assert.IsType<ChannelOpenOk>(await healthy.ReadMethodAsync(1));
    }

    /// <summary>Opens channel <paramref name="number"/> and declares a server-named exclusive queue on it.</summary>
    private static async Task<string> OpenWithQueueAsync(RawAmqpClient client, ushort number)
    {
        await client.SendAsync(number, ChannelOpen.Instance);
        Assert.IsType<ChannelOpenOk>(await client.ReadMethodAsync(number));
        await client.SendAsync(number, new QueueDeclare("", false, false, true, false, false, FieldTable.Empty));
        return Assert.IsType<QueueDeclareOk>(await client.ReadMethodAsync(number)).Queue;
    }

    [Fact]
    public async Task Channel_flow_off_stops_deliveries_and_flow_on_resumes_them()
    {
        using var client = await RawAmqpClient.OpenAsync(fixture.Node.AmqpPort);
        var queue = await OpenWithQueueAsync(client, 1);
        await client.SendAsync(1, new ChannelFlow(false));
        Assert.Equal(new ChannelFlowOk(false), await client.ReadMethodAsync(1));
        await client.SendAsync(1, new BasicConsume(queue, "c1", false, false, false, false, FieldTable.Empty));
        Assert.Equal(new BasicConsumeOk("c1"), await client.ReadMethodAsync(1));
        // Published on another channel of the same connection: flow pauses only what channel 1 is sent.
        await client.SendAsync(2, ChannelOpen.Instance);
        Assert.IsType<ChannelOpenOk>(await client.ReadMethodAsync(2));
        for (var i = 0; i < 3; i++)
        {
            await client.PublishAsync(2, "", queue, "m" + i);
        }
        await client.ExpectNothingOnAsync(1, TimeSpan.FromMilliseconds(700));
        await client.SendAsync(1, new ChannelFlow(true));
        Assert.Equal(new ChannelFlowOk(true), await client.ReadMethodAsync(1));
        for (var i = 0; i < 3; i++)
        {
            var (method, body) = await client.ReadWithContentAsync(1);
            var deliver = Assert.IsType<BasicDeliver>(method);
            Assert.Equal(("c1", (ulong)(i + 1), false, "m" + i), (deliver.ConsumerTag, deliver.DeliveryTag, deliver.Redelivered, body));
        }
        // Paused again: a new publish waits until flow is back on.
        await client.SendAsync(1, new ChannelFlow(false));
        Assert.Equal(new ChannelFlowOk(false), await client.ReadMethodAsync(1));
        await client.PublishAsync(2, "", queue, "later");
        await client.ExpectNothingOnAsync(1, TimeSpan.FromMilliseconds(500));
        await client.SendAsync(1, new ChannelFlow(true));
        Assert.Equal(new ChannelFlowOk(true), await client.ReadMethodAsync(1));
        var (last, lastBody) = await client.ReadWithContentAsync(1);
        Assert.Equal((4ul, "later"), (Assert.IsType<BasicDeliver>(last).DeliveryTag, lastBody));
    }

    [Fact]
    public async Task Basic_recover_with_requeue_delivers_the_unacknowledged_messages_again_as_redelivered()
    {
        using var client = await RawAmqpClient.OpenAsync(fixture.Node.AmqpPort);
        var queue = await OpenWithQueueAsync(client, 1);
        await client.SendAsync(1, new BasicConsume(queue, "c1", false, false, false, false, FieldTable.Empty));
        Assert.Equal(new BasicConsumeOk("c1"), await client.ReadMethodAsync(1));
        await client.PublishAsync(1, "", queue, "a");
        await client.PublishAsync(1, "", queue, "b");
        await client.PublishAsync(1, "", queue, "c");
        var first = new List<(BasicDeliver Deliver, string? Body)>();
        for (var i = 0; i < 3; i++)
        {
            var (method, body) = await client.ReadWithContentAsync(1);
            first.Add((Assert.IsType<BasicDeliver>(method), body));
        }
        Assert.All(first, d => Assert.False(d.Deliver.Redelivered));
        Assert.Equal(["a", "b", "c"], first.Select(d => d.Body));
        // "a" is settled; "b" and "c" are not and come again.
        await client.SendAsync(1, new BasicAck(first[0].Deliver.DeliveryTag, false));
        await client.SendAsync(1, new BasicRecover(true));
        Assert.IsType<BasicRecoverOk>(await client.ReadMethodAsync(1));
        var again = new List<(BasicDeliver Deliver, string? Body)>();
        for (var i = 0; i < 2; i++)
        {
            var (method, body) = await client.ReadWithContentAsync(1);
            again.Add((Assert.IsType<BasicDeliver>(method), body));
        }
        Assert.Equal(["b", "c"], again.Select(d => d.Body).Order());
        Assert.All(again, d => Assert.True(d.Deliver.Redelivered));
        Assert.All(again, d => Assert.True(d.Deliver.DeliveryTag > 3, "a redelivery gets a new delivery tag"));
        await client.SendAsync(1, new BasicAck(0, true));
        await client.ExpectNothingOnAsync(1, TimeSpan.FromMilliseconds(300));
        // The tags from before the recover are no longer outstanding.
        await client.SendAsync(1, new BasicAck(first[1].Deliver.DeliveryTag, false));
        var close = Assert.IsType<ChannelClose>(await client.ReadMethodAsync(1));
        Assert.Equal(AmqpReplyCode.PreconditionFailed, close.ReplyCode);
    }

    [Fact]
    public async Task A_publish_with_immediate_closes_the_connection_with_540()
    {
        using var client = await RawAmqpClient.OpenAsync(fixture.Node.AmqpPort);
        var queue = await OpenWithQueueAsync(client, 1);
        await client.PublishAsync(1, "", queue, "now", immediate: true);
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal((AmqpReplyCode.NotImplemented, (ushort)60, (ushort)40), (close.ReplyCode, close.FailingClassId, close.FailingMethodId));
        Assert.StartsWith("NOT_IMPLEMENTED", close.ReplyText, StringComparison.Ordinal);
        await client.SendAsync(0, ConnectionCloseOk.Instance);
        Assert.Null(await client.ReadFrameAsync());
    }

    [Fact]
    public async Task Publishing_to_an_internal_exchange_closes_the_channel_with_403()
    {
        using var client = await RawAmqpClient.OpenAsync(fixture.Node.AmqpPort);
        var queue = await OpenWithQueueAsync(client, 1);
        var exchange = Ids.New("internal");
        await client.SendAsync(1, new ExchangeDeclare(exchange, "direct", false, false, false, true, false, FieldTable.Empty));
        Assert.IsType<ExchangeDeclareOk>(await client.ReadMethodAsync(1));
        await client.SendAsync(1, new QueueBind(queue, exchange, "k", false, FieldTable.Empty));
        Assert.IsType<QueueBindOk>(await client.ReadMethodAsync(1));
        await client.PublishAsync(1, exchange, "k", "not allowed");
        var close = Assert.IsType<ChannelClose>(await client.ReadMethodAsync(1));
        Assert.Equal((AmqpReplyCode.AccessRefused, (ushort)60, (ushort)40), (close.ReplyCode, close.FailingClassId, close.FailingMethodId));
        await client.SendAsync(1, ChannelCloseOk.Instance);
        // Only the channel closed: the connection goes on, and nothing reached the queue.
        await client.SendAsync(2, ChannelOpen.Instance);
        Assert.IsType<ChannelOpenOk>(await client.ReadMethodAsync(2));
        await client.SendAsync(2, new QueueDeclare(queue, true, false, false, false, false, FieldTable.Empty));
        Assert.Equal(0u, Assert.IsType<QueueDeclareOk>(await client.ReadMethodAsync(2)).MessageCount);
        await client.SendAsync(2, new ExchangeDelete(exchange, false, false));
        Assert.IsType<ExchangeDeleteOk>(await client.ReadMethodAsync(2));
    }
}
