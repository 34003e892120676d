using System.Buffers;
using System.Net.Sockets;
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
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    /// <summary>A socket that speaks AMQP frames; reads are bounded by <see cref="Timeout"/>.</summary>
    private sealed class RawClient : IDisposable
    {
        private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly ArrayBufferWriter<byte> _out = new();
        private byte[] _in = new byte[1 << 20];
        private int _filled;

        public static async Task<RawClient> OpenAsync(int port, ushort heartbeat = 0, uint frameMax = 131072, ushort channelMax = 0)
        {
            var client = new RawClient();
            await client._socket.ConnectAsync("127.0.0.1", port);
            await client._socket.SendAsync(AmqpProtocolHeader.Bytes.ToArray());
            Assert.IsType<ConnectionStart>(await client.ReadMethodAsync(0));
            await client.SendAsync(0, new ConnectionStartOk(FieldTable.Empty, "PLAIN", "\0guest\0guest"u8.ToArray(), "en_US"));
            Assert.IsType<ConnectionTune>(await client.ReadMethodAsync(0));
            await client.SendAsync(0, new ConnectionTuneOk(channelMax, frameMax, heartbeat));
            await client.SendAsync(0, new ConnectionOpen("/"));
            Assert.IsType<ConnectionOpenOk>(await client.ReadMethodAsync(0));
            return client;
        }

        public async Task SendAsync(ushort channel, AmqpMethod method)
        {
            AmqpFrameWriter.WriteMethod(_out, channel, method);
            await FlushAsync();
        }

        public async Task SendRawAsync(byte[] bytes) => await _socket.SendAsync(bytes);

        public async Task FlushAsync()
        {
            await _socket.SendAsync(_out.WrittenMemory);
            _out.Clear();
        }

        public IBufferWriter<byte> Output => _out;

        /// <summary>The next frame, or null when the server closed the socket.</summary>
        public async Task<(byte Type, ushort Channel, byte[] Payload)?> ReadFrameAsync()
        {
            using var cts = new CancellationTokenSource(Timeout);
            while (true)
            {
                var buffer = new ReadOnlySequence<byte>(_in, 0, _filled);
                if (AmqpFrameReader.TryRead(ref buffer, 0, out var frame) == AmqpFrameStatus.Complete)
                {
                    var result = (frame.Type, frame.Channel, frame.Payload.ToArray());
                    var used = _filled - (int)buffer.Length;
                    Buffer.BlockCopy(_in, used, _in, 0, _filled - used);
                    _filled -= used;
                    return result;
                }
                if (_filled == _in.Length)
                {
                    Array.Resize(ref _in, _in.Length * 2);
                }
                var n = await _socket.ReceiveAsync(_in.AsMemory(_filled), cts.Token);
                if (n == 0)
                {
                    return null;
                }
                _filled += n;
            }
        }

        /// <summary>The next method frame on <paramref name="channel"/>, skipping heartbeats; null when the socket closed.</summary>
        public async Task<AmqpMethod?> ReadMethodAsync(ushort channel)
        {
            while (await ReadFrameAsync() is { } frame)
            {
                if (frame.Type == AmqpFrameType.Method && frame.Channel == channel)
                {
                    return AmqpMethodCodec.Decode(new ReadOnlySequence<byte>(frame.Payload));
                }
            }
            return null;
        }

        public void Dispose() => _socket.Dispose();
    }

    [Fact]
    public async Task The_server_sends_heartbeats_and_closes_a_client_that_misses_two()
    {
        using var client = await RawClient.OpenAsync(fixture.Node.AmqpPort, heartbeat: 1);
        var started = DateTime.UtcNow;
        var heartbeats = 0;
        while (await client.ReadFrameAsync() is { } frame)
        {
            Assert.Equal(AmqpFrameType.Heartbeat, frame.Type);
            heartbeats++;
        }
        // The socket closed by itself: the client sent nothing for two intervals.
        Assert.True(heartbeats >= 1, "the server sent a heartbeat before closing");
        Assert.True(DateTime.UtcNow - started < Timeout);
    }

    [Fact]
    public async Task A_client_that_sends_heartbeats_stays_connected()
    {
        using var client = await RawClient.OpenAsync(fixture.Node.AmqpPort, heartbeat: 1);
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
        using var client = await RawClient.OpenAsync(fixture.Node.AmqpPort, frameMax: 4096);
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
        using var client = await RawClient.OpenAsync(fixture.Node.AmqpPort);
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
        using var client = await RawClient.OpenAsync(fixture.Node.AmqpPort);
        await client.SendAsync(7, new BasicQos(0, 10, false));
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal(AmqpReplyCode.ChannelError, close.ReplyCode);
    }

    [Fact]
    public async Task A_channel_above_the_negotiated_channel_max_is_refused()
    {
        using var client = await RawClient.OpenAsync(fixture.Node.AmqpPort, channelMax: 10);
        await client.SendAsync(10, ChannelOpen.Instance);
        Assert.IsType<ChannelOpenOk>(await client.ReadMethodAsync(10));
        await client.SendAsync(11, ChannelOpen.Instance);
        var close = Assert.IsType<ConnectionClose>(await client.ReadMethodAsync(0));
        Assert.Equal(AmqpReplyCode.ChannelError, close.ReplyCode);
    }

    [Fact]
    public async Task Garbage_after_the_handshake_closes_only_that_connection()
    {
        using var healthy = await RawClient.OpenAsync(fixture.Node.AmqpPort);
        var random = new Random(1234);
        for (var i = 0; i < 20; i++)
        {
            // With heartbeats on, bytes that leave the server waiting for the rest of a frame end in the missed-heartbeat close.
            using var client = await RawClient.OpenAsync(fixture.Node.AmqpPort, heartbeat: 1);
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
}
