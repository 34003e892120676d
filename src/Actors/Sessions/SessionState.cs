using System.Collections.Immutable;
using Broker.Actors.Messages;
using Broker.Actors.Routing;

namespace Broker.Actors.Sessions;

/// <summary>
/// Server limits that shape session decisions; they come from configuration (<c>BrokerSettings.Limits</c>), not
/// from the journal. Left out, the topic bounds are the protocol's own (65535 bytes) and the rest unbounded.
/// </summary>
public sealed record SessionLimits(
    int MaxInflight,
    int MaxQueue,
    bool QueueQos0,
    byte MaxQos = 2,
    int MaxTopicLength = 65535,
    int MaxTopicLevels = int.MaxValue,
    int MaxSubscriptions = int.MaxValue,
    int Qos0DropBacklog = int.MaxValue,
    long Qos0DropBacklogBytes = long.MaxValue)
{
    public static readonly SessionLimits Default = new(100, 1000, false);
}

/// <summary>Effect: reply <see cref="DeliverAck"/> to the sender of the command being handled.</summary>
public sealed record AckDeliverEffect
{
    public static readonly AckDeliverEffect Instance = new();
}

/// <summary>Effect: fetch retained messages for a new subscription and deliver them with the retain flag.</summary>
public sealed record RetainedRequestEffect(Subscription Subscription);

/// <summary>
/// The outcome of one command: the state after it, the events to journal (persistent sessions), and the
/// effects to carry out once those events are durable (packets to the connection, acknowledgements).
/// </summary>
public sealed record SessionDecision(SessionState State, IReadOnlyList<ISessionEvent> Events, IReadOnlyList<object> Effects);

/// <summary>
/// The whole state of one MQTT session as a plain immutable value. Protocol decisions are pure
/// functions of it (<c>On…</c> methods); <see cref="Apply"/> folds one event, so replaying the journal
/// rebuilds the same state.
/// </summary>
public sealed record SessionState : IPersisted
{
    public required string ClientId { get; init; }
    public bool Exists { get; init; }
    public bool Connected { get; init; }
    public ConnectInfo? LastConnect { get; init; }
    public WillMessage? Will { get; init; }
    public uint EffectiveExpiry { get; init; }
    public long? DisconnectedAtMs { get; init; }
    public ImmutableSortedDictionary<string, Subscription> Subscriptions { get; init; } =
        ImmutableSortedDictionary.Create<string, Subscription>(StringComparer.Ordinal);
    public ImmutableQueue<OutboundEntry> Queue { get; init; } = ImmutableQueue<OutboundEntry>.Empty;
    public int QueueCount { get; init; }
    public ImmutableDictionary<ushort, InflightEntry> Inflight { get; init; } = ImmutableDictionary<ushort, InflightEntry>.Empty;
    public ImmutableHashSet<ushort> InboundQos2 { get; init; } = ImmutableHashSet<ushort>.Empty;
    public long NextSeq { get; init; } = 1;
    public ushort LastPacketId { get; init; }

    public static SessionState Empty(string clientId) => new() { ClientId = clientId };

    public bool IsPersistent => EffectiveExpiry > 0;

    public byte ProtocolLevel => LastConnect?.ProtocolLevel ?? 4;

    // ---------------------------------------------------------------- event folding

    public SessionState Apply(ISessionEvent e) => e switch
    {
        SessionConnected c => ApplyConnected(c),
        SessionDisconnected d => this with
        {
            Connected = false,
            DisconnectedAtMs = d.AtMs,
            EffectiveExpiry = d.EffectiveExpiry,
            Will = d.KeepWill ? Will : null,
        },
        WillCleared => this with { Will = null },
        SubscriptionAdded a => this with { Subscriptions = Subscriptions.SetItem(a.Subscription.Filter, a.Subscription) },
        SubscriptionRemoved r => this with { Subscriptions = Subscriptions.Remove(r.Filter) },
        MessageQueued q => this with
        {
            Queue = Queue.Enqueue(q.Entry),
            QueueCount = QueueCount + 1,
            NextSeq = Math.Max(NextSeq, q.Entry.Seq + 1),
        },
        MessageSent s => ApplySent(s),
        MessageDropped d => ApplyDropped(d),
        ClientAcked a => ApplyAck(a),
        InboundQos2Changed q => this with { InboundQos2 = q.Released ? InboundQos2.Remove(q.PacketId) : InboundQos2.Add(q.PacketId) },
        SessionHandedOff h => h.State,
        _ => throw new ArgumentOutOfRangeException(nameof(e), e.GetType().Name),
    };

