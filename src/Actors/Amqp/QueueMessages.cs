using Akka.Actor;
using Broker.Actors.Messages;

namespace Broker.Actors.Amqp;

/// <summary>
/// A message as an AMQP queue holds it. <paramref name="Properties"/> is the content header's property
/// section exactly as the publisher sent it (16-bit flags, then the present properties), so all fourteen
/// properties and every header table type reach consumers byte for byte. <paramref name="Id"/> is random and
/// non-zero when the publisher waits for a confirm: a queue recognises a copy sent again after a shard move.
/// </summary>
public sealed record AmqpMessage(
    string Exchange,
    string RoutingKey,
    byte[] Properties,
    byte[] Body,
    bool Persistent,
    long ExpiresAtUnixMs = 0,
    long Id = 0);

/// <summary>Every message for one queue entity carries the queue's name (vhost "/" only).</summary>
public interface IQueueCommand : IBrokerSerializable
{
    string Queue { get; }
}

/// <summary>A flow probe (<see cref="Routing.FlowWindow"/>): answered with <see cref="Routing.FlowAck"/> once what the sender enqueued before it is durable.</summary>
public sealed record QueueFlowProbe(string Queue, long Id) : IQueueCommand;

/// <summary>What a queue at its <c>x-max-length</c> does with one more message (<c>x-overflow</c>).</summary>
public enum QueueOverflow
{
    /// <summary>Drops (or dead-letters) the oldest ready message.</summary>
    DropHead,

    /// <summary>Refuses the new one: a confirmed publish is nacked.</summary>
    RejectPublish,

    /// <summary>Refuses the new one and dead-letters it.</summary>
    RejectPublishDlx,
}

/// <summary>The queue arguments the broker acts on, parsed from the declare's argument table.</summary>
public sealed record QueueArguments(
    long? MessageTtlMs = null,
    long? ExpiresMs = null,
    long? MaxLength = null,
    string? DeadLetterExchange = null,
    string? DeadLetterRoutingKey = null,
    QueueOverflow Overflow = QueueOverflow.DropHead)
{
    public static readonly QueueArguments None = new();
}

/// <summary>
/// A queue's definition as the topology owner recorded it. <paramref name="ExclusiveOwner"/> is the
/// connection id that owns an exclusive queue (null otherwise).
/// </summary>
public sealed record QueueDefinition(
    string Name,
    bool Durable,
    bool AutoDelete,
    string? ExclusiveOwner,
    QueueArguments Arguments);

/// <summary>Who a delivery belongs to: one channel of one AMQP connection.</summary>
public readonly record struct ChannelRef(IActorRef Connection, ushort Channel);

/// <summary>How a consumer settles deliveries.</summary>
public enum Settlement : byte
{
    /// <summary>basic.ack: the message is done.</summary>
    Ack,
    /// <summary>nack/reject with requeue, or a channel that closed: back to the queue, redelivered.</summary>
    Requeue,
    /// <summary>nack/reject without requeue: dead-lettered when the queue has a dead-letter exchange, else dropped.</summary>
    Discard,
}

/// <summary>Creates the queue entity if needed (its definition is journaled once) and answers <see cref="QueueReady"/>.</summary>
public sealed record EnsureQueue(QueueDefinition Definition) : IQueueCommand
{
    public string Queue => Definition.Name;
}

public sealed record QueueReady(string Queue, uint MessageCount, uint ConsumerCount) : IBrokerSerializable;

/// <summary>
/// Adds a message. With <paramref name="Confirm"/> the queue answers <see cref="Enqueued"/> once the message is
/// durable (journaled when the queue is durable and the message persistent; at once otherwise).
/// </summary>
public sealed record Enqueue(string Queue, AmqpMessage Message, bool Confirm) : IQueueCommand;

/// <summary>Answer to a confirmed <see cref="Enqueue"/>.</summary>
public sealed record Enqueued(string Queue, long MessageId) : IBrokerSerializable;

/// <summary>The queue entity has no definition (deleted, or never declared): the message was not taken.</summary>
public sealed record QueueMissing(string Queue, long MessageId) : IBrokerSerializable;

/// <summary>The queue is at its max length with <c>x-overflow</c> reject-publish(-dlx): the message was refused.</summary>
public sealed record EnqueueRejected(string Queue, long MessageId) : IBrokerSerializable;

/// <summary>
/// Registers a consumer. <paramref name="Prefetch"/> 0 means no per-consumer limit. Idempotent for the same
/// channel and tag, so a channel may send it again after the queue moved. Answers <see cref="ConsumeOk"/> or
/// <see cref="ConsumeRefused"/>.
/// </summary>
public sealed record Consume(string Queue, ChannelRef Channel, string ConsumerTag, bool NoAck, ushort Prefetch, bool Exclusive, string? ConnectionId) : IQueueCommand;

public sealed record ConsumeOk(string Queue, ushort Channel, string ConsumerTag) : IBrokerSerializable;

/// <summary>
/// 405 when the queue is exclusive to another connection; 403 when an exclusive consumer holds it, or an
/// exclusive consume meets other consumers (RabbitMQ's ACCESS_REFUSED "in exclusive use"); 404 when it does not exist.
/// </summary>
public sealed record ConsumeRefused(string Queue, ushort Channel, string ConsumerTag, ushort ReplyCode, string ReplyText) : IBrokerSerializable;

