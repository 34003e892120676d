using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Broker.Tests.Shared;

/// <summary>
/// MQTT packets built byte by byte, independent of the broker's codec (a shared codec bug would cancel out), and raw
/// socket reads with deadlines.
/// </summary>
public static class MqttWire
{
    public static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(10);

    /// <summary>A 2-byte length and the bytes: an MQTT string or binary field.</summary>
    public static byte[] Field(byte[] bytes) => [(byte)(bytes.Length >> 8), (byte)bytes.Length, .. bytes];

    public static byte[] Field(string text) => Field(Encoding.UTF8.GetBytes(text));

    /// <summary>A variable byte integer (1 to 4 bytes, 7 bits each, least significant first).</summary>
    public static byte[] VarInt(int value)
    {
        var bytes = new List<byte>();
        do
        {
            var b = (byte)(value & 0x7F);
            value >>= 7;
            bytes.Add(value > 0 ? (byte)(b | 0x80) : b);
        }
        while (value > 0);
        return [.. bytes];
    }

    /// <summary>The fixed header byte, the remaining length, then the parts.</summary>
    public static byte[] Packet(byte header, params byte[][] parts)
    {
        var body = parts.SelectMany(p => p).ToArray();
        return [header, .. VarInt(body.Length), .. body];
    }

    /// <summary>CONNECT at level 4 (3.1.1) or 5, keep alive 60 s; level 5 carries a Session Expiry Interval (0x11) when not clean.</summary>
    public static byte[] Connect(string clientId, byte level, bool clean = true, uint sessionExpiry = 0)
    {
        byte[] properties = level == 5
            ? sessionExpiry == 0 ? [0x00] : [0x05, 0x11, (byte)(sessionExpiry >> 24), (byte)(sessionExpiry >> 16), (byte)(sessionExpiry >> 8), (byte)sessionExpiry]
            : [];
        return Packet(0x10,
            Field("MQTT"), [level],                       // protocol name, level
            [clean ? (byte)0x02 : (byte)0x00, 0x00, 0x3C], // connect flags, keep alive 60 s
            properties,
            Field(clientId));
    }

    /// <summary>SUBSCRIBE (fixed header 0x82): packet id, [properties], then filter and options per subscription.</summary>
    public static byte[] Subscribe(byte level, ushort packetId, params (string Filter, byte Options)[] filters) => Packet(0x82,
        [(byte)(packetId >> 8), (byte)packetId],
        level == 5 ? [0x00] : [],
        filters.SelectMany(f => (byte[])[.. Field(f.Filter), f.Options]).ToArray());

    /// <summary>PUBLISH: flags carry QoS and retain; a packet id only for QoS 1 and 2; [properties]; the payload.</summary>
    public static byte[] Publish(byte level, string topic, int qos, ushort packetId, byte[] payload, bool retain = false) => Packet(
        (byte)(0x30 | (qos << 1) | (retain ? 1 : 0)),
        Field(topic),
        qos > 0 ? [(byte)(packetId >> 8), (byte)packetId] : [],
        level == 5 ? [0x00] : [],
        payload);

    /// <summary>PUBREL (0x62, flags 0010 are mandatory) for <paramref name="packetId"/>.</summary>
    public static byte[] PubRel(ushort packetId) => [0x62, 0x02, (byte)(packetId >> 8), (byte)packetId];

    public static readonly byte[] PingReq = [0xC0, 0x00];

    public static readonly byte[] Disconnect = [0xE0, 0x00];

    /// <summary>A topic of <paramref name="levels"/> one-letter levels: "a/a/…/a".</summary>
    public static string Levels(int levels) => string.Join('/', Enumerable.Repeat("a", levels));

    public static async Task<Socket> OpenAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var cts = new CancellationTokenSource(ReadTimeout);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cts.Token);
        return socket;
    }

    /// <summary>Connects at <paramref name="level"/> and reads the CONNACK, asserting it accepted the connection.</summary>
    public static async Task<Socket> ConnectedAsync(int port, byte level, string clientId)
    {
        var socket = await OpenAsync(port);
        await socket.SendAsync(Connect(clientId, level), SocketFlags.None);
        var (header, body) = await ReadPacketAsync(socket);
        Assert.Equal(0x20, header);
        Assert.Equal(0x00, body[1]);   // return / reason code: accepted
        return socket;
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes, failing on close or timeout.</summary>
    public static async Task<byte[]> ReadExactlyAsync(Socket socket, int count)
    {
        using var cts = new CancellationTokenSource(ReadTimeout);
        var buffer = new byte[count];
        var read = 0;
        while (read < count)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, cts.Token);
            Assert.True(n > 0, $"connection closed after {read} of {count} bytes");
            read += n;
        }
        return buffer;
    }

    /// <summary>Reads one packet: its fixed header byte and its body.</summary>
    public static async Task<(byte Header, byte[] Body)> ReadPacketAsync(Socket socket)
    {
        var header = (await ReadExactlyAsync(socket, 1))[0];
        var length = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = (await ReadExactlyAsync(socket, 1))[0];
            length |= (b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                break;
            }
        }
        return (header, length == 0 ? [] : await ReadExactlyAsync(socket, length));
    }

    /// <summary>The reason codes of the SUBACK for <paramref name="packetId"/>.</summary>
    public static async Task<byte[]> ReadSubAckAsync(Socket socket, byte level, ushort packetId)
    {
        var (header, body) = await ReadPacketAsync(socket);
        Assert.Equal(0x90, header);
        Assert.Equal(packetId, (ushort)((body[0] << 8) | body[1]));
        var codes = 2;
        if (level == 5)
        {
            // Skip the property length (a variable byte integer) and the properties.
            var length = 0;
            for (var shift = 0; ; shift += 7)
            {
                var b = body[codes++];
                length |= (b & 0x7F) << shift;
                if ((b & 0x80) == 0)
                {
                    break;
                }
            }
            codes += length;
        }
        return body[codes..];
    }

    /// <summary>Reads until the server closes the connection (FIN or reset); fails if it is still open after the timeout.</summary>
    public static async Task<byte[]> ReadUntilClosedAsync(Socket socket, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? ReadTimeout);
        var received = new List<byte>();
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (n == 0)
                {
                    return [.. received];
                }
                received.AddRange(buffer.AsSpan(0, n));
            }
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
        {
            return [.. received];
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"the server kept the connection open for {timeout ?? ReadTimeout}; received {Convert.ToHexString([.. received])}");
        }
    }
}
