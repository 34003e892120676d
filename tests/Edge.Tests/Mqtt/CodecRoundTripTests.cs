using System.Buffers;
using System.Collections;
using System.Reflection;
using System.Text;
using Broker.Edge.Mqtt;
using MQTTnet.Adapter;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace Broker.Edge.Tests.Mqtt;

/// <summary>
/// Each MQTT packet type is encoded by MQTTnet's formatter, framed by <see cref="MqttFrameReader"/> and decoded by a
/// fresh formatter of the same version, as the broker's transport does; every public field must survive.
/// </summary>
public class CodecRoundTripTests
{
    private static MqttPacket RoundTrip(MqttPacket packet, MqttProtocolVersion version, bool detectFromConnect = false)
    {
        var encoder = new MqttPacketFormatterAdapter(version, new MqttBufferWriter(256, 65536));
        var bytes = encoder.Encode(packet).ToArray();

        var buffer = new ReadOnlySequence<byte>(bytes);
        Assert.Equal(FrameStatus.Complete, MqttFrameReader.TryRead(ref buffer, int.MaxValue, out var header, out var body, out var total));
        Assert.True(buffer.IsEmpty);
        Assert.Equal(bytes.Length, total);

        var received = new ReceivedMqttPacket(header, new ArraySegment<byte>(body.ToArray()), total);
        MqttPacketFormatterAdapter decoder;
        if (detectFromConnect)
        {
            decoder = new MqttPacketFormatterAdapter(new MqttBufferWriter(256, 65536));
            decoder.DetectProtocolVersion(received);
            Assert.Equal(version, decoder.ProtocolVersion);
        }
        else
        {
            decoder = new MqttPacketFormatterAdapter(version, new MqttBufferWriter(256, 65536));
        }
        return decoder.Decode(received);
    }

    private static void AssertRoundTrip(MqttPacket packet, MqttProtocolVersion version)
    {
        var copy = RoundTrip(packet, version, detectFromConnect: packet is MqttConnectPacket);
        Assert.IsType(packet.GetType(), copy);
        AssertSame(packet, copy, packet.GetType().Name);
    }

