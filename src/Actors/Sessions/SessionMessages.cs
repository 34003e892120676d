using Akka.Actor;
using Broker.Actors.Messages;

namespace Broker.Actors.Sessions;

/// <summary>Every message addressed to a session carries the client ID it is sharded by.</summary>
public interface ISessionCommand : IBrokerSerializable
{
    string ClientId { get; }
}

/// <summary>One subscription of a session, as the client asked for it (filter may be <c>$share/g/f</c>).</summary>
public sealed record Subscription(
    string Filter,
    byte Qos,
    bool NoLocal = false,
    bool RetainAsPublished = false,
    byte RetainHandling = 0,
    uint SubscriptionId = 0)
{
    public bool IsShared => Filter.StartsWith(Routing.TopicFilter.SharePrefix, StringComparison.Ordinal);
}

/// <summary>
/// A stored will. <paramref name="ExpirySeconds"/> is the will's message expiry interval, which starts
/// counting when the will is published (0 = none).
/// </summary>
public sealed record WillMessage(PublishedMessage Message, uint DelaySeconds, uint ExpirySeconds = 0);

/// <summary>What a client sent in its last CONNECT, as far as the session needs it.</summary>
public sealed record ConnectInfo(
    byte ProtocolLevel,
    bool CleanStart,
    uint SessionExpiry,
    ushort ReceiveMaximum,
    uint MaxPacketSize,
    ushort TopicAliasMax,
    bool RequestResponse,
    bool RequestProblem,
    WillMessage? Will,
    long ConnectedAtMs);

public enum AckKind : byte
{
    PubAck = 1,
    PubRec = 2,
    PubComp = 3,
}

// ---- edge -> session ----

/// <summary>
/// A client connected (or took over); <paramref name="Connection"/> receives the session's packets. <paramref name="Username"/>
/// ("" without one) is kept in memory for the admin API's filter, never journaled.
/// </summary>
public sealed record Connect(string ClientId, string ConnectionId, ConnectInfo Info, IActorRef Connection, string Username = "") : ISessionCommand;

/// <summary>
/// The network connection ended. <paramref name="Graceful"/>: a DISCONNECT was received (no will unless
/// <paramref name="PublishWill"/>, reason 0x04). <paramref name="NewSessionExpiry"/>: MQTT 5 DISCONNECT may change it.
/// </summary>
public sealed record ConnectionClosed(string ClientId, string ConnectionId, bool Graceful, bool PublishWill, uint? NewSessionExpiry) : ISessionCommand;

public sealed record SubscribeRequest(string ClientId, string ConnectionId, ushort PacketId, IReadOnlyList<Subscription> Subscriptions) : ISessionCommand;

public sealed record UnsubscribeRequest(string ClientId, string ConnectionId, ushort PacketId, IReadOnlyList<string> Filters) : ISessionCommand;

/// <summary>The client acknowledged an outbound QoS 1/2 message (PUBACK, PUBREC or PUBCOMP).</summary>
public sealed record ClientAck(string ClientId, string ConnectionId, AckKind Kind, ushort PacketId) : ISessionCommand;

/// <summary>
/// Inbound QoS 2 bookkeeping: <c>Release = false</c> records that the packet id was routed (before PUBREC);
/// <c>Release = true</c> forgets it on PUBREL (before PUBCOMP).
/// </summary>
public sealed record InboundQos2(string ClientId, string ConnectionId, ushort PacketId, bool Release) : ISessionCommand;

/// <summary>
/// A published message for this session. <paramref name="NonShared"/>: it matched a plain subscription;
/// <paramref name="SharedFilters"/>: the shared subscriptions that picked this session. The session replies
/// <see cref="DeliverAck"/> to the sender once the message is durable (or needs no durability).
/// <paramref name="Retry"/>: sent again after a node left the cluster; a session that already holds the
/// message (same <see cref="PublishedMessage.Id"/>) only acknowledges it.
/// </summary>
public sealed record Deliver(string ClientId, PublishedMessage Message, bool NonShared, IReadOnlyList<string>? SharedFilters, long Correlation, bool Retry = false)
    : ISessionCommand, Dispatch.IQueuedBytes
{
    /// <summary>The payload and topic this message keeps in memory while it waits in the session's mailbox.</summary>
    public int QueuedBytes => Message.Payload.Length + Message.Topic.Length;
}

