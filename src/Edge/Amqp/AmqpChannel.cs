using Akka.Actor;
using Broker.Actors.Amqp;

namespace Broker.Edge.Amqp;

/// <summary>State of one open channel of an AMQP connection; the connection actor runs its methods.</summary>
internal sealed class AmqpChannel(ushort number)
{
    public readonly ushort Number = number;

    /// <summary>The server sent channel.close and waits for close-ok; everything else from the client is dropped.</summary>
    public bool Closing;

    /// <summary>
    /// A synchronous method waits for an answer from another actor. Later frames of this channel wait in
    /// <see cref="Backlog"/> so the channel acts on them in the order the client sent them.
    /// </summary>
    public bool Busy;
    public Queue<object>? Backlog;

    /// <summary>The consumer tag whose consume-ok the channel waits for (basic.consume without no-wait).</summary>
    public string? AwaitingConsume;

    public bool Confirm;
    public ulong PublishSeq;
    public ulong ConfirmedUpTo;
    public SortedSet<ulong>? Unconfirmed;

    public bool Tx;
    /// <summary>Publishes held until tx.commit, read as far as routing needs (the TTL applies from the commit).</summary>
    public List<(AmqpInboundPublish Publish, bool Persistent, long? TtlMs)>? TxPublishes;
    /// <summary>Body bytes of <see cref="TxPublishes"/>.</summary>
    public long TxBytes;
    public List<(Settlement Kind, ulong Tag, bool Multiple)>? TxSettles;

    public ushort ConsumerPrefetch;
    public ushort GlobalPrefetch;
    public bool FlowActive = true;

    public readonly Dictionary<string, Consumer> Consumers = new(StringComparer.Ordinal);
    public ulong DeliveryTag;
    public readonly SortedDictionary<ulong, Delivery> Unacked = new();

    /// <summary>Deliveries taken from queues (with the queue entity that sent each) but not written: the channel-wide prefetch is full or flow is off.</summary>
    public Queue<(QueueDelivery Delivery, IActorRef Entity)>? Held;

    /// <summary>The queue a queue.declare named last, for methods that leave the queue name empty.</summary>
    public string? LastQueue;

    /// <summary>Every queue this channel consumed from or got from: told <see cref="ChannelClosed"/> when the channel ends.</summary>
    public readonly HashSet<string> Queues = new(StringComparer.Ordinal);

    public sealed class Consumer(string tag, string queue, bool noAck, ushort prefetch, bool exclusive)
    {
        public readonly string Tag = tag;
        public readonly string Queue = queue;
        public readonly bool NoAck = noAck;
        public readonly ushort Prefetch = prefetch;
        public readonly bool Exclusive = exclusive;

        /// <summary>The queue answered consume-ok (the client got it too, unless no-wait).</summary>
        public bool Registered;

        /// <summary>When the consume was last sent; it is sent again until the queue answers.</summary>
        public long SentAt;

        /// <summary>Deliveries written since credit was last returned to the queue (window-paced consumers).</summary>
        public int Unreported;

        /// <summary>The queue paces this consumer by a credit window rather than by acknowledgements.</summary>
        public bool Windowed => NoAck || Prefetch == 0;
    }

    /// <summary>
    /// An unacknowledged delivery. <paramref name="Entity"/> is the queue entity that sent it (null for basic.get).
    /// <paramref name="Stale"/>: that entity has stopped, and its next incarnation may give the same sequence to another
    /// message, so settling it tells the queue nothing (the queue gives the message again if it kept it).
    /// </summary>
    public readonly record struct Delivery(string Queue, long Sequence, string? ConsumerTag, IActorRef? Entity = null, bool Stale = false);

    /// <summary>The next acknowledgement to send for confirms: everything up to the oldest publish still outstanding.</summary>
    public ulong ConfirmableUpTo => Unconfirmed is { Count: > 0 } u ? u.Min - 1 : PublishSeq;
}
