using System.Net;
using System.Net.Sockets;
using System.Text;
using Broker.Tests.Shared;
using MQTTnet.Formatter;
using static Broker.Tests.Shared.MqttWire;

namespace Broker.Edge.Tests.Mqtt;

/// <summary>
/// Malformed packets and the topic and subscription bounds (cluster.hocon defaults: max-topic-length 4096,
/// max-topic-levels 128, max-subscriptions-per-session 1000), each answered as the spec says while the node
/// keeps serving other clients.
/// </summary>
public sealed partial class BadInputTests
{
    private const int MaxTopicLevels = 128;
    private const int MaxTopicLength = 4096;
    private const int MaxSubscriptions = 1000;

    // ------------------------------------------------------------------ packet builders

    /// <summary>A 2-byte length and the bytes: an MQTT string or binary field.</summary>
    private static byte[] Field(byte[] bytes) => [(byte)(bytes.Length >> 8), (byte)bytes.Length, .. bytes];

    private static byte[] Field(string text) => Field(Encoding.UTF8.GetBytes(text));

    /// <summary>The fixed header byte, the remaining length as a variable byte integer, then the parts.</summary>
    private static byte[] Packet(byte header, params byte[][] parts)
    {
        var body = parts.SelectMany(p => p).ToArray();
        var packet = new List<byte> { header };
        var length = body.Length;
        do
        {
            var b = (byte)(length & 0x7F);
            length >>= 7;
            packet.Add(length > 0 ? (byte)(b | 0x80) : b);
        }
        while (length > 0);
        packet.AddRange(body);
        return [.. packet];
    }

    /// <summary>MQTT 5 CONNECT, keep alive 60 s, with a Session Expiry Interval property (0x11).</summary>
    private static byte[] ConnectV5(string clientId, bool cleanStart, uint sessionExpiry) => Packet(0x10,
        Field("MQTT"), [0x05],                                        // protocol name, level 5
        [cleanStart ? (byte)0x02 : (byte)0x00, 0x00, 0x3C],            // connect flags, keep alive
        [0x05, 0x11, (byte)(sessionExpiry >> 24), (byte)(sessionExpiry >> 16), (byte)(sessionExpiry >> 8), (byte)sessionExpiry],
        Field(clientId));

    /// <summary>Connects at protocol level 4 or 5 and reads the CONNACK, asserting it accepted the connection.</summary>
    private async Task<Socket> ConnectedAsync(byte level, string name)
    {
        var socket = await OpenAsync();
        await socket.SendAsync(Connect(Ids.New(name), level), SocketFlags.None);
        var (header, body) = await ReadPacketAsync(socket);
        Assert.Equal(0x20, header);
        Assert.Equal(0x00, body[1]);   // return / reason code: accepted
        return socket;
    }

    /// <summary>
    /// The answer to a packet that must close the connection: MQTT 5 gets DISCONNECT with
    /// <paramref name="reasonCode"/> first, 3.1.1 only sees the close.
    /// </summary>
    private static async Task AssertClosedWithAsync(Socket socket, byte level, byte reasonCode)
    {
        var rest = await ReadUntilClosedAsync(socket);
        if (level == 4)
        {
            Assert.Empty(rest);
            return;
        }
        // DISCONNECT (E0), remaining length, reason code, then the close.
        Assert.True(rest.Length >= 3, Convert.ToHexString(rest));
        Assert.Equal(0xE0, rest[0]);
        Assert.Equal(reasonCode, rest[2]);
    }

    /// <summary>Reads a SUBACK and returns its reason codes (skipping an MQTT 5 SUBACK's properties).</summary>
    private static async Task<byte[]> ReadSubAckAsync(Socket socket, byte level, ushort packetId)
    {
        var (header, body) = await ReadPacketAsync(socket);
        Assert.Equal(0x90, header);
        Assert.Equal(packetId, (body[0] << 8) | body[1]);
        var at = 2;
        if (level == 5)
        {
            Assert.True(body[at] < 0x80);   // one-byte properties length
            at += 1 + body[at];
        }
        return body[at..];
    }

