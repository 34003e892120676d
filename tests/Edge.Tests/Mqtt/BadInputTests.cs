using System.Net.Sockets;
using System.Text;
using Broker.Tests.Shared;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using static Broker.Tests.Shared.MqttWire;

namespace Broker.Edge.Tests.Mqtt;

/// <summary>One in-process node for the bad-input tests; each test also checks that a normal client is still served.</summary>
public sealed class BadInputNodeFixture : IAsyncLifetime
{
    public TestNode Node { get; private set; } = null!;

    public async Task InitializeAsync() => Node = await TestNode.StartAsync();

    public async Task DisposeAsync()
    {
        await Node.DisposeAsync();
        Node.DeleteData();
    }
}

/// <summary>
/// Raw TCP clients send what no MQTT client should: the node answers per the spec or closes that one connection,
/// and never stops serving well-behaved clients. Every read has a deadline.
/// </summary>
public sealed partial class BadInputTests(BadInputNodeFixture fixture) : IClassFixture<BadInputNodeFixture>
{
    private int Port => fixture.Node.MqttPort;

    // ------------------------------------------------------------------ raw socket helpers

    private Task<Socket> OpenAsync() => MqttWire.OpenAsync(Port);

    /// <summary>Tells the server we send nothing more; it may already have closed the connection, which is fine.</summary>
    private static void HalfClose(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
        }
    }

    /// <summary>A CONNECT with the given protocol name and level, clean session, keep alive 60 s.</summary>
    private static byte[] Connect(string clientId, byte level, string protocolName = "MQTT")
    {
        var body = new List<byte>();
        var name = Encoding.UTF8.GetBytes(protocolName);
        body.AddRange([(byte)(name.Length >> 8), (byte)name.Length, .. name]);   // protocol name
        body.Add(level);                                                          // protocol level
        body.Add(0x02);                                                           // connect flags: clean session
        body.AddRange([0x00, 0x3C]);                                              // keep alive 60 s
        if (level == 5)
        {
            body.Add(0x00);                                                       // properties length 0
        }
        var id = Encoding.UTF8.GetBytes(clientId);
        body.AddRange([(byte)(id.Length >> 8), (byte)id.Length, .. id]);         // client identifier
        Assert.True(body.Count < 128);
        return [0x10, (byte)body.Count, .. body];                                 // CONNECT, remaining length
    }

    /// <summary>A well-behaved MQTTnet client connects, subscribes, publishes and receives its own message.</summary>
    private async Task AssertNodeServesAsync(MqttProtocolVersion version = MqttProtocolVersion.V500)
    {
        var topic = Ids.New("health") + "/t";
        await using var client = await TestClient.ConnectAsync(Port, Ids.New("healthy"), version);
        await client.SubscribeAsync(topic);
        var result = await client.PublishAsync(topic, "still here");
        Assert.True(result.IsSuccess);
        var m = client.Next();
        Assert.Equal("still here", Encoding.UTF8.GetString(m.Payload));
    }

    // ------------------------------------------------------------------ tests

    [Fact]
    public async Task Random_bytes_never_crash_the_node_and_every_such_connection_is_closed()
    {
        var random = new Random(20261126);
        var buffers = Enumerable.Range(0, 300).Select(_ =>
        {
            var b = new byte[random.Next(1, 64)];
            random.NextBytes(b);
            return b;
        }).ToList();

        foreach (var batch in buffers.Chunk(20))
        {
            await Task.WhenAll(batch.Select(async bytes =>
            {
                using var socket = await OpenAsync();
                await socket.SendAsync(bytes, SocketFlags.None);
                // Our side is done: the server must end the connection whatever it made of the bytes.
                HalfClose(socket);
                await ReadUntilClosedAsync(socket);
            }));
        }
        await AssertNodeServesAsync();
    }

    [Fact]
    public async Task Random_bytes_after_a_valid_connect_only_close_that_connection()
    {
        var random = new Random(7);
        for (var i = 0; i < 40; i++)
        {
            using var socket = await OpenAsync();
            await socket.SendAsync(Connect(Ids.New("garbage"), 4), SocketFlags.None);
            Assert.Equal([0x20, 0x02, 0x00, 0x00], await ReadExactlyAsync(socket, 4));
            var garbage = new byte[random.Next(1, 200)];
            random.NextBytes(garbage);
            await socket.SendAsync(garbage, SocketFlags.None);
            HalfClose(socket);
            await ReadUntilClosedAsync(socket);
        }
        await AssertNodeServesAsync(MqttProtocolVersion.V311);
    }

    [Theory]
    [InlineData(new byte[] { 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 })]   // remaining length with a fifth byte
    [InlineData(new byte[] { 0x00, 0x00 })]                           // reserved packet type 0
    [InlineData(new byte[] { 0x30, 0x03, 0x00, 0x09, 0x61 })]         // PUBLISH whose topic length runs past the packet
    [InlineData(new byte[] { 0x10, 0x00 })]                           // a second, empty CONNECT
    public async Task Mqtt311_connection_sending_garbage_after_connack_is_closed(byte[] garbage)
    {
        using var socket = await OpenAsync();
        await socket.SendAsync(Connect(Ids.New("v4-garbage"), 4), SocketFlags.None);
        Assert.Equal([0x20, 0x02, 0x00, 0x00], await ReadExactlyAsync(socket, 4));   // CONNACK, accepted, no session
        await socket.SendAsync(garbage, SocketFlags.None);
        Assert.Empty(await ReadUntilClosedAsync(socket));
        await AssertNodeServesAsync(MqttProtocolVersion.V311);
    }

    [Fact]
    public async Task Connect_followed_by_garbage_in_the_same_write_is_closed()
    {
        using var socket = await OpenAsync();
        byte[] bytes = [.. Connect(Ids.New("same-write"), 4), 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        await socket.SendAsync(bytes, SocketFlags.None);
        var received = await ReadUntilClosedAsync(socket);
        // The CONNACK may or may not have been sent before the garbage was read; nothing else may be.
        Assert.True(received.Length == 0 || received.SequenceEqual(new byte[] { 0x20, 0x02, 0x00, 0x00 }), Convert.ToHexString(received));
        await AssertNodeServesAsync();
    }

    [Theory]
    [InlineData("MQTT", 6)]
    [InlineData("MQTT", 0)]
    [InlineData("MQTT", 255)]
    [InlineData("MQTT", 3)]      // 3 is MQTT 3.1's level, which names itself "MQIsdp"
    [InlineData("MQIsdp", 4)]
    public async Task Connect_with_an_unsupported_protocol_level_gets_connack_0x01_and_is_closed(string name, byte level)
    {
        using var socket = await OpenAsync();
        await socket.SendAsync(Connect(Ids.New("level"), level, name), SocketFlags.None);
        // CONNACK (20), remaining length 2, flags 0, return code 1: unacceptable protocol level.
        Assert.Equal([0x20, 0x02, 0x00, 0x01], await ReadUntilClosedAsync(socket));
        await AssertNodeServesAsync();
    }

    [Fact]
    public async Task Connect_with_an_unknown_protocol_name_is_closed_without_answer()
    {
        using var socket = await OpenAsync();
        await socket.SendAsync(Connect(Ids.New("name"), 4, "MQTX"), SocketFlags.None);
        Assert.Empty(await ReadUntilClosedAsync(socket));
        await AssertNodeServesAsync();
    }

    [Theory]
    [InlineData(new byte[] { 0xC0, 0x00 })]                                       // PINGREQ
    [InlineData(new byte[] { 0x30, 0x05, 0x00, 0x01, 0x74, 0x68, 0x69 })]         // PUBLISH "t" "hi"
    [InlineData(new byte[] { 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x74, 0x00 })]   // SUBSCRIBE "t"
    [InlineData(new byte[] { 0xE0, 0x00 })]                                       // DISCONNECT
    public async Task First_packet_that_is_not_connect_closes_the_connection(byte[] packet)
    {
        using var socket = await OpenAsync();
        await socket.SendAsync(packet, SocketFlags.None);
        Assert.Empty(await ReadUntilClosedAsync(socket));
        await AssertNodeServesAsync();
    }

    [Theory]
    [InlineData(new byte[] { 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 })]   // remaining length with a fifth byte
    [InlineData(new byte[] { 0x30, 0x03, 0x00, 0x09, 0x61 })]         // PUBLISH whose topic length runs past the packet
    public async Task Mqtt5_client_sending_a_malformed_packet_gets_disconnect_0x81(byte[] malformed)
    {
        using var socket = await OpenAsync();
        await socket.SendAsync(Connect(Ids.New("v5-malformed"), 5), SocketFlags.None);
        var (connAck, connAckBody) = await ReadPacketAsync(socket);
        Assert.Equal(0x20, connAck);
        Assert.Equal(0x00, connAckBody[1]);   // reason code: success

        await socket.SendAsync(malformed, SocketFlags.None);
        var rest = await ReadUntilClosedAsync(socket);
        // DISCONNECT (E0), remaining length, reason code 0x81 (malformed packet), then the close.
        Assert.True(rest.Length >= 3, Convert.ToHexString(rest));
        Assert.Equal(0xE0, rest[0]);
        Assert.Equal(0x81, rest[2]);
        await AssertNodeServesAsync();
    }

    [Fact]
    public async Task Mqtt5_client_publishing_to_a_wildcard_topic_gets_disconnect_0x90()
    {
        using var socket = await OpenAsync();
        await socket.SendAsync(Connect(Ids.New("v5-wildcard"), 5), SocketFlags.None);
        var (connAck, _) = await ReadPacketAsync(socket);
        Assert.Equal(0x20, connAck);
        // PUBLISH QoS 0: topic "a/#" (00 03 61 2F 23), properties length 0, no payload.
        await socket.SendAsync(new byte[] { 0x30, 0x06, 0x00, 0x03, 0x61, 0x2F, 0x23, 0x00 }, SocketFlags.None);
        var rest = await ReadUntilClosedAsync(socket);
        Assert.True(rest.Length >= 3, Convert.ToHexString(rest));
        Assert.Equal(0xE0, rest[0]);
        Assert.Equal(0x90, rest[2]);   // topic name invalid
    }

    [Fact]
    public async Task Bad_input_on_other_connections_does_not_disturb_a_connected_client()
    {
        var topic = Ids.New("steady") + "/t";
        await using var steady = await TestClient.ConnectAsync(Port, Ids.New("steady"));
        await steady.SubscribeAsync(topic);
        var random = new Random(99);

        for (var round = 0; round < 5; round++)
        {
            var inputs = Enumerable.Range(0, 20).Select(i => (i % 4) switch
            {
                0 => [.. Connect(Ids.New("abuse"), 4), 0x00, 0x00],
                1 => Connect(Ids.New("abuse"), 7),
                2 => [0xC0, 0x00],
                _ => Enumerable.Range(0, 32).Select(_ => (byte)random.Next(256)).ToArray(),
            }).ToList();
            var abuse = inputs.Select(async bytes =>
            {
                using var socket = await OpenAsync();
                await socket.SendAsync(bytes, SocketFlags.None);
                HalfClose(socket);
                await ReadUntilClosedAsync(socket);
            }).ToList();
            var publish = await steady.PublishAsync(topic, "round " + round);
            Assert.True(publish.IsSuccess);
            await Task.WhenAll(abuse);
            Assert.Equal("round " + round, steady.NextText());
        }
        Assert.True(steady.Client.IsConnected);
        await AssertNodeServesAsync(MqttProtocolVersion.V311);
    }
}