    /// <summary>Compares every public property; byte buffers by content, collections element by element.</summary>
    private static void AssertSame(object? expected, object? actual, string path)
    {
        expected = Normalize(expected);
        actual = Normalize(actual);
        if (expected is null || actual is null)
        {
            Assert.True(expected is null && actual is null, $"{path}: expected {expected ?? "null"}, got {actual ?? "null"}");
            return;
        }
        if (expected is byte[] eb)
        {
            Assert.True(eb.AsSpan().SequenceEqual((byte[])actual), $"{path}: bytes differ");
            return;
        }
        var type = expected.GetType();
        if (type.IsPrimitive || type.IsEnum || expected is string or decimal)
        {
            Assert.True(expected.Equals(actual), $"{path}: expected {expected}, got {actual}");
            return;
        }
        if (expected is IEnumerable e)
        {
            var xs = e.Cast<object?>().ToList();
            var ys = ((IEnumerable)actual).Cast<object?>().ToList();
            Assert.True(xs.Count == ys.Count, $"{path}: expected {xs.Count} items, got {ys.Count}");
            for (var i = 0; i < xs.Count; i++)
            {
                AssertSame(xs[i], ys[i], $"{path}[{i}]");
            }
            return;
        }
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetMethod is { IsPublic: true } && p.GetIndexParameters().Length == 0))
        {
            AssertSame(p.GetValue(expected), p.GetValue(actual), $"{path}.{p.Name}");
        }
    }

    private static object? Normalize(object? value) => value switch
    {
        ReadOnlySequence<byte> s => s.ToArray(),
        ReadOnlyMemory<byte> m => m.ToArray(),
        Memory<byte> m => m.ToArray(),
        ArraySegment<byte> a => a.ToArray(),
        _ => value,
    };

    private static List<MqttUserProperty> Props(params (string Name, string Value)[] props) =>
        [.. props.Select(p => new MqttUserProperty(p.Name, Encoding.UTF8.GetBytes(p.Value).AsMemory()))];

    private static readonly byte[] Payload = [0x00, 0x01, 0xFE, 0xFF, 0x7F, 0x80];

    // ------------------------------------------------------------------ MQTT 3.1.1

    public static TheoryData<string> V311Packets() => [.. V311().Select(p => p.Name)];

    private static IEnumerable<(string Name, MqttPacket Packet)> V311()
    {
        yield return ("CONNECT", new MqttConnectPacket
        {
            ClientId = "client-\u00e9",
            CleanSession = false,
            KeepAlivePeriod = 65535,
            Username = "user",
            Password = [1, 2, 3],
            WillFlag = true,
            WillTopic = "will/topic",
            WillMessage = [9, 8],
            WillQoS = MqttQualityOfServiceLevel.ExactlyOnce,
            WillRetain = true,
        });
        yield return ("CONNECT minimal", new MqttConnectPacket { ClientId = "", CleanSession = true });
        yield return ("CONNACK", new MqttConnAckPacket { ReturnCode = MqttConnectReturnCode.ConnectionAccepted, IsSessionPresent = true });
        yield return ("CONNACK refused", new MqttConnAckPacket { ReturnCode = MqttConnectReturnCode.ConnectionRefusedIdentifierRejected });
        yield return ("PUBLISH qos0", new MqttPublishPacket { Topic = "a/b", Payload = new ReadOnlySequence<byte>(Payload) });
        yield return ("PUBLISH qos2 retain dup", new MqttPublishPacket
        {
            Topic = "a/\u00fc/c",
            Payload = new ReadOnlySequence<byte>(new byte[70000]),
            QualityOfServiceLevel = MqttQualityOfServiceLevel.ExactlyOnce,
            Retain = true,
            Dup = true,
            PacketIdentifier = 65535,
        });
        yield return ("PUBLISH empty payload", new MqttPublishPacket { Topic = "t", QualityOfServiceLevel = MqttQualityOfServiceLevel.AtLeastOnce, PacketIdentifier = 1 });
        yield return ("PUBACK", new MqttPubAckPacket { PacketIdentifier = 258 });
        yield return ("PUBREC", new MqttPubRecPacket { PacketIdentifier = 259 });
        yield return ("PUBREL", new MqttPubRelPacket { PacketIdentifier = 260 });
        yield return ("PUBCOMP", new MqttPubCompPacket { PacketIdentifier = 261 });
        yield return ("SUBSCRIBE", new MqttSubscribePacket
        {
            PacketIdentifier = 7,
            TopicFilters =
            [
                new MqttTopicFilter { Topic = "a/#", QualityOfServiceLevel = MqttQualityOfServiceLevel.AtLeastOnce },
                new MqttTopicFilter { Topic = "+/b", QualityOfServiceLevel = MqttQualityOfServiceLevel.ExactlyOnce },
            ],
        });
        yield return ("SUBACK", new MqttSubAckPacket
        {
            PacketIdentifier = 7,
            ReasonCodes = [MqttSubscribeReasonCode.GrantedQoS1, MqttSubscribeReasonCode.GrantedQoS0, MqttSubscribeReasonCode.UnspecifiedError],
        });
        yield return ("UNSUBSCRIBE", new MqttUnsubscribePacket { PacketIdentifier = 8, TopicFilters = ["a/#", "x"] });
        yield return ("UNSUBACK", new MqttUnsubAckPacket { PacketIdentifier = 8 });
        yield return ("PINGREQ", new MqttPingReqPacket());
        yield return ("PINGRESP", new MqttPingRespPacket());
        yield return ("DISCONNECT", new MqttDisconnectPacket());
    }

    [Theory]
    [MemberData(nameof(V311Packets))]
    public void Mqtt311_packet_round_trips(string name) =>
        AssertRoundTrip(V311().Single(p => p.Name == name).Packet, MqttProtocolVersion.V311);

    // ------------------------------------------------------------------ MQTT 5.0

    public static TheoryData<string> V500Packets() => [.. V500().Select(p => p.Name)];

    private static IEnumerable<(string Name, MqttPacket Packet)> V500()
    {
        yield return ("CONNECT", new MqttConnectPacket
        {
            ClientId = "c5",
            CleanSession = true,
            KeepAlivePeriod = 30,
            Username = "u",
            Password = [7],
            SessionExpiryInterval = 3600,
            ReceiveMaximum = 20,
            MaximumPacketSize = 65536,
            TopicAliasMaximum = 10,
            RequestResponseInformation = true,
            RequestProblemInformation = false,
            AuthenticationMethod = "none",
            AuthenticationData = [1],
            UserProperties = Props(("k", "v"), ("k", "v2")),
            WillFlag = true,
            WillTopic = "will/5",
            WillMessage = [5, 5],
            WillQoS = MqttQualityOfServiceLevel.AtLeastOnce,
            WillRetain = false,
            WillDelayInterval = 15,
            WillMessageExpiryInterval = 60,
            WillContentType = "text/plain",
            WillResponseTopic = "resp",
            WillCorrelationData = [4, 2],
            WillPayloadFormatIndicator = MqttPayloadFormatIndicator.CharacterData,
            WillUserProperties = Props(("w", "1")),
        });
        yield return ("CONNACK", new MqttConnAckPacket
        {
            ReasonCode = MqttConnectReasonCode.Success,
            IsSessionPresent = true,
            AssignedClientIdentifier = "auto-1",
            ReceiveMaximum = 1024,
            MaximumPacketSize = 1048576,
            TopicAliasMaximum = 64,
            MaximumQoS = MqttQualityOfServiceLevel.AtLeastOnce,
            RetainAvailable = true,
            WildcardSubscriptionAvailable = true,
            SubscriptionIdentifiersAvailable = true,
            SharedSubscriptionAvailable = true,
            ServerKeepAlive = 45,
            ResponseInformation = "response/c5",
            SessionExpiryInterval = 100,
            ReasonString = "welcome",
            UserProperties = Props(("node", "n1")),
        });
        yield return ("CONNACK refused", new MqttConnAckPacket
        {
            ReasonCode = MqttConnectReasonCode.ServerUnavailable,
            // MQTTnet's MQTT 5 decoder also fills the 3.1.1 return code that matches the reason.
            ReturnCode = MqttConnectReturnCode.ConnectionRefusedServerUnavailable,
            ReasonString = "busy",
        });
        yield return ("PUBLISH", new MqttPublishPacket
        {
            Topic = "a/b",
            Payload = new ReadOnlySequence<byte>(Payload),
            QualityOfServiceLevel = MqttQualityOfServiceLevel.AtLeastOnce,
            PacketIdentifier = 42,
            Retain = true,
            ContentType = "application/octet-stream",
            ResponseTopic = "r/t",
            CorrelationData = [1, 2, 3],
            PayloadFormatIndicator = MqttPayloadFormatIndicator.Unspecified,
            MessageExpiryInterval = 120,
            TopicAlias = 3,
            SubscriptionIdentifiers = [1, 268435455],
            UserProperties = Props(("a", "1"), ("a", "2"), ("", "")),
        });
        yield return ("PUBLISH alias only", new MqttPublishPacket { Topic = "", TopicAlias = 3, Payload = new ReadOnlySequence<byte>(Payload) });
        yield return ("PUBACK", new MqttPubAckPacket { PacketIdentifier = 42, ReasonCode = MqttPubAckReasonCode.NoMatchingSubscribers, ReasonString = "nobody", UserProperties = Props(("x", "y")) });
        yield return ("PUBACK success", new MqttPubAckPacket { PacketIdentifier = 43 });
        yield return ("PUBREC", new MqttPubRecPacket { PacketIdentifier = 44, ReasonCode = MqttPubRecReasonCode.QuotaExceeded, ReasonString = "quota" });
        yield return ("PUBREL", new MqttPubRelPacket { PacketIdentifier = 44, ReasonCode = MqttPubRelReasonCode.PacketIdentifierNotFound });
        yield return ("PUBCOMP", new MqttPubCompPacket { PacketIdentifier = 44, ReasonCode = MqttPubCompReasonCode.PacketIdentifierNotFound, ReasonString = "?" });
        yield return ("SUBSCRIBE", new MqttSubscribePacket
        {
            PacketIdentifier = 9,
            SubscriptionIdentifier = 77,
            UserProperties = Props(("s", "1")),
            TopicFilters =
            [
                new MqttTopicFilter
                {
                    Topic = "a/+",
                    QualityOfServiceLevel = MqttQualityOfServiceLevel.ExactlyOnce,
                    NoLocal = true,
                    RetainAsPublished = true,
                    RetainHandling = MqttRetainHandling.SendAtSubscribeIfNewSubscriptionOnly,
                },
                new MqttTopicFilter { Topic = "$share/g/x", QualityOfServiceLevel = MqttQualityOfServiceLevel.AtMostOnce, RetainHandling = MqttRetainHandling.DoNotSendOnSubscribe },
            ],
        });
        yield return ("SUBACK", new MqttSubAckPacket
        {
            PacketIdentifier = 9,
            ReasonCodes = [MqttSubscribeReasonCode.GrantedQoS2, MqttSubscribeReasonCode.TopicFilterInvalid],
            ReasonString = "partly",
            UserProperties = Props(("s", "2")),
        });
        yield return ("UNSUBSCRIBE", new MqttUnsubscribePacket { PacketIdentifier = 10, TopicFilters = ["a/+", "$share/g/x"], UserProperties = Props(("u", "1")) });
        yield return ("UNSUBACK", new MqttUnsubAckPacket
        {
            PacketIdentifier = 10,
            ReasonCodes = [MqttUnsubscribeReasonCode.Success, MqttUnsubscribeReasonCode.NoSubscriptionExisted],
            ReasonString = "done",
        });
        yield return ("PINGREQ", new MqttPingReqPacket());
        yield return ("PINGRESP", new MqttPingRespPacket());
        yield return ("DISCONNECT", new MqttDisconnectPacket
        {
            ReasonCode = MqttDisconnectReasonCode.MalformedPacket,
            SessionExpiryInterval = 5,
            ReasonString = "bad",
            ServerReference = "other:1883",
            UserProperties = Props(("d", "1")),
        });
        yield return ("DISCONNECT normal", new MqttDisconnectPacket());
        yield return ("AUTH", new MqttAuthPacket
        {
            ReasonCode = MqttAuthenticateReasonCode.ContinueAuthentication,
            AuthenticationMethod = "SCRAM-SHA-1",
            AuthenticationData = [1, 2, 3, 4],
            ReasonString = "more",
            UserProperties = Props(("a", "b")),
        });
    }

    [Theory]
    [MemberData(nameof(V500Packets))]
    public void Mqtt5_packet_round_trips(string name) =>
        AssertRoundTrip(V500().Single(p => p.Name == name).Packet, MqttProtocolVersion.V500);

    [Fact]
    public void Connect_of_mqtt310_is_detected_and_round_trips()
    {
        var connect = new MqttConnectPacket { ClientId = "old-client", CleanSession = true, KeepAlivePeriod = 10 };
        AssertRoundTrip(connect, MqttProtocolVersion.V310);
    }

    // ------------------------------------------------------------------ protocol level of a CONNECT body

    [Theory]
    [InlineData(MqttProtocolVersion.V310, 3)]
    [InlineData(MqttProtocolVersion.V311, 4)]
    [InlineData(MqttProtocolVersion.V500, 5)]
    public void Protocol_level_is_read_from_an_encoded_connect(MqttProtocolVersion version, byte level)
    {
        var bytes = new MqttPacketFormatterAdapter(version, new MqttBufferWriter(256, 4096)).Encode(new MqttConnectPacket { ClientId = "x" }).ToArray();
        var buffer = new ReadOnlySequence<byte>(bytes);
        Assert.Equal(FrameStatus.Complete, MqttFrameReader.TryRead(ref buffer, int.MaxValue, out _, out var body, out _));
        Assert.Equal(level, MqttTransport.ProtocolLevelOf(new ArraySegment<byte>(body.ToArray())));
    }

    [Theory]
    // 00 04 "MQTT" level, then (ignored) connect flags
    [InlineData(new byte[] { 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02 }, (byte)4)]
    [InlineData(new byte[] { 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02 }, (byte)5)]
    // 00 06 "MQIsdp" 03
    [InlineData(new byte[] { 0x00, 0x06, 0x4D, 0x51, 0x49, 0x73, 0x64, 0x70, 0x03, 0x02 }, (byte)3)]
    // a level we do not speak is still reported, so the broker can answer CONNACK 0x01
    [InlineData(new byte[] { 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x06, 0x02 }, (byte)6)]
    // the level byte right at the end of the body
    [InlineData(new byte[] { 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04 }, (byte)4)]
    public void Protocol_level_of_known_protocol_names(byte[] body, byte level) =>
        Assert.Equal(level, MqttTransport.ProtocolLevelOf(new ArraySegment<byte>(body)));

    [Theory]
    // unknown name "MQTX"
    [InlineData(new byte[] { 0x00, 0x04, 0x4D, 0x51, 0x54, 0x58, 0x04, 0x02 })]
    // lower-case "mqtt"
    [InlineData(new byte[] { 0x00, 0x04, 0x6D, 0x71, 0x74, 0x74, 0x04, 0x02 })]
    // name length 4 but only "MQT" and no level byte
    [InlineData(new byte[] { 0x00, 0x04, 0x4D, 0x51, 0x54 })]
    // "MQTT" with no level byte
    [InlineData(new byte[] { 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54 })]
    // name length 0xFFFF
    [InlineData(new byte[] { 0xFF, 0xFF, 0x4D, 0x51, 0x54, 0x54, 0x04 })]
    [InlineData(new byte[] { 0x00 })]
    [InlineData(new byte[0])]
    public void Protocol_level_of_an_unknown_or_truncated_name_is_null(byte[] body) =>
        Assert.Null(MqttTransport.ProtocolLevelOf(new ArraySegment<byte>(body)));

    [Fact]
    public void Protocol_level_reads_inside_an_array_segment_with_an_offset()
    {
        byte[] array = [0xEE, 0xEE, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0xEE];
        Assert.Equal((byte)5, MqttTransport.ProtocolLevelOf(new ArraySegment<byte>(array, 2, 7)));
    }
}