    private static byte[] Publish(byte level, byte[] topicField, byte header = 0x30) =>
        level == 5 ? Packet(header, topicField, [0x00], "x"u8.ToArray()) : Packet(header, topicField, "x"u8.ToArray());

    private static byte[] Subscribe(byte level, ushort packetId, params (string Filter, byte Options)[] filters) =>
        SubscribeWithHeader(0x82, level, packetId, filters);

    private static byte[] SubscribeWithHeader(byte header, byte level, ushort packetId, params (string Filter, byte Options)[] filters)
    {
        var parts = new List<byte[]> { new[] { (byte)(packetId >> 8), (byte)packetId } };
        if (level == 5)
        {
            parts.Add([0x00]);   // properties length 0
        }
        foreach (var (filter, options) in filters)
        {
            parts.Add(Field(filter));
            parts.Add([options]);
        }
        return Packet(header, [.. parts]);
    }

    private static string Levels(int count) => string.Join('/', Enumerable.Repeat("l", count));

    // ------------------------------------------------------------------ malformed packets

    [Theory]
    [InlineData(4, new byte[] { 0xFF, 0xFE })]               // not UTF-8 at all
    [InlineData(5, new byte[] { 0xFF, 0xFE })]
    [InlineData(4, new byte[] { 0x61, 0xED, 0xA0, 0x80 })]   // "a" + the encoded surrogate U+D800
    [InlineData(5, new byte[] { 0x61, 0xED, 0xA0, 0x80 })]
    [InlineData(5, new byte[] { 0xC0, 0xAF })]               // overlong "/"
    [InlineData(4, new byte[] { 0x61, 0x00, 0x62 })]         // U+0000
    [InlineData(5, new byte[] { 0x61, 0x00, 0x62 })]
    public async Task Publish_topic_that_is_not_well_formed_utf8_is_malformed(byte level, byte[] topic)
    {
        using var socket = await ConnectedAsync(level, "bad-utf8");
        await socket.SendAsync(Publish(level, Field(topic)), SocketFlags.None);
        await AssertClosedWithAsync(socket, level, 0x81);
        await AssertNodeServesAsync();
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public async Task Publish_with_both_qos_bits_set_is_malformed(byte level)
    {
        using var socket = await ConnectedAsync(level, "qos3");
        // PUBLISH, flags 0110 (QoS 3), topic "t", packet id 1.
        await socket.SendAsync(level == 5
            ? Packet(0x36, Field("t"), [0x00, 0x01], [0x00], "x"u8.ToArray())
            : Packet(0x36, Field("t"), [0x00, 0x01], "x"u8.ToArray()), SocketFlags.None);
        await AssertClosedWithAsync(socket, level, 0x81);
        await AssertNodeServesAsync(MqttProtocolVersion.V311);
    }

    [Theory]
    [InlineData(4, 0x80)]   // SUBSCRIBE, flags 0000
    [InlineData(5, 0x80)]
    [InlineData(4, 0x83)]   // SUBSCRIBE, flags 0011
    [InlineData(5, 0x8A)]   // SUBSCRIBE, flags 1010
    public async Task Subscribe_with_fixed_header_flags_other_than_0010_is_malformed(byte level, byte header)
    {
        using var socket = await ConnectedAsync(level, "sub-flags");
        await socket.SendAsync(SubscribeWithHeader(header, level, 1, ("t", 0x00)), SocketFlags.None);
        await AssertClosedWithAsync(socket, level, 0x81);
        await AssertNodeServesAsync();
    }

    [Theory]
    [InlineData(4, new byte[] { 0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, 0x74 })]         // UNSUBSCRIBE "t", flags 0000
    [InlineData(5, new byte[] { 0xA3, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x74 })]   // UNSUBSCRIBE "t", flags 0011
    [InlineData(4, new byte[] { 0x60, 0x02, 0x00, 0x01 })]                           // PUBREL, flags 0000
    [InlineData(5, new byte[] { 0x68, 0x02, 0x00, 0x01 })]                           // PUBREL, flags 1000
    [InlineData(4, new byte[] { 0xC1, 0x00 })]                                       // PINGREQ, flags 0001
    [InlineData(5, new byte[] { 0x42, 0x02, 0x00, 0x01 })]                           // PUBACK, flags 0010
    public async Task Other_packets_with_reserved_fixed_header_flags_are_malformed(byte level, byte[] packet)
    {
        using var socket = await ConnectedAsync(level, "flags");
        await socket.SendAsync(packet, SocketFlags.None);
        await AssertClosedWithAsync(socket, level, 0x81);
        await AssertNodeServesAsync();
    }

    [Theory]
    [InlineData(4, 0x03)]   // QoS 3
    [InlineData(5, 0x03)]
    [InlineData(4, 0x04)]   // 3.1.1: bits 7-2 are reserved
    [InlineData(5, 0x30)]   // retain handling 3
    [InlineData(5, 0x40)]   // 5.0: bits 7-6 are reserved
    public async Task Subscribe_with_invalid_options_is_malformed(byte level, byte options)
    {
        using var socket = await ConnectedAsync(level, "sub-options");
        await socket.SendAsync(Subscribe(level, 1, ("t", options)), SocketFlags.None);
        await AssertClosedWithAsync(socket, level, 0x81);
        await AssertNodeServesAsync();
    }

    [Fact]
    public async Task Subscribe_with_a_filter_that_is_not_well_formed_utf8_is_malformed()
    {
        using var socket = await ConnectedAsync(5, "sub-utf8");
        // SUBSCRIBE, packet id 1, properties 0, filter "a" + U+D800 encoded, options QoS 0.
        await socket.SendAsync(Packet(0x82, [0x00, 0x01, 0x00], Field([0x61, 0xED, 0xA0, 0x80]), [0x00]), SocketFlags.None);
        await AssertClosedWithAsync(socket, 5, 0x81);
        await AssertNodeServesAsync();
    }

    [Theory]
    [InlineData(0)]    // 0 is not a valid alias
    [InlineData(65)]   // above topic-alias-maximum (64)
    public async Task Mqtt5_publish_with_an_invalid_topic_alias_gets_disconnect_0x94(ushort alias)
    {
        using var socket = await ConnectedAsync(5, "alias");
        // PUBLISH QoS 0, topic "t", properties: Topic Alias (0x23) = alias, payload "x".
        await socket.SendAsync(Packet(0x30, Field("t"), [0x03, 0x23, (byte)(alias >> 8), (byte)alias], "x"u8.ToArray()), SocketFlags.None);
        await AssertClosedWithAsync(socket, 5, 0x94);
        await AssertNodeServesAsync();
    }

    // ------------------------------------------------------------------ topic and subscription bounds

    [Theory]
    [InlineData(4, 0x80)]   // Failure
    [InlineData(5, 0x8F)]   // Topic Filter invalid
    public async Task Subscribe_to_65000_levels_is_refused_and_the_connection_and_node_carry_on(byte level, byte refused)
    {
        using var socket = await ConnectedAsync(level, "deep-sub");
        await socket.SendAsync(Subscribe(level, 7, (new string('/', 64_999), 0x00)), SocketFlags.None);
        Assert.Equal([refused], await ReadSubAckAsync(socket, level, 7));

        // The same connection still subscribes.
        await socket.SendAsync(Subscribe(level, 8, ("t/ok", 0x01)), SocketFlags.None);
        Assert.Equal([0x01], await ReadSubAckAsync(socket, level, 8));
        await AssertNodeServesAsync();
    }

    [Theory]
    [InlineData(4, 0x80)]
    [InlineData(5, 0x8F)]
    public async Task Subscribe_refuses_only_the_filters_beyond_max_topic_levels_or_length(byte level, byte refused)
    {
        using var socket = await ConnectedAsync(level, "bounded-sub");
        await socket.SendAsync(Subscribe(level, 3,
            (Levels(MaxTopicLevels), 0x00),                    // at the level bound
            (Levels(MaxTopicLevels + 1), 0x00),                // one level more
            (new string('x', MaxTopicLength), 0x01),           // at the length bound
            (new string('x', MaxTopicLength + 1), 0x01)), SocketFlags.None);
        Assert.Equal([0x00, refused, 0x01, refused], await ReadSubAckAsync(socket, level, 3));
        await AssertNodeServesAsync();
    }

    [Theory]
    [InlineData(4, 0x80)]   // Failure
    [InlineData(5, 0x97)]   // Quota exceeded
    public async Task Subscribe_beyond_max_subscriptions_per_session_is_refused_for_the_extra_filters(byte level, byte refused)
    {
        using var socket = await ConnectedAsync(level, "quota");
        var filters = Enumerable.Range(0, MaxSubscriptions + 2).Select(i => ($"q/{i}", (byte)0x00)).ToArray();
        await socket.SendAsync(Subscribe(level, 5, filters), SocketFlags.None);
        var codes = await ReadSubAckAsync(socket, level, 5);
        Assert.Equal(MaxSubscriptions + 2, codes.Length);
        Assert.All(codes[..MaxSubscriptions], c => Assert.Equal(0x00, c));
        Assert.Equal([refused, refused], codes[MaxSubscriptions..]);
        await AssertNodeServesAsync();
    }

    [Theory]
    [InlineData(4, MaxTopicLevels + 1)]
    [InlineData(5, MaxTopicLevels + 1)]
    [InlineData(5, 65_000)]
    public async Task Publish_to_a_topic_with_more_levels_than_allowed_gets_0x90(byte level, int levels)
    {
        using var socket = await ConnectedAsync(level, "deep-pub");
        var topic = levels > MaxTopicLevels * 2 ? new string('/', levels - 1) : Levels(levels);
        await socket.SendAsync(Publish(level, Field(topic)), SocketFlags.None);
        await AssertClosedWithAsync(socket, level, 0x90);
        await AssertNodeServesAsync();
    }

    [Fact]
    public async Task Publish_to_a_topic_longer_than_allowed_gets_0x90()
    {
        using var socket = await ConnectedAsync(5, "long-pub");
        await socket.SendAsync(Publish(5, Field(new string('x', MaxTopicLength + 1))), SocketFlags.None);
        await AssertClosedWithAsync(socket, 5, 0x90);
        await AssertNodeServesAsync();
    }

    [Fact]
    public async Task Mqtt5_connect_with_a_will_topic_beyond_the_bounds_gets_connack_0x90()
    {
        using var socket = await OpenAsync();
        await socket.SendAsync(Packet(0x10,
            Field("MQTT"), [0x05, 0x06, 0x00, 0x3C, 0x00],      // level 5, clean start + will, keep alive 60, properties 0
            Field(Ids.New("deep-will")),
            [0x00], Field(Levels(MaxTopicLevels + 1)),          // will properties 0, will topic
            Field("gone")), SocketFlags.None);                  // will payload
        var received = await ReadUntilClosedAsync(socket);
        // CONNACK (20), remaining length, flags 0, reason 0x90 Topic Name invalid, then the close.
        Assert.True(received.Length >= 4, Convert.ToHexString(received));
        Assert.Equal(0x20, received[0]);
        Assert.Equal(0x90, received[3]);
        await AssertNodeServesAsync();
    }

    [Fact]
    public async Task Publish_at_the_topic_bounds_is_delivered()
    {
        var topic = Ids.New("b") + "/" + Levels(MaxTopicLevels - 1);
        await using var client = await TestClient.ConnectAsync(Port, Ids.New("at-bound"));
        await client.SubscribeAsync(topic);
        Assert.True((await client.PublishAsync(topic, "deep")).IsSuccess);
        Assert.Equal("deep", client.NextText());
    }

    // ------------------------------------------------------------------ session expiry on DISCONNECT

    private async Task<HttpStatusCode> SessionStatusAsync(HttpClient http, string clientId) =>
        (await http.GetAsync(fixture.Node.AdminUrl + "/api/v1/sessions/" + clientId)).StatusCode;

    [Fact]
    public async Task Disconnect_with_session_expiry_0_ends_a_session_created_with_expiry_60()
    {
        using var http = new HttpClient();
        var id = Ids.New("expiry-0");
        using (var socket = await OpenAsync())
        {
            await socket.SendAsync(ConnectV5(id, cleanStart: false, sessionExpiry: 60), SocketFlags.None);
            Assert.Equal(0x20, (await ReadPacketAsync(socket)).Header);
            // DISCONNECT, reason 0x00, properties: Session Expiry Interval (0x11) = 0.
            await socket.SendAsync(Packet(0xE0, [0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00]), SocketFlags.None);
            Assert.Empty(await ReadUntilClosedAsync(socket));
        }
        await Wait.UntilAsync(async () => await SessionStatusAsync(http, id) == HttpStatusCode.NotFound,
            TimeSpan.FromSeconds(10), "the session to be gone");

        using var again = await OpenAsync();
        await again.SendAsync(ConnectV5(id, cleanStart: false, sessionExpiry: 60), SocketFlags.None);
        var (header, body) = await ReadPacketAsync(again);
        Assert.Equal(0x20, header);
        Assert.Equal(0x00, body[0]);   // session present 0
        Assert.Equal(0x00, body[1]);   // success
        await AssertNodeServesAsync();
    }

    [Fact]
    public async Task Disconnect_without_session_expiry_keeps_the_connects_expiry()
    {
        using var http = new HttpClient();
        var id = Ids.New("expiry-kept");
        using (var socket = await OpenAsync())
        {
            await socket.SendAsync(ConnectV5(id, cleanStart: false, sessionExpiry: 60), SocketFlags.None);
            Assert.Equal(0x20, (await ReadPacketAsync(socket)).Header);
            await socket.SendAsync(Packet(0xE0, [0x00, 0x00]), SocketFlags.None);   // DISCONNECT, reason 0, no properties
            Assert.Empty(await ReadUntilClosedAsync(socket));
        }
        await Wait.UntilAsync(async () =>
            {
                var response = await http.GetAsync(fixture.Node.AdminUrl + "/api/v1/sessions/" + id);
                return response.IsSuccessStatusCode && (await response.Content.ReadAsStringAsync()).Contains("\"connected\":false", StringComparison.Ordinal);
            },
            TimeSpan.FromSeconds(10), "the session to be disconnected");

        using var again = await OpenAsync();
        await again.SendAsync(ConnectV5(id, cleanStart: false, sessionExpiry: 0), SocketFlags.None);
        var (_, body) = await ReadPacketAsync(again);
        Assert.Equal(0x00, body[1]);   // success
        Assert.Equal(0x01, body[0]);   // session present: the CONNECT's 60 s still held
    }

    [Fact]
    public async Task Disconnect_raising_session_expiry_from_0_gets_disconnect_0x82()
    {
        using var socket = await OpenAsync();
        await socket.SendAsync(ConnectV5(Ids.New("expiry-raise"), cleanStart: true, sessionExpiry: 0), SocketFlags.None);
        Assert.Equal(0x20, (await ReadPacketAsync(socket)).Header);
        await socket.SendAsync(Packet(0xE0, [0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x1E]), SocketFlags.None);   // expiry 30
        await AssertClosedWithAsync(socket, 5, 0x82);
        await AssertNodeServesAsync();
    }
}