/// <summary>The connection of a session that moved to another node (graceful hand-off) asks the new incarnation to carry on with it.</summary>
/// <remarks>
/// <paramref name="AfterFailure"/>: the previous incarnation died with its node rather than handing off, so what it had
/// sent the connection may never have arrived: the new one sends what is in flight again (DUP) and continues the queue.
/// </remarks>
public sealed record ResumeSession(string ClientId, string ConnectionId, IActorRef Connection, bool AfterFailure = false) : ISessionCommand;

/// <summary>Stop message of a session whose shard moves to another node (sharding's hand-off).</summary>
public sealed record SessionHandOff
{
    public static readonly SessionHandOff Instance = new();
}

// ---- session -> edge ----

public sealed record ConnectAccepted(string ConnectionId, bool SessionPresent, IReadOnlyList<ushort> PendingInboundQos2) : IBrokerSerializable;

public sealed record SessionTakenOver(string ConnectionId) : IBrokerSerializable;

/// <summary>The session is being handed off to another node; the connection resumes it there (<see cref="ResumeSession"/>).</summary>
public sealed record SessionMoved(string ConnectionId) : IBrokerSerializable;

/// <summary>
/// An operator disconnects the client of <paramref name="ClientId"/> (admin API); with <paramref name="Discard"/> its
/// session ends too (a will is published as at any session end). Answered with <see cref="KickDone"/>.
/// </summary>
public sealed record KickClient(string ClientId, bool Discard) : ISessionCommand;

/// <summary><paramref name="Found"/>: a session or connection of that client ID was there and was told.</summary>
public sealed record KickDone(string ClientId, bool Found) : IBrokerSerializable;

/// <summary>The session tells its connection that an operator disconnects it (MQTT 5: DISCONNECT 0x98).</summary>
public sealed record ClientKicked(string ConnectionId) : IBrokerSerializable;

/// <summary>The session carries on with this connection (after a hand-off); the sender is its new incarnation.</summary>
public sealed record SessionResumed(string ConnectionId) : IBrokerSerializable;

/// <summary>The session cannot carry on with this connection (its node failed): the client must reconnect.</summary>
public sealed record SessionLost(string ConnectionId) : IBrokerSerializable;

public sealed record SendPublish(ushort PacketId, byte Qos, bool Retain, bool Dup, PublishedMessage Message, IReadOnlyList<uint>? SubscriptionIds) : IBrokerSerializable;

public sealed record SendPubRel(ushort PacketId) : IBrokerSerializable;

public sealed record SubscribeDone(ushort PacketId, IReadOnlyList<byte> ReasonCodes) : IBrokerSerializable;

public sealed record UnsubscribeDone(ushort PacketId, IReadOnlyList<byte> ReasonCodes) : IBrokerSerializable;

public sealed record InboundQos2Done(ushort PacketId, bool Release) : IBrokerSerializable;

/// <summary>
/// Reply to a <see cref="Deliver"/> or a retained store write: the message is as durable as it needs to be.
/// <paramref name="Target"/>: the session or the retained store that answers.
/// </summary>
public sealed record DeliverAck(long Correlation, Routing.DeliveryTarget Target) : IBrokerSerializable;

/// <summary>A flow probe (<see cref="Routing.FlowWindow"/>): answered with <see cref="Routing.FlowAck"/> once what the sender sent before it is handled.</summary>
public sealed record SessionFlowProbe(string ClientId, long Id) : ISessionCommand;

// ---- admin view ----

public sealed record SessionInfo(
    string ClientId,
    bool Connected,
    byte ProtocolLevel,
    bool CleanStart,
    uint ExpiryInterval,
    long? ConnectedAtMs,
    long? DisconnectedAtMs,
    ushort ReceiveMaximum,
    uint MaxPacketSize,
    ushort TopicAliasMax,
    bool RequestResponse,
    bool RequestProblem,
    bool HasWill,
    int InflightCount,
    int OfflineQueueDepth,
    IReadOnlyList<Subscription> Subscriptions,
    string Node,
    string ConnectionName = "") : IBrokerSerializable;
