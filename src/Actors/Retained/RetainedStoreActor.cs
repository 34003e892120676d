using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Broker.Actors.Messages;
using Broker.Actors.Routing;
using Broker.Actors.Sessions;

namespace Broker.Actors.Retained;

/// <summary>
/// Store (or, with an empty payload, delete) the retained message of a topic; answered with <see cref="DeliverAck"/>,
/// or <see cref="RetainedRefused"/> when storing it would cross <see cref="RetainedLimits"/>.
/// </summary>
public sealed record StoreRetained(PublishedMessage Message, long Correlation) : IBrokerSerializable;

/// <summary>A flow probe (<see cref="Routing.FlowWindow"/>): answered with <see cref="Routing.FlowAck"/> once what the sender stored before it is durable.</summary>
public sealed record RetainedFlowProbe(long Id) : IBrokerSerializable;

/// <summary>The store is full: the message was not retained (it was still routed to current subscribers).</summary>
public sealed record RetainedRefused(long Correlation) : IBrokerSerializable;

/// <summary>
/// Bounds of the cluster's retained messages (one store for the whole cluster): how many topics hold one, and their
/// payload and topic bytes in all. A new or larger retained message beyond them is refused; deletes always pass.
/// </summary>
public sealed record RetainedLimits(int MaxMessages, long MaxBytes)
{
    public static readonly RetainedLimits None = new(int.MaxValue, long.MaxValue);

    public static long SizeOf(PublishedMessage m) => m.Payload.Length + System.Text.Encoding.UTF8.GetByteCount(m.Topic);
}

/// <summary>A page of the retained messages for the admin API: topics after <paramref name="After"/> starting with <paramref name="Prefix"/>, in order; answered with <see cref="RetainedPage"/>.</summary>
public sealed record ListRetained(string? After, string Prefix, int Limit) : IBrokerSerializable;

/// <summary>
/// One retained message as the admin API lists it. <paramref name="UpdatedAtMs"/>: when the store took it, null for a
/// message recovered from the journal since (the journal does not keep the time).
/// </summary>
public sealed record RetainedRow(string Topic, byte Qos, int PayloadBytes, long? UpdatedAtMs);

public sealed record RetainedPage(IReadOnlyList<RetainedRow> Rows, bool HasMore) : IBrokerSerializable;

/// <summary>An operator removes the retained message of a topic (durably); answered with <see cref="RetainedDeleted"/>.</summary>
public sealed record DeleteRetained(string Topic) : IBrokerSerializable;

public sealed record RetainedDeleted(string Topic, bool Found) : IBrokerSerializable;

/// <summary>Answered with one or more <see cref="RetainedMessages"/> for the same filter, the last one with <c>Last</c> set.</summary>
public sealed record QueryRetained(string Filter) : IBrokerSerializable;

/// <summary>One chunk of the retained messages matching <paramref name="Filter"/>, in topic order (see <see cref="RemoteChunks"/>).</summary>
public sealed record RetainedMessages(string Filter, IReadOnlyList<PublishedMessage> Messages, bool Last = true) : IBrokerSerializable;

public sealed record RetainedSet(PublishedMessage Message) : IPersisted;

public sealed record RetainedRemoved(string Topic) : IPersisted;

public sealed record RetainedSnapshot(IReadOnlyList<PublishedMessage> Messages) : IPersisted;

/// <summary>Stop message of the retained store when its shard moves: it stops once its writes are durable.</summary>
public sealed record RetainedHandOff
{
    public static readonly RetainedHandOff Instance = new();
}

/// <summary>
/// Sends every retained-store message to the one store entity of the cluster (entity type
/// <see cref="RetainedStoreActor.TypeName"/>), wherever sharding places it.
/// </summary>
public sealed class RetainedMessageExtractor() : Akka.Cluster.Sharding.HashCodeMessageExtractor(1)
{
    public const string EntityName = "store";

    public override string? EntityId(object message) => message is StoreRetained or QueryRetained or RetainedFlowProbe or ListRetained or DeleteRetained ? EntityName : null;
}

/// <summary>
/// The cluster's retained messages, one per topic, journaled so they survive a restart. One entity for
/// the whole cluster (a sharded entity, so it moves to a survivor when its node leaves or fails). A
/// write is acknowledged to the publisher only after it is durable.
/// </summary>
public sealed class RetainedStoreActor : ReceivePersistentActor
{
    private const int SnapshotEvery = 1000;
    private readonly Dictionary<string, PublishedMessage> _messages = new(StringComparer.Ordinal);

    /// <summary>When this incarnation stored each topic's message (not journaled: absent for recovered ones).</summary>
    private readonly Dictionary<string, long> _storedAtMs = new(StringComparer.Ordinal);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly RetainedLimits _limits;
    private long _bytes;
    private int _sinceSnapshot;
    private int _pending;

    public const string TypeName = "retained";

    public override string PersistenceId => "retained";

