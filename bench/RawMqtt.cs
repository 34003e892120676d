using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Broker.Bench;

/// <summary>The CONNACK of a raw connect: session present flag and return (3.1.1) or reason (5) code.</summary>
internal readonly record struct RawConnAck(bool SessionPresent, byte Code, ushort ReceiveMaximum);

/// <summary>
/// A lean MQTT 3.1.1 / 5.0 client on a raw socket for the connection-scale scenarios: hand-encoded CONNECT, SUBSCRIBE,
/// PUBLISH, PUBACK and DISCONNECT, packets read from a small buffer, every wait bounded by a deadline. It holds a socket
/// and a 256-byte buffer per connection and no task while idle, so the generator costs little next to the broker.
/// </summary>
internal sealed class RawMqttClient : IDisposable
{
    /// <summary>Bound of every single operation (TCP connect, CONNACK, SUBACK, PUBACK, a queued PUBLISH).</summary>
    public static readonly TimeSpan OpTimeout = TimeSpan.FromSeconds(10);

    private readonly Socket _socket;
    private byte[] _buf = new byte[256];
    private int _start;
    private int _end;

    private RawMqttClient(Socket socket, byte level)
    {
        _socket = socket;
        Level = level;
    }

    /// <summary>4 = MQTT 3.1.1, 5 = MQTT 5.0.</summary>
    public byte Level { get; }

    public static byte LevelOf(string protocol) => protocol == "5" ? (byte)5 : (byte)4;

