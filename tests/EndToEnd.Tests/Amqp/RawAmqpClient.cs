using System.Buffers;
using System.Net.Sockets;
using Broker.Actors.Amqp.Content;
using Broker.Edge.Amqp;

namespace Broker.EndToEnd.Tests.Amqp;

/// <summary>A socket that speaks AMQP frames; reads are bounded by <see cref="Timeout"/>.</summary>
internal sealed class RawAmqpClient : IDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly ArrayBufferWriter<byte> _out = new();
    private byte[] _in = new byte[1 << 20];
    private int _filled;

    /// <summary>connection.tune as the server sent it.</summary>
    public ConnectionTune Tune { get; private set; } = null!;

    /// <summary>Connects and logs in; with <paramref name="open"/> false, stops after tune-ok (no connection.open).</summary>
    public static async Task<RawAmqpClient> OpenAsync(int port, ushort heartbeat = 0, uint frameMax = 131072, ushort channelMax = 0, bool open = true)
    {
        var client = new RawAmqpClient();
        await client._socket.ConnectAsync("127.0.0.1", port);
        await client._socket.SendAsync(AmqpProtocolHeader.Bytes.ToArray());
        Assert.IsType<ConnectionStart>(await client.ReadMethodAsync(0));
        await client.SendAsync(0, new ConnectionStartOk(FieldTable.Empty, "PLAIN", "\0guest\0guest"u8.ToArray(), "en_US"));
        client.Tune = Assert.IsType<ConnectionTune>(await client.ReadMethodAsync(0));
        await client.SendAsync(0, new ConnectionTuneOk(channelMax, frameMax, heartbeat));
        if (open)
        {
            await client.SendAsync(0, new ConnectionOpen("/"));
            Assert.IsType<ConnectionOpenOk>(await client.ReadMethodAsync(0));
        }
        return client;
    }

    /// <summary>
    /// A content header frame declaring <paramref name="bodySize"/> with no properties; the body frames are up to the caller.
    /// <code>
    /// type 2 | channel | size 14 | class 60 | weight 0 | body size (8) | flags 0 | 0xCE
    /// </code>
    /// </summary>
    public void WriteContentHeader(ushort channel, ulong bodySize)
    {
        var frame = _out.GetSpan(22);
        frame[0] = AmqpFrameType.Header;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(frame[1..], channel);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame[3..], 14);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(frame[7..], 60);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(frame[9..], 0);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(frame[11..], bodySize);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(frame[19..], 0);
        frame[21] = AmqpFrameReader.FrameEnd;
        _out.Advance(22);
    }

    /// <summary>One body frame carrying <paramref name="payload"/>.</summary>
    public void WriteBodyFrame(ushort channel, ReadOnlySpan<byte> payload)
    {
        var frame = _out.GetSpan(payload.Length + 8);
        frame[0] = AmqpFrameType.Body;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(frame[1..], channel);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame[3..], (uint)payload.Length);
        payload.CopyTo(frame[7..]);
        frame[7 + payload.Length] = AmqpFrameReader.FrameEnd;
        _out.Advance(payload.Length + 8);
    }

    public async Task SendAsync(ushort channel, AmqpMethod method)
    {
        AmqpFrameWriter.WriteMethod(_out, channel, method);
        await FlushAsync();
    }

    public async Task SendRawAsync(byte[] bytes, CancellationToken ct = default) => await _socket.SendAsync(bytes, ct);

    /// <summary>What was written to <see cref="Output"/> and not sent, taken out (to be sent many times with <see cref="SendRawAsync"/>).</summary>
    public byte[] TakeWritten()
    {
        var bytes = _out.WrittenMemory.ToArray();
        _out.Clear();
        return bytes;
    }

    public async Task FlushAsync()
    {
        await _socket.SendAsync(_out.WrittenMemory);
        _out.Clear();
    }

    public IBufferWriter<byte> Output => _out;

    /// <summary>basic.publish and its content (one header frame, the body in frames of at most 131072 bytes).</summary>
    public async Task PublishAsync(ushort channel, string exchange, string routingKey, string body, bool immediate = false)
    {
        AmqpFrameWriter.WriteMethod(_out, channel, new BasicPublish(exchange, routingKey, false, immediate));
        AmqpFrameWriter.WriteContent(_out, channel, BasicPropertiesCodec.Write(BasicProperties.Empty), System.Text.Encoding.UTF8.GetBytes(body), 131072);
        await FlushAsync();
    }

    /// <summary>The next method on <paramref name="channel"/>; for a method with content, the body that follows it too.</summary>
    public async Task<(AmqpMethod Method, string? Body)> ReadWithContentAsync(ushort channel)
    {
        var method = await ReadMethodAsync(channel) ?? throw new InvalidOperationException("the server closed the socket");
        if (!method.HasContent)
        {
            return (method, null);
        }
        while (await ReadFrameAsync() is { } frame)
        {
            // Test bodies are short and non-empty: one body frame.
            if (frame.Type == AmqpFrameType.Body && frame.Channel == channel)
            {
                return (method, System.Text.Encoding.UTF8.GetString(frame.Payload));
            }
        }
        throw new InvalidOperationException("the server closed the socket");
    }

    /// <summary>Fails when any frame but a heartbeat arrives on <paramref name="channel"/> within <paramref name="window"/> (used only to check absence).</summary>
    public async Task ExpectNothingOnAsync(ushort channel, TimeSpan window)
    {
        var until = DateTime.UtcNow + window;
        while (until - DateTime.UtcNow is { Ticks: > 0 } left)
        {
            var frame = await ReadFrameAsync(left);
            if (frame is null)
            {
                return;
            }
            if (frame.Value.Channel == channel && frame.Value.Type != AmqpFrameType.Heartbeat)
            {
                var what = frame.Value.Type == AmqpFrameType.Method ? AmqpMethodCodec.Decode(new ReadOnlySequence<byte>(frame.Value.Payload)).ToString() : "frame type " + frame.Value.Type;
                throw new InvalidOperationException($"unexpected {what} on channel {channel}");
            }
        }
    }

    /// <summary>The next frame, or null when the server closed the socket.</summary>
    public Task<(byte Type, ushort Channel, byte[] Payload)?> ReadFrameAsync() => ReadFrameAsync(null);

    /// <summary>
    /// The next frame; null when the server closed the socket or, with a <paramref name="window"/>, when
    /// nothing came within it. Without a window, waiting longer than <see cref="Timeout"/> is an error.
    /// </summary>
    private async Task<(byte Type, ushort Channel, byte[] Payload)?> ReadFrameAsync(TimeSpan? window)
    {
        using var cts = new CancellationTokenSource(window ?? Timeout);
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
            int n;
            try
            {
                n = await _socket.ReceiveAsync(_in.AsMemory(_filled), cts.Token);
            }
            catch (OperationCanceledException) when (window is not null)
            {
                return null;
            }
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
