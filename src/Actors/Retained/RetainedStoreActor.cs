using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Broker.Actors.Messages;
using Broker.Actors.Routing;
using Broker.Actors.Sessions;

namespace Broker.Actors.Retained;

/// <summary>Store (or, with an empty payload, delete) the retained message of a topic; answered with <see cref="DeliverAck"/>.</summary>
public sealed record StoreRetained(PublishedMessage Message, long Correlation) : IBrokerSerializable;

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

    public override string? EntityId(object message) => message is StoreRetained or QueryRetained ? EntityName : null;
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
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private int _sinceSnapshot;
    private int _pending;

    public const string TypeName = "retained";

    public override string PersistenceId => "retained";

    public RetainedStoreActor()
    {
        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is RetainedSnapshot s)
            {
                _messages.Clear();
                foreach (var m in s.Messages)
                {
                    _messages[m.Topic] = m;
                }
            }
        });
        Recover<RetainedSet>(e => _messages[e.Message.Topic] = e.Message);
        Recover<RetainedRemoved>(e => _messages.Remove(e.Topic));

        Command<StoreRetained>(cmd =>
        {
            var sender = Sender;
            var msg = cmd.Message;
            IPersisted evt = msg.Payload.Length == 0 ? new RetainedRemoved(msg.Topic) : new RetainedSet(msg);
            Apply(evt);
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

    private void Apply(IPersisted evt)
    {
        switch (evt)
        {
            case RetainedSet s:
                _messages[s.Message.Topic] = s.Message;
                break;
            case RetainedRemoved r:
                _messages.Remove(r.Topic);
                break;
        }
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
