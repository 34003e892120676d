using Broker.Actors.Messages;

namespace Broker.Actors.Amqp.Queues;

/// <summary>Events a queue entity journals; replaying them (after its latest <see cref="QueueSnapshot"/>) rebuilds its journaled content.</summary>
public interface IQueueEvent : IPersisted;

/// <summary>The queue exists with this definition; journaled for every queue, durable or not, so it survives a move to another node.</summary>
public sealed record QueueInitialized(QueueDefinition Definition) : IQueueEvent;

/// <summary>Persistent messages entered a durable queue (those that arrived while the previous write was under way, in order).</summary>
public sealed record MessagesEnqueued(MessageEnqueued[] Messages) : IQueueEvent;

/// <summary>A persistent message in a durable queue, as <see cref="MessagesEnqueued"/> and <see cref="QueueSnapshot"/> hold it.</summary>
public sealed record MessageEnqueued(long Sequence, long EnqueuedAtUnixMs, AmqpMessage Message);

/// <summary>Journaled messages left the queue (acknowledged, consumed without ack, purged, expired, dropped or dead-lettered).</summary>
public sealed record MessagesRemoved(long[] Sequences) : IQueueEvent;

/// <summary>
/// The queue was deleted: replay forgets everything before it. The marker stays in the journal after the
/// earlier events are deleted, so no snapshot or event that escaped deletion can bring the old content back.
/// </summary>
public sealed record QueueDestroyed : IQueueEvent
{
    public static readonly QueueDestroyed Instance = new();
}

/// <summary>The journaled part of a queue: its definition, its journaled messages (ready or unacknowledged) in order, and recent message ids.</summary>
public sealed record QueueSnapshot(QueueDefinition Definition, long NextSequence, IReadOnlyList<MessageEnqueued> Messages, IReadOnlyList<long> RecentIds)
    : IPersisted;