/// <summary>Removes a consumer; unacknowledged deliveries stay with the channel until it settles them. Answers <see cref="CancelOk"/>.</summary>
public sealed record CancelConsumer(string Queue, ChannelRef Channel, string ConsumerTag) : IQueueCommand;

public sealed record CancelOk(string Queue, ushort Channel, string ConsumerTag) : IBrokerSerializable;

/// <summary>
/// Gives a consumer more room: sent by the channel as it writes deliveries of a no-ack or unlimited
/// consumer to the socket, so the queue never runs further ahead of the client than a window.
/// </summary>
public sealed record ConsumerCredit(string Queue, ChannelRef Channel, string ConsumerTag, int Credit) : IQueueCommand;

/// <summary>
/// A message for a consumer (<paramref name="ConsumerTag"/> set) or a basic.get (tag null).
/// <paramref name="Sequence"/> names the message in the queue; the channel maps its delivery tag to it.
/// <paramref name="Entity"/>: for a basic.get to be acknowledged, the queue entity that gave it (a consumer's
/// deliveries come from the entity that sent them). The channel watches it: once it stops, the delivery's
/// acknowledgement must not reach its next incarnation, which may give the same sequence to another message.
/// </summary>
public sealed record QueueDelivery(string Queue, ushort Channel, string? ConsumerTag, long Sequence, bool Redelivered, AmqpMessage Message, uint MessageCount, IActorRef? Entity = null) : IBrokerSerializable;

/// <summary>Settles deliveries of one channel by sequence.</summary>
public sealed record SettleMessages(string Queue, ChannelRef Channel, long[] Sequences, Settlement Settlement) : IQueueCommand;

/// <summary>basic.get: answers a <see cref="QueueDelivery"/> with a null tag, or <see cref="GetEmpty"/>.</summary>
public sealed record GetMessage(string Queue, ChannelRef Channel, bool NoAck) : IQueueCommand;

public sealed record GetEmpty(string Queue, ushort Channel) : IBrokerSerializable;

/// <summary>Drops every ready message; answers <see cref="QueuePurged"/>.</summary>
public sealed record PurgeQueue(string Queue) : IQueueCommand;

public sealed record QueuePurged(string Queue, uint MessageCount) : IBrokerSerializable;

/// <summary>
/// The admin API's question for a queue it lists: answered with <see cref="QueueStats"/> (zeros when the entity
/// has no queue). It does not keep an entity without a queue alive, so asking for a queue deleted meanwhile leaves
/// nothing behind.
/// </summary>
public sealed record GetQueueStats(string Queue) : IQueueCommand, INotInfluenceReceiveTimeout;

/// <summary>A queue's counts now, and <paramref name="Node"/>: the name of the node its entity runs on.</summary>
public sealed record QueueStats(string Queue, int Ready, int Unacked, int Consumers, string Node) : IBrokerSerializable;

/// <summary>
/// Deletes the queue's content and stops the entity: consumers get <see cref="ConsumerCancelled"/>.
/// Answers <see cref="QueueContentDeleted"/> or, when a condition fails, <see cref="QueueDeleteRefused"/>.
/// </summary>
public sealed record DeleteQueueContent(string Queue, bool IfUnused, bool IfEmpty) : IQueueCommand;

public sealed record QueueContentDeleted(string Queue, uint MessageCount) : IBrokerSerializable;

public sealed record QueueDeleteRefused(string Queue, string ReplyText) : IBrokerSerializable;

/// <summary>The queue cancelled this consumer (queue deleted): the channel sends basic.cancel to the client.</summary>
public sealed record ConsumerCancelled(string Queue, ushort Channel, string ConsumerTag) : IBrokerSerializable;

/// <summary>
/// A channel closed: its consumers are removed and its unacknowledged deliveries requeued. A connection
/// that dies is noticed by death watch to the same effect.
/// </summary>
public sealed record ChannelClosed(string Queue, ChannelRef Channel) : IQueueCommand;

/// <summary>
/// A marker a queue sends itself when a consumer's connection stopped, through the queue region of that
/// connection's node: the way the connection's acknowledgements came. Messages between two actors keep their
/// order, so once it arrives every acknowledgement the connection sent before it stopped has arrived too, and
/// what is still unacknowledged can be requeued. (The death-watch notification goes straight to the queue and
/// can overtake acknowledgements still in the region's or shard's mailbox.)
/// </summary>
public sealed record ConnectionDrained(string Queue, IActorRef Connection) : IQueueCommand;

/// <summary>
/// Sent by a queue to the topology owner when the queue should go away by itself: an auto-delete queue
/// lost its last consumer, or an <c>x-expires</c> queue stayed unused for its whole period.
/// </summary>
public sealed record QueueUnused(string Queue) : ITopologyCommand, IBrokerSerializable;

/// <summary>
/// The queue entity stopped while this consumer was registered (its shard moved to another node, or the
/// node is leaving): the channel registers the consumer again by sending the same <see cref="Consume"/>.
/// Deliveries not yet settled come back as redelivered only if they were journaled.
/// </summary>
public sealed record ConsumerMoved(string Queue, ushort Channel, string ConsumerTag) : IBrokerSerializable;