    /// <summary>Whether the message with this <see cref="PublishedMessage.Id"/> still waits in the queue or is in flight.</summary>
    public bool Holds(long messageId)
    {
        if (messageId == 0)
        {
            return false;
        }
        foreach (var e in Queue)
        {
            if (e.Message.Id == messageId)
            {
                return true;
            }
        }
        foreach (var i in Inflight.Values)
        {
            if (i.Entry.Message.Id == messageId)
            {
                return true;
            }
        }
        return false;
    }

    private SessionState ApplyConnected(SessionConnected c)
    {
        var start = c.Info.CleanStart || !Exists ? Empty(ClientId) with { NextSeq = NextSeq, LastPacketId = LastPacketId } : this;
        return start with
        {
            Exists = true,
            Connected = true,
            LastConnect = c.Info,
            Will = c.Info.Will,
            EffectiveExpiry = c.EffectiveExpiry,
        };
    }

    private SessionState ApplySent(MessageSent s)
    {
        var q = Queue.Dequeue(out var head);
        if (head.Seq != s.Seq)
        {
            throw new InvalidOperationException($"session {ClientId}: sent seq {s.Seq} is not the queue head {head.Seq}");
        }
        var stage = head.Qos == 2 ? InflightStage.AwaitPubRec : InflightStage.AwaitPubAck;
        return this with
        {
            Queue = q,
            QueueCount = QueueCount - 1,
            Inflight = Inflight.SetItem(s.PacketId, new InflightEntry(s.PacketId, head, stage)),
            LastPacketId = s.PacketId,
        };
    }

    private SessionState ApplyDropped(MessageDropped d)
    {
        var q = Queue.Dequeue(out var head);
        if (head.Seq != d.Seq)
        {
            throw new InvalidOperationException($"session {ClientId}: dropped seq {d.Seq} is not the queue head {head.Seq}");
        }
        return this with { Queue = q, QueueCount = QueueCount - 1 };
    }

    private SessionState ApplyAck(ClientAcked a)
    {
        if (!Inflight.TryGetValue(a.PacketId, out var entry))
        {
            return this;
        }
        return a.Kind switch
        {
            AckKind.PubRec => this with { Inflight = Inflight.SetItem(a.PacketId, entry with { Stage = InflightStage.AwaitPubComp }) },
            _ => this with { Inflight = Inflight.Remove(a.PacketId) },
        };
    }

    // ---------------------------------------------------------------- decisions

    private sealed class Builder(SessionState state)
    {
        public SessionState State = state;
        public readonly List<ISessionEvent> Events = [];
        public readonly List<object> Effects = [];

        public void Emit(ISessionEvent e)
        {
            State = State.Apply(e);
            Events.Add(e);
        }

        public SessionDecision Done() => new(State, Events, Effects);
    }

    public int Window(SessionLimits limits)
    {
        var clientMax = LastConnect is { ReceiveMaximum: > 0 } c ? c.ReceiveMaximum : 65535;
        return Math.Min(clientMax, limits.MaxInflight);
    }

    public SessionDecision OnConnect(string connectionId, ConnectInfo info, uint effectiveExpiry, SessionLimits limits, long nowMs)
    {
        var b = new Builder(this);
        var sessionPresent = Exists && !info.CleanStart;
        b.Emit(new SessionConnected(info, effectiveExpiry));
        b.Effects.Add(new ConnectAccepted(connectionId, sessionPresent, [.. b.State.InboundQos2]));
        foreach (var inflight in b.State.Inflight.Values.OrderBy(i => i.Entry.Seq))
        {
            b.Effects.Add(inflight.Stage == InflightStage.AwaitPubComp
                ? new SendPubRel(inflight.PacketId)
                : new SendPublish(inflight.PacketId, inflight.Entry.Qos, inflight.Entry.Retain, true, inflight.Entry.Message, inflight.Entry.SubscriptionIds));
        }
        Dispatch(b, limits, nowMs);
        return b.Done();
    }

    /// <summary>
    /// The client's connection stayed open but the incarnation that fed it died with its node: what it had sent may
    /// never have reached the connection, so every message in flight goes again (DUP; PUBREL where PUBREC came), as on
    /// a reconnect, and the queue continues.
    /// </summary>
    public SessionDecision OnResumeAfterFailure(SessionLimits limits, long nowMs)
    {
        var b = new Builder(this);
        foreach (var inflight in b.State.Inflight.Values.OrderBy(i => i.Entry.Seq))
        {
            b.Effects.Add(inflight.Stage == InflightStage.AwaitPubComp
                ? new SendPubRel(inflight.PacketId)
                : new SendPublish(inflight.PacketId, inflight.Entry.Qos, inflight.Entry.Retain, true, inflight.Entry.Message, inflight.Entry.SubscriptionIds));
        }
        Dispatch(b, limits, nowMs);
        return b.Done();
    }

