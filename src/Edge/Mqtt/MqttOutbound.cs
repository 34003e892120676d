using System.Buffers;
using System.Text;
using Broker.Actors.Sessions;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace Broker.Edge.Mqtt;

/// <summary>What becomes of a publish the session sends to the client.</summary>
internal enum OutboundPublish : byte
{
    /// <summary>Encoded: send the buffer.</summary>
    Send,

    /// <summary>A QoS 0 message to a slow client: dropped.</summary>
    Dropped,

    /// <summary>Beyond the client's maximum packet size: skipped as if delivered, the session is told the client's ack.</summary>
    TooLarge,
}

/// <summary>
/// Encoding of what goes to one MQTT client: its protocol version and maximum packet size, one PUBLISH packet reused
/// for every message (created at the first), and the QoS 2 packet ids we acknowledged in the client's place because the
/// message was too large for it or not readable by it, whose PUBREL the connection answers itself. The in-flight window, the packet ids of
/// outbound QoS 1/2 and what is sent again after a reconnect are the session's (<see cref="SessionState"/>).
/// </summary>
/// <param name="qos0DropPendingBytes">above this many unsent bytes to a slow client, QoS 0 messages to it are dropped (<c>mqtt.qos0-drop-pending-bytes</c>).</param>
internal sealed class MqttOutbound(MqttProtocolVersion version, uint clientMaxPacket, long qos0DropPendingBytes)
{

    private MqttPublishPacket? _publish;
    private HashSet<ushort>? _selfAcked;

    /// <summary>0 = no maximum (MQTT 3.1.1, or an MQTT 5 client that set none).</summary>
    public uint ClientMaxPacket => clientMaxPacket;

    /// <summary>
    /// Encodes a publish from the session into <paramref name="buffer"/>, unless it is QoS 0 and the client has more than
    /// <c>qos0DropPendingBytes</c> unsent (<paramref name="pendingBytes"/>), or it is larger than the client
    /// takes (MQTT 5 §3.1.2.11.4). After sending the buffer, call <see cref="Sent"/>.
    /// </summary>
    public OutboundPublish Publish(SendPublish s, long pendingBytes, out MqttPacketBuffer buffer)
    {
        buffer = default;
        var msg = s.Message;
        if (s.Qos == 0 && pendingBytes > qos0DropPendingBytes)
        {
            return OutboundPublish.Dropped;
        }
        var p = _publish ??= new MqttPublishPacket();
        p.Topic = msg.Topic;
        p.Payload = new ReadOnlySequence<byte>(msg.Payload);
        p.QualityOfServiceLevel = (MqttQualityOfServiceLevel)s.Qos;
        p.Retain = s.Retain;
        p.Dup = s.Dup;
        p.PacketIdentifier = s.PacketId;
        if (version == MqttProtocolVersion.V500)
        {
            p.ContentType = msg.ContentType;
            p.ResponseTopic = msg.ResponseTopic;
            p.CorrelationData = msg.CorrelationData;
            p.PayloadFormatIndicator = (MqttPayloadFormatIndicator)msg.PayloadFormat;
            p.MessageExpiryInterval = msg.RemainingExpirySeconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            p.UserProperties = msg.UserProperties is { Count: > 0 } props ? [.. props.Select(u => new MqttUserProperty(u.Name, Encoding.UTF8.GetBytes(u.Value).AsMemory()))] : null;
            p.SubscriptionIdentifiers = s.SubscriptionIds is { Count: > 0 } ids ? [.. ids] : null;
        }
        buffer = MqttCodec.For(version).Encode(p);
        if (clientMaxPacket > 0 && buffer.Length > clientMaxPacket)
        {
            buffer = default;
            SkipAsDelivered(s);
            return OutboundPublish.TooLarge;
        }
        return OutboundPublish.Send;
    }

    /// <summary>
    /// A publish not sent but answered in the client's place (too large for it, or refused by the ACL): for QoS 2 the
    /// session's PUBREL that follows is answered here (<see cref="AnswersPubRel"/>).
    /// </summary>
    public void SkipAsDelivered(SendPublish s)
    {
        if (s.Qos == 2)
        {
            (_selfAcked ??= []).Add(s.PacketId);
        }
    }

    /// <summary>A publish buffer was copied out: a formatter grown past 64 KiB by it gives the memory back.</summary>
    public void Sent(in MqttPacketBuffer buffer)
    {
        if (buffer.Length > 65536)
        {
            MqttCodec.For(version).Cleanup();
        }
    }

    /// <summary>
    /// The session releases a QoS 2 message: true when the client never got it (too large), so the connection answers
    /// PUBCOMP in its place instead of sending PUBREL.
    /// </summary>
    public bool AnswersPubRel(ushort packetId) => _selfAcked?.Remove(packetId) == true;
}
