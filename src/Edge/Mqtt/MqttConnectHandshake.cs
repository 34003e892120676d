using Broker.Actors.Configuration;
using Broker.Actors.Messages;
using Broker.Actors.Routing;
using Broker.Actors.Sessions;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace Broker.Edge.Mqtt;

/// <summary>Where a connection is in its handshake: CONNECT, then the session's answer, then CONNACK.</summary>
internal enum ConnectPhase : byte
{
    AwaitingConnect,
    AwaitingSession,
    Connected,
}

/// <summary>A refused CONNECT: the CONNACK code to send (for this connection's protocol version) and why, for the close.</summary>
internal readonly record struct ConnectRefusal(byte Code, string Reason);

/// <summary>
/// The CONNECT handshake of one MQTT connection and who the client turned out to be: the phase, the protocol version,
/// the client ID (assigned when empty), what CONNACK must say, and the packets pipelined behind CONNECT that wait for
/// the session's answer (a list created only when there are some).
/// </summary>
internal sealed class MqttConnectHandshake
{
    private List<InboundPacket>? _early;
    private string? _assignedClientId;
    private uint _connectExpiry;
    private bool _requestResponse;

    public ConnectPhase Phase { get; private set; }

    public MqttProtocolVersion Version { get; private set; }

    public bool IsV5 => Version == MqttProtocolVersion.V500;

    /// <summary>The user name of the CONNECT (null: none, an anonymous client), for authorization.</summary>
    public string? Username { get; private set; }

    /// <summary>"" until a CONNECT is accepted.</summary>
    public string ClientId { get; private set; } = "";

    /// <summary>
    /// An MQTT 3.1.1 CONNACK for a client whose protocol level we do not speak (0x01) or whose empty client ID is
    /// refused before it is decoded (0x02): 20 02 00 code.
    /// </summary>
    public static byte[] RawConnAck(byte returnCode) => [0x20, 0x02, 0x00, returnCode];

    /// <summary>
    /// Validates a CONNECT. Accepted, it returns what the session needs and the connection awaits the session's answer;
    /// refused, it returns null and <paramref name="refusal"/> says which CONNACK to send before closing.
    /// </summary>
    /// <param name="certificateUser">the user named by the client's verified certificate, which replaces the CONNECT's user name (null: none).</param>
    public ConnectInfo? OnConnect(MqttConnectPacket c, MqttProtocolVersion version, BrokerSettings settings, long nowUnixMs, out ConnectRefusal refusal,
        string? certificateUser = null)
    {
        Version = version;
        refusal = default;
        var clientId = c.ClientId ?? "";
        string? assigned = null;
        if (clientId.Length == 0)
        {
            if (!IsV5 && (!c.CleanSession || (byte)version == 3))
            {
                refusal = new ConnectRefusal(0x02, "empty client id without clean session");
                return null;
            }
            clientId = assigned = "auto-" + Guid.NewGuid().ToString("N");
        }
        WillMessage? will = null;
        if (c.WillFlag)
        {
            if (!TopicFilter.IsValidTopicName(c.WillTopic) || !TopicFilter.WithinBounds(c.WillTopic, settings.MaxTopicLength, settings.MaxTopicLevels))
            {
                refusal = new ConnectRefusal(IsV5 ? (byte)0x90 : (byte)0x02, "invalid will topic");
                return null;
            }
            var msg = new PublishedMessage(
                c.WillTopic,
                c.WillMessage ?? [],
                (byte)c.WillQoS,
                c.WillRetain,
                c.WillContentType,
                c.WillResponseTopic,
                c.WillCorrelationData,
                (byte)c.WillPayloadFormatIndicator,
                0,
                ToUserProperties(c.WillUserProperties),
                clientId);
            will = new WillMessage(msg, IsV5 ? c.WillDelayInterval : 0, IsV5 ? c.WillMessageExpiryInterval : 0);
        }
        ClientId = clientId;
        Username = certificateUser ?? c.Username;
        _assignedClientId = assigned;
        _connectExpiry = IsV5 ? c.SessionExpiryInterval : 0;
        _requestResponse = IsV5 && c.RequestResponseInformation;
        Phase = ConnectPhase.AwaitingSession;
        return new ConnectInfo(
            (byte)version,
            c.CleanSession,
            IsV5 ? c.SessionExpiryInterval : 0,
            IsV5 ? c.ReceiveMaximum : (ushort)0,
            IsV5 ? c.MaximumPacketSize : 0,
            IsV5 ? c.TopicAliasMaximum : (ushort)0,
            _requestResponse,
            IsV5 && c.RequestProblemInformation,
            will,
            nowUnixMs);
    }

    /// <summary>A packet that arrived before the session answered waits for it (still counted against the inbound high-water mark).</summary>
    public void Hold(InboundPacket packet) => (_early ??= []).Add(packet);

    /// <summary>The session accepted: the connection is connected; returns the packets held meanwhile, in order.</summary>
    public List<InboundPacket>? OnAccepted()
    {
        Phase = ConnectPhase.Connected;
        var early = _early;
        _early = null;
        return early;
    }

    /// <summary>The session did not answer within the connect timeout: CONNACK 0x88 Server unavailable (3.1.1: 0x03).</summary>
    public byte SessionTimeoutCode => IsV5 ? (byte)0x88 : (byte)0x03;

    /// <summary>
    /// MQTT 5 §3.14.2.2.2: a DISCONNECT may change the Session Expiry Interval, but not raise it from 0 at CONNECT.
    /// </summary>
    public bool MaySetExpiryOnDisconnect(uint expiry) => expiry == 0 || _connectExpiry != 0;

    /// <summary>The CONNACK with <paramref name="code"/>; accepting an MQTT 5 client, it states the server's limits.</summary>
    public MqttConnAckPacket ConnAck(byte code, bool sessionPresent, BrokerSettings settings)
    {
        var ack = new MqttConnAckPacket
        {
            ReturnCode = (MqttConnectReturnCode)code,
            ReasonCode = (MqttConnectReasonCode)code,
            IsSessionPresent = sessionPresent && code == 0,
        };
        if (IsV5 && code == 0)
        {
            ack.AssignedClientIdentifier = _assignedClientId;
            ack.ReceiveMaximum = settings.ReceiveMaximum;
            ack.MaximumPacketSize = (uint)settings.MaxPacketSize;
            ack.TopicAliasMaximum = settings.TopicAliasMaximum;
            ack.MaximumQoS = MqttQualityOfServiceLevel.ExactlyOnce;
            ack.RetainAvailable = true;
            ack.WildcardSubscriptionAvailable = true;
            ack.SubscriptionIdentifiersAvailable = true;
            ack.SharedSubscriptionAvailable = true;
            if (settings.ServerKeepAlive > 0)
            {
                ack.ServerKeepAlive = settings.ServerKeepAlive;
            }
            if (_requestResponse)
            {
                ack.ResponseInformation = "response/" + ClientId;
            }
        }
        return ack;
    }

    public static List<UserProperty>? ToUserProperties(List<MqttUserProperty>? props) =>
        props is { Count: > 0 } ? [.. props.Select(p => new UserProperty(p.Name, p.ReadValueAsString()))] : null;
}
