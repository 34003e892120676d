using System.Buffers;
using System.Text;
using Broker.Actors.Messages;
using Broker.Actors.Sessions;
using Broker.Edge.Mqtt;
using MQTTnet.Adapter;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace Broker.Edge.Tests.Mqtt;

public class MqttOutboundTests
{
    private const long Qos0Limit = 8 * 1024 * 1024;

    private static SendPublish Publish(byte qos, ushort packetId = 1, int payloadBytes = 3, IReadOnlyList<uint>? subscriptionIds = null, List<UserProperty>? props = null) =>
        new(qos == 0 ? (ushort)0 : packetId, qos, Retain: false, Dup: false,
            new PublishedMessage("t/1", new byte[payloadBytes], qos, false, ContentType: "text/plain", UserProperties: props),
            subscriptionIds);

    /// <summary>Decodes what the connection would send, as a client of that version reads it.</summary>
    private static MqttPublishPacket Decode(MqttPacketBuffer buffer, MqttProtocolVersion version)
    {
        var bytes = new ReadOnlySequence<byte>(buffer.ToArray());
        Assert.Equal(FrameStatus.Complete, MqttFrameReader.TryRead(ref bytes, int.MaxValue, out var header, out var body, out var total));
        var decoder = new MqttPacketFormatterAdapter(version, new MqttBufferWriter(256, 65536));
        return Assert.IsType<MqttPublishPacket>(decoder.Decode(new ReceivedMqttPacket(header, new ArraySegment<byte>(body.ToArray()), total)));
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public void A_publish_from_the_session_is_encoded_with_its_packet_id_and_QoS(MqttProtocolVersion version)
    {
        var outbound = new MqttOutbound(version, clientMaxPacket: 0, Qos0Limit);

        Assert.Equal(OutboundPublish.Send, outbound.Publish(Publish(qos: 2, packetId: 9) with { Dup = true }, pendingBytes: 0, out var buffer));

        var p = Decode(buffer, version);
        Assert.Equal(("t/1", (ushort)9, MqttQualityOfServiceLevel.ExactlyOnce, true), (p.Topic, p.PacketIdentifier, p.QualityOfServiceLevel, p.Dup));
        Assert.Equal(3, p.Payload.Length);
    }

    [Fact]
    public void MQTT_5_properties_go_to_an_MQTT_5_client_and_do_not_stay_on_the_next_publish()
    {
        var outbound = new MqttOutbound(MqttProtocolVersion.V500, clientMaxPacket: 0, Qos0Limit);

        outbound.Publish(Publish(1, subscriptionIds: [4], props: [new UserProperty("k", "v")]), 0, out var first);
        var p1 = Decode(first, MqttProtocolVersion.V500);
        outbound.Publish(Publish(1), 0, out var second);
        var p2 = Decode(second, MqttProtocolVersion.V500);

        Assert.Equal("text/plain", p1.ContentType);
        Assert.Equal([4u], p1.SubscriptionIdentifiers);
        Assert.Equal("k", Assert.Single(p1.UserProperties).Name);
        Assert.True(p2.SubscriptionIdentifiers is null or { Count: 0 });
        Assert.True(p2.UserProperties is null or { Count: 0 });
    }

    [Fact]
    public void QoS_0_to_a_client_with_more_than_8_MiB_unsent_is_dropped_and_QoS_1_is_not()
    {
        var outbound = new MqttOutbound(MqttProtocolVersion.V311, clientMaxPacket: 0, Qos0Limit);
        const long backlog = Qos0Limit + 1;

        Assert.Equal(OutboundPublish.Dropped, outbound.Publish(Publish(qos: 0), backlog, out _));
        Assert.Equal(OutboundPublish.Send, outbound.Publish(Publish(qos: 0), Qos0Limit, out _));
        Assert.Equal(OutboundPublish.Send, outbound.Publish(Publish(qos: 1), backlog, out _));
    }

    [Fact]
    public void A_publish_that_just_fits_the_clients_maximum_packet_size_is_sent()
    {
        new MqttOutbound(MqttProtocolVersion.V500, 0, Qos0Limit).Publish(Publish(qos: 1, payloadBytes: 100), 0, out var unlimited);
        var size = (uint)unlimited.Length;
        var outbound = new MqttOutbound(MqttProtocolVersion.V500, clientMaxPacket: size, Qos0Limit);

        Assert.Equal(OutboundPublish.Send, outbound.Publish(Publish(qos: 1, payloadBytes: 100), 0, out var buffer));
        Assert.Equal((int)size, buffer.Length);
        Assert.Equal(OutboundPublish.TooLarge, outbound.Publish(Publish(qos: 1, payloadBytes: 101), 0, out _));
    }

    [Fact]
    public void A_QoS_2_publish_too_large_for_the_client_has_its_PUBREL_answered_by_the_connection_once()
    {
        var outbound = new MqttOutbound(MqttProtocolVersion.V500, clientMaxPacket: 50, Qos0Limit);

        Assert.Equal(OutboundPublish.TooLarge, outbound.Publish(Publish(qos: 2, packetId: 5, payloadBytes: 100), 0, out _));

        Assert.False(outbound.AnswersPubRel(6));
        Assert.True(outbound.AnswersPubRel(5));
        Assert.False(outbound.AnswersPubRel(5));
    }

    [Fact]
    public void A_PUBREL_for_a_delivered_QoS_2_publish_goes_to_the_client()
    {
        var outbound = new MqttOutbound(MqttProtocolVersion.V500, clientMaxPacket: 50, Qos0Limit);

        Assert.Equal(OutboundPublish.Send, outbound.Publish(Publish(qos: 2, packetId: 5), 0, out _));

        Assert.False(outbound.AnswersPubRel(5));
    }
}