    public SessionDecision OnConnectionClosed(bool graceful, bool publishWill, uint? newExpiry, long nowMs)
    {
        var b = new Builder(this);
        var expiry = newExpiry ?? EffectiveExpiry;
        var keepWill = Will is not null && (!graceful || publishWill);
        b.Emit(new SessionDisconnected(nowMs, expiry, keepWill));
        return b.Done();
    }

    public SessionDecision OnWillPublished()
    {
        var b = new Builder(this);
        if (Will is not null)
        {
            b.Emit(WillCleared.Instance);
        }
        return b.Done();
    }

    public SessionDecision OnSubscribe(ushort packetId, IReadOnlyList<Subscription> subscriptions, SessionLimits limits)
    {
        var b = new Builder(this);
        var codes = new byte[subscriptions.Count];
        var retained = new List<object>();
        var v5 = ProtocolLevel >= 5;
        for (var i = 0; i < subscriptions.Count; i++)
        {
            var sub = subscriptions[i];
            if (!TopicFilter.IsValidFilter(sub.Filter) || !TopicFilter.WithinBounds(sub.Filter, limits.MaxTopicLength, limits.MaxTopicLevels))
            {
                codes[i] = v5 ? (byte)0x8F : (byte)0x80;   // Topic Filter invalid / Failure
                continue;
            }
            if (b.State.Subscriptions.Count >= limits.MaxSubscriptions && !b.State.Subscriptions.ContainsKey(sub.Filter))
            {
                codes[i] = v5 ? (byte)0x97 : (byte)0x80;   // Quota exceeded / Failure; replacing a filter is still allowed
                continue;
            }
            var granted = (byte)Math.Min(sub.Qos, limits.MaxQos);
            var existed = b.State.Subscriptions.ContainsKey(sub.Filter);
            var effective = sub with { Qos = granted };
            b.Emit(new SubscriptionAdded(effective));
            codes[i] = granted;
            var send = !effective.IsShared && effective.RetainHandling switch
            {
                0 => true,
                1 => !existed,
                _ => false,
            };
            if (send)
            {
                retained.Add(new RetainedRequestEffect(effective));
            }
        }
        b.Effects.Add(new SubscribeDone(packetId, codes));
        b.Effects.AddRange(retained);
        return b.Done();
    }

    public SessionDecision OnUnsubscribe(ushort packetId, IReadOnlyList<string> filters, SessionLimits limits)
    {
        var b = new Builder(this);
        var codes = new byte[filters.Count];
        for (var i = 0; i < filters.Count; i++)
        {
            // A filter held from before the bounds were lowered can still be removed.
            if (b.State.Subscriptions.ContainsKey(filters[i]))
            {
                b.Emit(new SubscriptionRemoved(filters[i]));
                codes[i] = 0x00;
            }
            else if (!TopicFilter.WithinBounds(filters[i], limits.MaxTopicLength, limits.MaxTopicLevels))
            {
                codes[i] = 0x8F;   // Topic Filter invalid (MQTT 5; a 3.1.1 UNSUBACK carries no codes)
            }
            else
            {
                codes[i] = 0x11;
            }
        }
        b.Effects.Add(new UnsubscribeDone(packetId, codes));
        return b.Done();
    }

    public SessionDecision OnClientAck(AckKind kind, ushort packetId, SessionLimits limits, long nowMs)
    {
        var b = new Builder(this);
        Inflight.TryGetValue(packetId, out var entry);
        switch (kind)
        {
            case AckKind.PubAck when entry is { Stage: InflightStage.AwaitPubAck }:
            case AckKind.PubComp when entry is { Stage: InflightStage.AwaitPubComp }:
                b.Emit(new ClientAcked(kind, packetId));
                Dispatch(b, limits, nowMs);
                break;
            case AckKind.PubRec when entry is { Stage: InflightStage.AwaitPubRec }:
                b.Emit(new ClientAcked(kind, packetId));
                b.Effects.Add(new SendPubRel(packetId));
                break;
            case AckKind.PubRec:
                // A repeated PUBREC (or one for an unknown id) is answered with PUBREL again.
                b.Effects.Add(new SendPubRel(packetId));
                break;
        }
        return b.Done();
    }

    public SessionDecision OnInboundQos2(ushort packetId, bool release)
    {
        var b = new Builder(this);
        var known = InboundQos2.Contains(packetId);
        if (release ? known : !known)
        {
            b.Emit(new InboundQos2Changed(packetId, release));
        }
        b.Effects.Add(new InboundQos2Done(packetId, release));
        return b.Done();
    }

    /// <summary>A routed message. <paramref name="retainedFor"/> is set for retained messages sent on subscribe.</summary>
    public SessionDecision OnDeliver(PublishedMessage msg, bool nonShared, IReadOnlyList<string>? sharedFilters, SessionLimits limits, long nowMs, Subscription? retainedFor = null)
    {
        var b = new Builder(this);
        if (Exists && !msg.IsExpired(nowMs))
        {
            Route(b, msg, nonShared, sharedFilters, limits, nowMs, retainedFor);
        }
        if (retainedFor is null)
        {
            b.Effects.Add(AckDeliverEffect.Instance);
        }
        return b.Done();
    }