    public RetainedStoreActor(RetainedLimits limits)
    {
        _limits = limits;
        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is RetainedSnapshot s)
            {
                BrokerCounters.Retained.Add(-_messages.Count);
                _messages.Clear();
                _bytes = 0;
                foreach (var m in s.Messages)
                {
                    Apply(new RetainedSet(m));
                }
            }
        });
        // Limits apply to new writes only: what is journaled is recovered even if the limits were lowered since.
        Recover<RetainedSet>(Apply);
        Recover<RetainedRemoved>(Apply);

        Command<StoreRetained>(cmd =>
        {
            var sender = Sender;
            var msg = cmd.Message;
            if (msg.Payload.Length > 0 && Refuses(msg))
            {
                BrokerCounters.RetainedRefused.Increment();
                _log.Warning("retained message on {0} refused: the store holds {1} messages, {2} bytes (limits {3}, {4})",
                    msg.Topic, _messages.Count, _bytes, _limits.MaxMessages, _limits.MaxBytes);
                if (cmd.Correlation != 0)
                {
                    sender.Tell(new RetainedRefused(cmd.Correlation));
                }
                return;
            }
            IPersisted evt = msg.Payload.Length == 0 ? new RetainedRemoved(msg.Topic) : new RetainedSet(msg);
            Apply(evt);
            if (evt is RetainedSet)
            {
                _storedAtMs[msg.Topic] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            }
            _pending++;
            PersistAsync(evt, _ =>
            {
                _pending--;
                if (cmd.Correlation != 0)
                {
                    sender.Tell(new DeliverAck(cmd.Correlation, DeliveryTarget.RetainedStore));
                }
                MaybeSnapshot();
            });
        });
        Command<RetainedFlowProbe>(p =>
        {
            // After the writes of what came before it are durable (PersistAsync handlers run in order).
            var sender = Sender;
            DeferAsync(p.Id, id => sender.Tell(new FlowAck(id)));
        });
        Command<QueryRetained>(q =>
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var isShared = TopicFilter.TryParseShared(q.Filter, out _, out var inner);
            var filter = isShared ? inner : q.Filter;
            var found = new List<PublishedMessage>();
            foreach (var m in _messages.Values)
            {
                if (!m.IsExpired(now) && TopicFilter.Matches(filter, m.Topic))
                {
                    found.Add(m);
                }
            }
            found.Sort((a, b) => string.CompareOrdinal(a.Topic, b.Topic));
            var chunks = RemoteChunks.Split(found, m => m.ApproximateSize).ToList();
            for (var i = 0; i < chunks.Count; i++)
            {
                Sender.Tell(new RetainedMessages(q.Filter, chunks[i], i == chunks.Count - 1));
            }
        });
        Command<ListRetained>(q =>
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var rows = new List<PublishedMessage>();
            foreach (var m in _messages.Values)
            {
                if (!m.IsExpired(now) && Utf8Ordinal.StartsWith(m.Topic, q.Prefix) && (q.After is null || Utf8Ordinal.Instance.Compare(m.Topic, q.After) > 0))
                {
                    rows.Add(m);
                }
            }
            rows.Sort((a, b) => Utf8Ordinal.Instance.Compare(a.Topic, b.Topic));
            var page = rows.Take(q.Limit).Select(m => new RetainedRow(m.Topic, m.Qos, m.Payload.Length,
                _storedAtMs.TryGetValue(m.Topic, out var at) ? at : null)).ToList();
            Sender.Tell(new RetainedPage(page, rows.Count > q.Limit));
        });
        Command<DeleteRetained>(d =>
        {
            var sender = Sender;
            if (!_messages.ContainsKey(d.Topic))
            {
                sender.Tell(new RetainedDeleted(d.Topic, false));
                return;
            }
            var evt = new RetainedRemoved(d.Topic);
            Apply(evt);
            _pending++;
            PersistAsync(evt, _ =>
            {
                _pending--;
                _log.Info("retained message on {0} removed by an operator (admin API)", d.Topic);
                sender.Tell(new RetainedDeleted(d.Topic, true));
                MaybeSnapshot();
            });
        });
        Command<RetainedHandOff>(_ => DeferAsync(0, _ => Context.Stop(Self)));
        Command<SaveSnapshotSuccess>(s =>
        {
            DeleteMessages(s.Metadata.SequenceNr);
            DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1));
        });
        Command<SaveSnapshotFailure>(f => _log.Warning(f.Cause, "retained snapshot failed"));
        Command<DeleteMessagesSuccess>(_ => { });
        Command<DeleteMessagesFailure>(f => _log.Warning(f.Cause, "retained journal cleanup failed"));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning(f.Cause, "retained snapshot cleanup failed"));
    }

    /// <summary>Storing <paramref name="m"/> would cross the limits (replacing a topic's message counts only the size change).</summary>
    private bool Refuses(PublishedMessage m)
    {
        var existing = _messages.GetValueOrDefault(m.Topic);
        var count = _messages.Count + (existing is null ? 1 : 0);
        var bytes = _bytes - (existing is null ? 0 : RetainedLimits.SizeOf(existing)) + RetainedLimits.SizeOf(m);
        return count > _limits.MaxMessages || (bytes > _limits.MaxBytes && bytes > _bytes);
    }

    private void Apply(IPersisted evt)
    {
        switch (evt)
        {
            case RetainedSet s:
                if (_messages.TryGetValue(s.Message.Topic, out var replaced))
                {
                    _bytes -= RetainedLimits.SizeOf(replaced);
                }
                else
                {
                    BrokerCounters.Retained.Add(1);
                }
                _messages[s.Message.Topic] = s.Message;
                _bytes += RetainedLimits.SizeOf(s.Message);
                break;
            case RetainedRemoved r:
                if (_messages.Remove(r.Topic, out var removed))
                {
                    _bytes -= RetainedLimits.SizeOf(removed);
                    BrokerCounters.Retained.Add(-1);
                }
                _storedAtMs.Remove(r.Topic);
                break;
        }
    }

    /// <summary>The store's messages leave this process's count with it (they stay in the journal).</summary>
    protected override void PostStop()
    {
        BrokerCounters.Retained.Add(-_messages.Count);
        base.PostStop();
    }

    private void MaybeSnapshot()
    {
        // Only when every applied event is durable does the in-memory map equal the journal up to LastSequenceNr.
        if (++_sinceSnapshot >= SnapshotEvery && _pending == 0)
        {
            _sinceSnapshot = 0;
            SaveSnapshot(new RetainedSnapshot([.. _messages.Values]));
        }
    }
}
