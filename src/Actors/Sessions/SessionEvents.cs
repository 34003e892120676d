using Broker.Actors.Messages;

namespace Broker.Actors.Sessions;

/// <summary>Events journaled by a persistent session; replaying them rebuilds <see cref="SessionState"/>.</summary>
public interface ISessionEvent : IPersisted;

/// <summary>
/// Journaled by a session that is not otherwise journaled (expiry 0) when it hands off to another node while
/// connected: the next incarnation starts from this state and resumes the connection.
/// </summary>
public sealed record SessionHandedOff(SessionState State) : ISessionEvent;

public sealed record SessionConnected(ConnectInfo Info, uint EffectiveExpiry) : ISessionEvent;

/// <summary><paramref name="KeepWill"/>: the will stays stored until its delay passes or the session ends.</summary>
public sealed record SessionDisconnected(long AtMs, uint EffectiveExpiry, bool KeepWill) : ISessionEvent;

public sealed record WillCleared : ISessionEvent
{
    public static readonly WillCleared Instance = new();
}

public sealed record SubscriptionAdded(Subscription Subscription) : ISessionEvent;

public sealed record SubscriptionRemoved(string Filter) : ISessionEvent;

/// <summary>A QoS 1/2 message (or QoS 0 while queued) waits in the session's queue.</summary>
public sealed record MessageQueued(OutboundEntry Entry) : ISessionEvent;

/// <summary>The head of the queue went to the client under <paramref name="PacketId"/>.</summary>
public sealed record MessageSent(long Seq, ushort PacketId) : ISessionEvent;

/// <summary>The head of the queue was dropped (expired, or too large for the client).</summary>
public sealed record MessageDropped(long Seq) : ISessionEvent;

public sealed record ClientAcked(AckKind Kind, ushort PacketId) : ISessionEvent;

public sealed record InboundQos2Changed(ushort PacketId, bool Released) : ISessionEvent;

/// <summary>A message waiting for, or in flight to, the client.</summary>
public sealed record OutboundEntry(long Seq, PublishedMessage Message, byte Qos, bool Retain, IReadOnlyList<uint>? SubscriptionIds);

public enum InflightStage : byte
{
    AwaitPubAck = 1,
    AwaitPubRec = 2,
    AwaitPubComp = 3,
}

public sealed record InflightEntry(ushort PacketId, OutboundEntry Entry, InflightStage Stage);