    private void Route(Builder b, PublishedMessage msg, bool nonShared, IReadOnlyList<string>? sharedFilters, SessionLimits limits, long nowMs, Subscription? retainedFor)
    {
        var matched = false;
        var qos = 0;
        var retain = false;
        List<uint>? subIds = null;
        if (retainedFor is not null)
        {
            matched = true;
            qos = Math.Min(msg.Qos, retainedFor.Qos);
            retain = true;
            if (retainedFor.SubscriptionId != 0)
            {
                subIds = [retainedFor.SubscriptionId];
            }
        }
        else
        {
            foreach (var sub in Subscriptions.Values)
            {
                if (sub.IsShared)
                {
                    if (sharedFilters is null || !sharedFilters.Contains(sub.Filter))
                    {
                        continue;
                    }
                }
                else if (!nonShared || !TopicFilter.Matches(sub.Filter, msg.Topic) || (sub.NoLocal && msg.OriginClientId == ClientId))
                {
                    continue;
                }
                matched = true;
                qos = Math.Max(qos, Math.Min(msg.Qos, sub.Qos));
                // MQTT 3.1.1 clears RETAIN on forwarded messages; MQTT 5 keeps it when retain-as-published.
                retain |= msg.Retain && sub.RetainAsPublished && ProtocolLevel >= 5;
                if (sub.SubscriptionId != 0)
                {
                    (subIds ??= []).Add(sub.SubscriptionId);
                }
            }
        }
        if (!matched)
        {
            return;
        }
        if (qos == 0)
        {
            if (Connected && b.State.QueueCount == 0)
            {
                b.Effects.Add(new SendPublish(0, 0, retain, false, msg, subIds));
                return;
            }
            if (!Connected && !limits.QueueQos0)
            {
                return;
            }
            // Behind queued QoS 1/2 messages a QoS 0 message waits its turn, so one publisher's order holds.
        }
        if (b.State.QueueCount >= limits.MaxQueue && (!Connected || qos == 0))
        {
            // Full queue of an offline session (or QoS 0 behind a full queue): the newest message is dropped.
            // A connected session takes QoS 1/2 beyond the bound; its actor then holds the publisher's
            // acknowledgement back until the queue drains (see SessionActor), so nothing acknowledged is lost.
            return;
        }
        b.Emit(new MessageQueued(new OutboundEntry(b.State.NextSeq, msg, (byte)qos, retain, subIds)));
        Dispatch(b, limits, nowMs);
    }

    /// <summary>Moves queued messages to the client while it is connected and its receive window allows.</summary>
    private static void Dispatch(Builder b, SessionLimits limits, long nowMs)
    {
        while (b.State.Connected && b.State.QueueCount > 0)
        {
            var head = b.State.Queue.Peek();
            if (head.Message.IsExpired(nowMs))
            {
                b.Emit(new MessageDropped(head.Seq));
                continue;
            }
            if (head.Qos == 0)
            {
                b.Emit(new MessageDropped(head.Seq));
                b.Effects.Add(new SendPublish(0, 0, head.Retain, false, head.Message, head.SubscriptionIds));
                continue;
            }
            if (b.State.Inflight.Count >= b.State.Window(limits))
            {
                return;
            }
            var pid = b.State.NextPacketId();
            b.Emit(new MessageSent(head.Seq, pid));
            b.Effects.Add(new SendPublish(pid, head.Qos, head.Retain, false, head.Message, head.SubscriptionIds));
        }
    }

    private ushort NextPacketId()
    {
        var id = LastPacketId;
        for (var i = 0; i < 65535; i++)
        {
            id = id == 65535 ? (ushort)1 : (ushort)(id + 1);
            if (!Inflight.ContainsKey(id))
            {
                return id;
            }
        }
        throw new InvalidOperationException("no free packet identifier");
    }

    public SessionInfo ToInfo(string node)
    {
        var c = LastConnect;
        return new SessionInfo(
            ClientId,
            Connected,
            c?.ProtocolLevel ?? 0,
            c?.CleanStart ?? false,
            EffectiveExpiry,
            c?.ConnectedAtMs,
            DisconnectedAtMs,
            c?.ReceiveMaximum ?? 0,
            c?.MaxPacketSize ?? 0,
            c?.TopicAliasMax ?? 0,
            c?.RequestResponse ?? false,
            c?.RequestProblem ?? false,
            Will is not null,
            Inflight.Count,
            QueueCount,
            [.. Subscriptions.Values],
            node);
    }
}