    /// <summary>
    /// Opens a TCP connection (bound to <paramref name="local"/> first when given), sends CONNECT and reads the CONNACK.
    /// Throws on refusal (code != 0), close or deadline; the socket is closed then.
    /// </summary>
    public static async Task<(RawMqttClient Client, RawConnAck Ack)> ConnectAsync(IPEndPoint remote, IPAddress? local, byte level,
        string clientId, bool clean, uint sessionExpiry, ushort keepAlive, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var c = new RawMqttClient(socket, level);
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(OpTimeout);
            if (local is not null)
            {
                // IP_BIND_ADDRESS_NO_PORT (24): the port is picked at connect time by the whole 4-tuple, not reserved by bind.
                try
                {
                    socket.SetRawSocketOption(0, 24, [1, 0, 0, 0]);
                }
                catch (SocketException)
                {
                    // Not Linux: bind reserves a port per address, still plenty per address.
                }
                socket.Bind(new IPEndPoint(local, 0));
            }
            await socket.ConnectAsync(remote, cts.Token).ConfigureAwait(false);
            await c.SendAsync(EncodeConnect(level, clientId, clean, sessionExpiry, keepAlive), cts.Token).ConfigureAwait(false);
            var (header, body) = await c.ReadPacketAsync(cts.Token).ConfigureAwait(false);
            if (header != 0x20 || body.Count < 2)
            {
                throw new IOException($"{clientId}: expected CONNACK, got packet 0x{header:X2}");
            }
            var ack = new RawConnAck((body[0] & 1) == 1, body[1], level == 5 ? ReceiveMaximumOf(body) : (ushort)0);
            if (ack.Code != 0)
            {
                throw new IOException($"{clientId}: CONNACK code 0x{ack.Code:X2}");
            }
            return (c, ack);
        }
        catch
        {
            c.Dispose();
            throw;
        }
    }

    /// <summary>SUBSCRIBE to one filter and wait for its SUBACK; returns the granted QoS / reason code.</summary>
    public async Task<byte> SubscribeAsync(string filter, int qos, ushort packetId, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(OpTimeout);
        await SendAsync(EncodeSubscribe(Level, packetId, filter, qos), cts.Token).ConfigureAwait(false);
        while (true)
        {
            var (header, body) = await ReadPacketAsync(cts.Token).ConfigureAwait(false);
            if (header != 0x90 || body.Count < 3 || BinaryPrimitives.ReadUInt16BigEndian(body) != packetId)
            {
                continue; // anything else (a retained or queued PUBLISH) is not what we wait for
            }
            var at = 2;
            if (Level == 5)
            {
                var props = ReadVarInt(body, ref at);
                at += props;
            }
            return at < body.Count ? body[at] : (byte)0x80;
        }
    }

    public Task SendPublishAsync(string topic, int qos, ushort packetId, ReadOnlySpan<byte> payload, CancellationToken ct) =>
        SendAsync(EncodePublish(Level, topic, qos, packetId, payload), ct);

    public Task SendPubAckAsync(ushort packetId, CancellationToken ct) =>
        SendAsync(new byte[] { 0x40, 0x02, (byte)(packetId >> 8), (byte)packetId }, ct);

    /// <summary>Waits for the next PUBLISH (skipping other packets); returns its topic, QoS and packet id.</summary>
    public async Task<(string Topic, int Qos, ushort PacketId)> ReadPublishAsync(CancellationToken ct)
    {
        while (true)
        {
            var (header, body) = await ReadPacketAsync(ct).ConfigureAwait(false);
            if ((header & 0xF0) != 0x30)
            {
                continue;
            }
            var qos = (header >> 1) & 3;
            var topicLength = BinaryPrimitives.ReadUInt16BigEndian(body);
            var topic = Encoding.UTF8.GetString(body.AsSpan(2, topicLength));
            var id = qos > 0 ? BinaryPrimitives.ReadUInt16BigEndian(body.AsSpan(2 + topicLength)) : (ushort)0;
            return (topic, qos, id);
        }
    }

    /// <summary>DISCONNECT (best effort, 2 s at most), then close. MQTT 5: a session expiry given here replaces the CONNECT's.</summary>
    public async Task DisconnectAsync(uint? sessionExpiry = null)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            byte[] packet = Level == 5 && sessionExpiry is uint e
                ? [0xE0, 0x07, 0x00, 0x05, 0x11, (byte)(e >> 24), (byte)(e >> 16), (byte)(e >> 8), (byte)e]
                : [0xE0, 0x00];
            await SendAsync(packet, cts.Token).ConfigureAwait(false);
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException or IOException)
        {
            // Best effort: the connection may be gone already.
        }
        finally
        {
            Dispose();
        }
    }

    /// <summary>False once the broker closed the connection (readable with nothing to read) or it was disposed.</summary>
    public bool IsOpen()
    {
        try
        {
            return !(_socket.Poll(0, SelectMode.SelectRead) && _socket.Available == 0);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    public void Dispose() => _socket.Dispose();

    private async Task SendAsync(byte[] packet, CancellationToken ct)
    {
        var sent = 0;
        while (sent < packet.Length)
        {
            sent += await _socket.SendAsync(packet.AsMemory(sent), SocketFlags.None, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Reads one packet: the fixed header byte and the body (valid until the next read).</summary>
    public async Task<(byte Header, ArraySegment<byte> Body)> ReadPacketAsync(CancellationToken ct)
    {
        while (true)
        {
            // Fixed header: 1 byte, then 1..4 bytes of remaining length.
            if (_end - _start >= 2)
            {
                var length = 0;
                var complete = false;
                var i = _start + 1;
                for (var shift = 0; shift <= 21 && i < _end; shift += 7, i++)
                {
                    length |= (_buf[i] & 0x7F) << shift;
                    if ((_buf[i] & 0x80) == 0)
                    {
                        complete = true;
                        i++;
                        break;
                    }
                }
                if (!complete && i - _start > 4)
                {
                    throw new IOException("malformed remaining length");
                }
                if (complete && _end - i >= length)
                {
                    var header = _buf[_start];
                    var body = new ArraySegment<byte>(_buf, i, length);
                    _start = i + length;
                    return (header, body);
                }
                if (complete && i - _start + length > _buf.Length)
                {
                    // A packet larger than the buffer: grow it (keeps what was read).
                    var bigger = new byte[i - _start + length];
                    Buffer.BlockCopy(_buf, _start, bigger, 0, _end - _start);
                    _end -= _start;
                    _start = 0;
                    _buf = bigger;
                }
            }
            if (_start > 0 && (_start == _end || _buf.Length - _end < 64))
            {
                Buffer.BlockCopy(_buf, _start, _buf, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            var n = await _socket.ReceiveAsync(_buf.AsMemory(_end), SocketFlags.None, ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException("connection closed by the broker");
            }
            _end += n;
        }
    }

    // ---- encoding ----

    private static ushort ReceiveMaximumOf(ArraySegment<byte> body)
    {
        var at = 2;
        if (at >= body.Count)
        {
            return 0;
        }
        var length = ReadVarInt(body, ref at);
        var end = Math.Min(at + length, body.Count);
        while (at < end)
        {
            var id = body[at++];
            switch (id)
            {
                case 0x21: return BinaryPrimitives.ReadUInt16BigEndian(body.AsSpan(at));
                case 0x11 or 0x27: at += 4; break;                                    // four-byte integers
                case 0x13 or 0x22: at += 2; break;                                    // two-byte integers
                case 0x24 or 0x25 or 0x28 or 0x29 or 0x2A: at += 1; break;           // bytes
                case 0x12 or 0x15 or 0x16 or 0x1A or 0x1C or 0x1F:                    // strings, binary data
                    at += 2 + BinaryPrimitives.ReadUInt16BigEndian(body.AsSpan(at)); break;
                case 0x26:                                                            // user property: two strings
                    at += 2 + BinaryPrimitives.ReadUInt16BigEndian(body.AsSpan(at));
                    at += 2 + BinaryPrimitives.ReadUInt16BigEndian(body.AsSpan(at)); break;
                default: return 0;
            }
        }
        return 0;
    }

    private static int ReadVarInt(ArraySegment<byte> body, ref int at)
    {
        var value = 0;
        for (var shift = 0; shift <= 21 && at < body.Count; shift += 7)
        {
            var b = body[at++];
            value |= (b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                break;
            }
        }
        return value;
    }

    private static int VarIntSize(int v) => v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;

    private static int WriteVarInt(Span<byte> to, int v)
    {
        var n = 0;
        do
        {
            var b = (byte)(v & 0x7F);
            v >>= 7;
            to[n++] = v > 0 ? (byte)(b | 0x80) : b;
        }
        while (v > 0);
        return n;
    }

    private static byte[] Frame(byte header, ReadOnlySpan<byte> body)
    {
        var packet = new byte[1 + VarIntSize(body.Length) + body.Length];
        packet[0] = header;
        var at = 1 + WriteVarInt(packet.AsSpan(1), body.Length);
        body.CopyTo(packet.AsSpan(at));
        return packet;
    }

    private static int WriteString(Span<byte> to, string s)
    {
        var n = Encoding.UTF8.GetBytes(s, to[2..]);
        BinaryPrimitives.WriteUInt16BigEndian(to, (ushort)n);
        return n + 2;
    }

    /// <summary>CONNECT: protocol name and level, flags (clean session / clean start), keep alive, [properties: session expiry], client id.</summary>
    public static byte[] EncodeConnect(byte level, string clientId, bool clean, uint sessionExpiry, ushort keepAlive)
    {
        Span<byte> b = stackalloc byte[32 + (clientId.Length * 3)];
        var at = WriteString(b, "MQTT");
        b[at++] = level;
        b[at++] = clean ? (byte)0x02 : (byte)0x00;
        BinaryPrimitives.WriteUInt16BigEndian(b[at..], keepAlive);
        at += 2;
        if (level == 5)
        {
            if (sessionExpiry == 0)
            {
                b[at++] = 0;
            }
            else
            {
                b[at++] = 5;
                b[at++] = 0x11;
                BinaryPrimitives.WriteUInt32BigEndian(b[at..], sessionExpiry);
                at += 4;
            }
        }
        at += WriteString(b[at..], clientId);
        return Frame(0x10, b[..at]);
    }

    public static byte[] EncodeSubscribe(byte level, ushort packetId, string filter, int qos)
    {
        Span<byte> b = stackalloc byte[8 + (filter.Length * 3)];
        BinaryPrimitives.WriteUInt16BigEndian(b, packetId);
        var at = 2;
        if (level == 5)
        {
            b[at++] = 0;
        }
        at += WriteString(b[at..], filter);
        b[at++] = (byte)qos;
        return Frame(0x82, b[..at]);
    }

    public static byte[] EncodePublish(byte level, string topic, int qos, ushort packetId, ReadOnlySpan<byte> payload)
    {
        var body = new byte[2 + (topic.Length * 3) + 3 + payload.Length];
        var at = WriteString(body, topic);
        if (qos > 0)
        {
            BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(at), packetId);
            at += 2;
        }
        if (level == 5)
        {
            body[at++] = 0;
        }
        payload.CopyTo(body.AsSpan(at));
        at += payload.Length;
        return Frame((byte)(0x30 | (qos << 1)), body.AsSpan(0, at));
    }
}
