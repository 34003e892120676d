using Akka.Actor;

namespace Broker.Actors.Amqp.Queues;

/// <summary>What a <see cref="QueueState"/> decision causes besides its own change; the queue actor carries it out.</summary>
public interface IQueueEffects
{
    /// <summary>A <see cref="QueueDelivery"/> or <see cref="ConsumerCancelled"/> for a channel of this connection.</summary>
    void Send(IActorRef connection, object message);

    /// <summary>A journaled message left the queue: its removal is journaled too.</summary>
    void Removed(long sequence);

    /// <summary>The message goes to the queue's dead-letter exchange (only called when the queue has one).</summary>
    void DeadLetter(AmqpMessage message, string reason);

    /// <summary>An auto-delete queue lost its last consumer.</summary>
    void Unused();
}

/// <summary>A message while a queue holds it, ready or unacknowledged.</summary>
public sealed class QueuedMessage
{
    internal QueuedMessage(long sequence, AmqpMessage message, long enqueuedAtUnixMs, long expiresAtUnixMs, bool persisted)
    {
        Sequence = sequence;
        Message = message;
        EnqueuedAtUnixMs = enqueuedAtUnixMs;
        ExpiresAtUnixMs = expiresAtUnixMs;
        Persisted = persisted;
    }

    public long Sequence { get; }
    public AmqpMessage Message { get; }
    public long EnqueuedAtUnixMs { get; }

    /// <summary>When the message expires (the earlier of its own expiration and the queue's TTL); 0 = never.</summary>
    public long ExpiresAtUnixMs { get; }

    /// <summary>Whether the message is (or is about to be) in the journal: a persistent message in a durable queue.</summary>
    public bool Persisted { get; internal set; }

    public bool Redelivered { get; internal set; }

    internal bool IsExpired(long now) => ExpiresAtUnixMs != 0 && now > ExpiresAtUnixMs;
}

/// <summary>
/// The state of one AMQP queue: ready messages, consumers with their credit, unacknowledged deliveries per
/// channel. Decisions change it in place (a queue may hold 100k messages; copying is not an option) and report
/// what they cause through <see cref="IQueueEffects"/>, so the logic runs in tests without an actor system.
/// The owner journals <see cref="MessagesEnqueued"/> for messages that come back <see cref="QueuedMessage.Persisted"/>.
/// </summary>
public sealed class QueueState
{
    private static readonly Comparer<QueuedMessage> BySequence = Comparer<QueuedMessage>.Create((a, b) => a.Sequence.CompareTo(b.Sequence));

    private readonly IQueueEffects _effects;
    private readonly int _window;

    // The ready messages in sequence order are _requeued followed by _fresh. A delivery always takes the
    // smallest ready sequence, and new messages get larger sequences than any before, so a message that comes
    // back is older than every message in _fresh: only the (usually few) requeued ones need a sorted set.
    private readonly SortedSet<QueuedMessage> _requeued = new(BySequence);
    private readonly Queue<QueuedMessage> _fresh = new();

    private readonly Dictionary<(ChannelRef, string), Consumer> _consumers = [];
    private readonly List<Consumer> _rotation = [];
    private readonly Dictionary<ChannelRef, ChannelDeliveries> _channels = [];
    private readonly HashSet<long> _idsHeld = [];
    private readonly long[] _recentRing;
    private readonly HashSet<long> _recent = [];
    private int _recentNext;
    private int _next;
    private int _withCredit;
    private QueuedMessage? _enqueuing;
    private Dictionary<long, MessageEnqueued>? _recovering;

    public QueueState(string name, IQueueEffects effects, int consumerWindow = 1000, int recentIds = 1024)
    {
        Name = name;
        _effects = effects;
        _window = consumerWindow;
        _recentRing = new long[Math.Max(1, recentIds)];
    }

    public string Name { get; }
    public QueueDefinition? Definition { get; private set; }
    public bool Exists => Definition is not null;
    public long NextSequence { get; private set; } = 1;
    public int ReadyCount => _requeued.Count + _fresh.Count;
    public int UnackedCount { get; private set; }
    public int ConsumerCount => _rotation.Count;

    /// <summary>Messages held that are in the journal (ready or unacknowledged): the size of a snapshot.</summary>
    public int PersistedCount { get; private set; }

    /// <summary>Last declare, basic.get, or moment the last consumer left (for <c>x-expires</c>).</summary>
    public long LastUsedUnixMs { get; private set; }

    /// <summary>When the head message expires; 0 = it does not (or the queue is empty).</summary>
    public long HeadExpiry => Head()?.ExpiresAtUnixMs ?? 0;

    public IEnumerable<(ChannelRef Channel, string ConsumerTag)> Consumers
    {
        get
        {
            foreach (var c in _rotation)
            {
                yield return (c.Channel, c.Tag);
            }
        }
    }

    // ---------------------------------------------------------------- definition

    /// <summary>Declares the queue; true when the definition is new or changed (and must be journaled).</summary>
    public bool Define(QueueDefinition definition, long now)
    {
        LastUsedUnixMs = now;
        if (definition == Definition)
        {
            return false;
        }
        Definition = definition;
        return true;
    }

    // ---------------------------------------------------------------- messages in

    /// <summary>Whether a message with this id was accepted lately or is still held: a copy sent again.</summary>
    public bool Holds(long messageId) => messageId != 0 && (_recent.Contains(messageId) || _idsHeld.Contains(messageId));

    /// <summary>
    /// Adds a message and hands it (or older ones) to consumers with credit. The returned entry is
    /// <see cref="QueuedMessage.Persisted"/> when the owner must journal it: not when it already left the queue
    /// (a no-ack consumer took it, or max-length dropped it) before anything was written.
    /// </summary>
    public QueuedMessage Enqueue(AmqpMessage message, long now)
    {
        var definition = Definition ?? throw new InvalidOperationException($"queue '{Name}' is not declared");
        var entry = new QueuedMessage(NextSequence++, message, now, ExpiryOf(message, now), definition.Durable && message.Persistent);
        if (entry.Persisted)
        {
            PersistedCount++;
        }
        if (message.Id != 0)
        {
            _idsHeld.Add(message.Id);
            Remember(message.Id);
        }
        _fresh.Enqueue(entry);
        _enqueuing = entry;
        Dispatch(now);
        EnforceMaxLength();
        _enqueuing = null;
        return entry;
    }

    // ---------------------------------------------------------------- consumers

    /// <summary>Registers a consumer; answers <see cref="ConsumeOk"/> or <see cref="ConsumeRefused"/>. Deliveries start with the next <see cref="Dispatch"/>.</summary>
    public object Consume(Consume c, long now)
    {
        var definition = Definition ?? throw new InvalidOperationException($"queue '{Name}' is not declared");
        var ch = c.Channel;
        if (definition.ExclusiveOwner is not null && definition.ExclusiveOwner != c.ConnectionId)
        {
            return new ConsumeRefused(Name, ch.Channel, c.ConsumerTag, 405, $"cannot obtain exclusive access to locked queue '{Name}' in vhost '/'");
        }
        if (_consumers.ContainsKey((ch, c.ConsumerTag)))
        {
            return new ConsumeOk(Name, ch.Channel, c.ConsumerTag);
        }
        // An exclusive consumer is always the only one, so the first in the rotation tells.
        if (_rotation.Count > 0 && (c.Exclusive || _rotation[0].Exclusive))
        {
            return new ConsumeRefused(Name, ch.Channel, c.ConsumerTag, 403, $"queue '{Name}' in vhost '/' in exclusive use");
        }
        var consumer = new Consumer(ch, c.ConsumerTag, c.NoAck, c.Prefetch, c.Exclusive, _window);
        _consumers.Add((ch, c.ConsumerTag), consumer);
        _rotation.Add(consumer);
        ChannelOf(ch).Consumers++;
        LastUsedUnixMs = now;
        if (consumer.HasCredit)
        {
            _withCredit++;
        }
        return new ConsumeOk(Name, ch.Channel, c.ConsumerTag);
    }

    /// <summary>Removes a consumer; its unacknowledged deliveries stay with the channel.</summary>
    public void Cancel(ChannelRef channel, string consumerTag, long now)
    {
        if (_consumers.Remove((channel, consumerTag), out var consumer))
        {
            RemoveConsumer(consumer, now);
            if (_rotation.Count == 0)
            {
                LostLastConsumer();
            }
        }
    }

    public void Credit(ChannelRef channel, string consumerTag, int credit, long now)
    {
        if (credit <= 0 || !_consumers.TryGetValue((channel, consumerTag), out var consumer))
        {
            return;
        }
        var before = consumer.HasCredit;
        consumer.Credit = (int)Math.Min((long)consumer.Credit + credit, int.MaxValue);
        if (!before && consumer.HasCredit)
        {
            _withCredit++;
        }
        Dispatch(now);
    }

    /// <summary>Hands ready messages to consumers with credit, in turn, until either runs out.</summary>
    public void Dispatch(long now)
    {
        while (_withCredit > 0 && ReadyCount > 0)
        {
            var consumer = NextWithCredit();
            if (TakeHead(now) is not { } message)
            {
                return;
            }
            Deliver(consumer, message);
        }
    }

    // ---------------------------------------------------------------- deliveries out

    /// <summary>basic.get: the head message, or null when there is none.</summary>
    public QueueDelivery? Get(ChannelRef channel, bool noAck, long now)
    {
        LastUsedUnixMs = now;
        if (TakeHead(now) is not { } message)
        {
            return null;
        }
        if (noAck)
        {
            Leave(message);
        }
        else
        {
            ChannelOf(channel).Unacked.Add(message.Sequence, new Outstanding(message, null));
            UnackedCount++;
        }
        return new QueueDelivery(Name, channel.Channel, null, message.Sequence, message.Redelivered, message.Message, (uint)ReadyCount);
    }

    /// <summary>Settles deliveries of one channel; sequences not outstanding on that channel are ignored.</summary>
    public void Settle(ChannelRef channel, ReadOnlySpan<long> sequences, Settlement settlement, long now)
    {
        if (!_channels.TryGetValue(channel, out var deliveries))
        {
            return;
        }
        foreach (var sequence in sequences)
        {
            if (!deliveries.Unacked.Remove(sequence, out var unacked))
            {
                continue;
            }
            UnackedCount--;
            if (unacked.Consumer is { } consumer)
            {
                var before = consumer.HasCredit;
                consumer.Unacked--;
                if (!before && consumer.HasCredit)
                {
                    _withCredit++;
                }
            }
            switch (settlement)
            {
                case Settlement.Ack:
                    Leave(unacked.Message);
                    break;
                case Settlement.Requeue:
                    Requeue(unacked.Message);
                    break;
                default:
                    DeadLetterOrDrop(unacked.Message, "rejected");
                    break;
            }
        }
        ForgetIfIdle(channel, deliveries);
        Dispatch(now);
    }

    /// <summary>A channel closed: its consumers go, its unacknowledged deliveries come back as redelivered.</summary>
    public void ChannelClosed(ChannelRef channel, long now)
    {
        var hadConsumers = _rotation.Count > 0;
        CloseChannel(channel, now);
        if (hadConsumers && _rotation.Count == 0)
        {
            LostLastConsumer();
        }
        Dispatch(now);
    }

    /// <summary>
    /// A connection stopped: its consumers go at once, so nothing more is handed to it. Its unacknowledged
    /// deliveries stay until <see cref="ConnectionLost"/>, so acknowledgements it sent before it stopped still
    /// take effect when they arrive after the news of its death.
    /// </summary>
    public void ConnectionStopped(IActorRef connection, long now)
    {
        var hadConsumers = _rotation.Count > 0;
        for (var i = _rotation.Count - 1; i >= 0; i--)
        {
            var consumer = _rotation[i];
            if (consumer.Channel.Connection.Equals(connection))
            {
                _consumers.Remove((consumer.Channel, consumer.Tag));
                RemoveConsumer(consumer, now);
            }
        }
        if (hadConsumers && _rotation.Count == 0)
        {
            LostLastConsumer();
        }
    }

    /// <summary>A connection died: every channel of it closed.</summary>
    public void ConnectionLost(IActorRef connection, long now)
    {
        var hadConsumers = _rotation.Count > 0;
        List<ChannelRef>? closed = null;
        foreach (var channel in _channels.Keys)
        {
            if (channel.Connection.Equals(connection))
            {
                (closed ??= []).Add(channel);
            }
        }
        if (closed is null)
        {
            return;
        }
        foreach (var channel in closed)
        {
            CloseChannel(channel, now);
        }
        if (hadConsumers && _rotation.Count == 0)
        {
            LostLastConsumer();
        }
        Dispatch(now);
    }

    /// <summary>Drops expired messages at the head (messages behind an unexpired head wait their turn, as in RabbitMQ).</summary>
    public void ExpireHeads(long now)
    {
        while (Head() is { } head && head.IsExpired(now))
        {
            RemoveHead();
            DeadLetterOrDrop(head, "expired");
        }
    }

    // ---------------------------------------------------------------- purge and delete

    /// <summary>Drops every ready message (unacknowledged ones stay); answers how many.</summary>
    public int Purge()
    {
        var count = ReadyCount;
        foreach (var message in _requeued)
        {
            Leave(message);
        }
        foreach (var message in _fresh)
        {
            Leave(message);
        }
        _requeued.Clear();
        _fresh.Clear();
        return count;
    }

    /// <summary>Why a queue.delete with these conditions is refused, or null.</summary>
    public string? DeleteRefusal(bool ifUnused, bool ifEmpty)
    {
        if (ifUnused && ConsumerCount > 0)
        {
            return $"PRECONDITION_FAILED - queue '{Name}' in vhost '/' in use";
        }
        if (ifEmpty && ReadyCount > 0)
        {
            return $"PRECONDITION_FAILED - queue '{Name}' in vhost '/' not empty";
        }
        return null;
    }

    /// <summary>Cancels every consumer and forgets the queue; answers how many ready messages it held.</summary>
    public int Delete()
    {
        var count = ReadyCount;
        foreach (var consumer in _rotation)
        {
            _effects.Send(consumer.Channel.Connection, new ConsumerCancelled(Name, consumer.Channel.Channel, consumer.Tag));
        }
        Reset();
        return count;
    }

    // ---------------------------------------------------------------- journal

    /// <summary>Replays one journaled event; <see cref="CompleteRecovery"/> then makes the recovered messages ready.</summary>
    public void Recover(IQueueEvent e)
    {
        switch (e)
        {
            case QueueInitialized i:
                Definition = i.Definition;
                break;
            case MessagesEnqueued batch:
                _recovering ??= [];
                foreach (var m in batch.Messages)
                {
                    _recovering[m.Sequence] = m;
                    NextSequence = Math.Max(NextSequence, m.Sequence + 1);
                    Remember(m.Message.Id);
                }
                break;
            case MessagesRemoved r when _recovering is not null:
                foreach (var sequence in r.Sequences)
                {
                    _recovering.Remove(sequence);
                }
                break;
            case QueueDestroyed:
                Reset();
                _recovering = null;
                break;
        }
    }

    public void RestoreSnapshot(QueueSnapshot snapshot)
    {
        Reset();
        Definition = snapshot.Definition;
        NextSequence = snapshot.NextSequence;
        _recovering = new Dictionary<long, MessageEnqueued>(snapshot.Messages.Count);
        foreach (var m in snapshot.Messages)
        {
            _recovering[m.Sequence] = m;
        }
        foreach (var id in snapshot.RecentIds)
        {
            Remember(id);
        }
    }

    /// <summary>
    /// Makes the recovered messages ready, in order. They count as redelivered, as in RabbitMQ: the journal does
    /// not say whether a consumer had them before the entity stopped.
    /// </summary>
    public void CompleteRecovery(long now)
    {
        LastUsedUnixMs = now;
        if (_recovering is null)
        {
            return;
        }
        var recovered = new MessageEnqueued[_recovering.Count];
        _recovering.Values.CopyTo(recovered, 0);
        _recovering = null;
        if (Definition is null)
        {
            return;
        }
        Array.Sort(recovered, static (a, b) => a.Sequence.CompareTo(b.Sequence));
        foreach (var m in recovered)
        {
            var entry = new QueuedMessage(m.Sequence, m.Message, m.EnqueuedAtUnixMs, ExpiryOf(m.Message, m.EnqueuedAtUnixMs), persisted: true)
            {
                Redelivered = true,
            };
            _fresh.Enqueue(entry);
            PersistedCount++;
            if (m.Message.Id != 0)
            {
                _idsHeld.Add(m.Message.Id);
            }
        }
    }

    /// <summary>The journaled part of the state; call it only when every journaled change is durable.</summary>
    public QueueSnapshot ToSnapshot()
    {
        var definition = Definition ?? throw new InvalidOperationException($"queue '{Name}' is not declared");
        var messages = new List<MessageEnqueued>(PersistedCount);
        foreach (var m in _requeued)
        {
            AddPersisted(messages, m);
        }
        foreach (var m in _fresh)
        {
            AddPersisted(messages, m);
        }
        foreach (var deliveries in _channels.Values)
        {
            foreach (var unacked in deliveries.Unacked.Values)
            {
                AddPersisted(messages, unacked.Message);
            }
        }
        messages.Sort(static (a, b) => a.Sequence.CompareTo(b.Sequence));
        var recent = new List<long>(_recent.Count);
        for (var i = 0; i < _recentRing.Length; i++)
        {
            var id = _recentRing[(_recentNext + i) % _recentRing.Length];
            if (id != 0)
            {
                recent.Add(id);
            }
        }
        return new QueueSnapshot(definition, NextSequence, messages, recent);
    }

    private static void AddPersisted(List<MessageEnqueued> messages, QueuedMessage m)
    {
        if (m.Persisted)
        {
            messages.Add(new MessageEnqueued(m.Sequence, m.EnqueuedAtUnixMs, m.Message));
        }
    }

    // ---------------------------------------------------------------- internals

    private long ExpiryOf(AmqpMessage message, long enqueuedAt)
    {
        var at = message.ExpiresAtUnixMs;
        if (Definition?.Arguments.MessageTtlMs is { } ttl)
        {
            var byQueue = enqueuedAt + Math.Max(0, ttl);
            if (at == 0 || byQueue < at)
            {
                at = byQueue;
            }
        }
        return at;
    }

    private QueuedMessage? Head() => _requeued.Count > 0 ? _requeued.Min : _fresh.Count > 0 ? _fresh.Peek() : null;

    private void RemoveHead()
    {
        if (_requeued.Count > 0)
        {
            _requeued.Remove(_requeued.Min!);
        }
        else
        {
            _fresh.Dequeue();
        }
    }

    /// <summary>Takes the first unexpired ready message, dropping (or dead-lettering) expired ones on the way.</summary>
    private QueuedMessage? TakeHead(long now)
    {
        while (Head() is { } head)
        {
            RemoveHead();
            if (!head.IsExpired(now))
            {
                return head;
            }
            DeadLetterOrDrop(head, "expired");
        }
        return null;
    }

    /// <summary>
    /// With <c>x-overflow</c> reject-publish or reject-publish-dlx, refuses a new message when the queue holds its max
    /// length of ready messages (true); reject-publish-dlx then dead-letters it (reason "maxlen").
    /// </summary>
    public bool RefuseIfFull(AmqpMessage message)
    {
        if (Definition?.Arguments is not { Overflow: not QueueOverflow.DropHead, MaxLength: { } max } arguments || ReadyCount < max)
        {
            return false;
        }
        if (arguments.Overflow == QueueOverflow.RejectPublishDlx && arguments.DeadLetterExchange is not null)
        {
            _effects.DeadLetter(message, "maxlen");
        }
        return true;
    }

    private void EnforceMaxLength()
    {
        if (Definition?.Arguments is not { Overflow: QueueOverflow.DropHead, MaxLength: { } max })
        {
            return;
        }
        while (ReadyCount > Math.Max(0, max))
        {
            var head = Head()!;
            RemoveHead();
            DeadLetterOrDrop(head, "maxlen");
        }
    }

    private void Requeue(QueuedMessage message)
    {
        message.Redelivered = true;
        _requeued.Add(message);
    }

    private void DeadLetterOrDrop(QueuedMessage message, string reason)
    {
        Leave(message);
        if (Definition?.Arguments.DeadLetterExchange is not null)
        {
            _effects.DeadLetter(message.Message, reason);
        }
    }

    /// <summary>The message is gone from this queue for good.</summary>
    private void Leave(QueuedMessage message)
    {
        if (message.Message.Id != 0)
        {
            _idsHeld.Remove(message.Message.Id);
        }
        if (!message.Persisted)
        {
            return;
        }
        PersistedCount--;
        if (ReferenceEquals(message, _enqueuing))
        {
            // Gone before it was written: neither its arrival nor its removal needs journaling.
            message.Persisted = false;
            return;
        }
        _effects.Removed(message.Sequence);
    }

    private void Deliver(Consumer consumer, QueuedMessage message)
    {
        if (consumer.NoAck)
        {
            Leave(message);
        }
        else
        {
            ChannelOf(consumer.Channel).Unacked.Add(message.Sequence, new Outstanding(message, consumer));
            UnackedCount++;
            consumer.Unacked++;
        }
        if (!consumer.LimitedByPrefetch)
        {
            consumer.Credit--;
        }
        if (!consumer.HasCredit)
        {
            _withCredit--;
        }
        _effects.Send(consumer.Channel.Connection,
            new QueueDelivery(Name, consumer.Channel.Channel, consumer.Tag, message.Sequence, message.Redelivered, message.Message, (uint)ReadyCount));
    }

    private Consumer NextWithCredit()
    {
        var count = _rotation.Count;
        for (var i = 0; i < count; i++)
        {
            var index = (_next + i) % count;
            var consumer = _rotation[index];
            if (consumer.HasCredit)
            {
                _next = (index + 1) % count;
                return consumer;
            }
        }
        throw new InvalidOperationException($"queue '{Name}': {_withCredit} consumers counted with credit, none found");
    }

    private ChannelDeliveries ChannelOf(ChannelRef channel)
    {
        if (!_channels.TryGetValue(channel, out var deliveries))
        {
            deliveries = new ChannelDeliveries();
            _channels.Add(channel, deliveries);
        }
        return deliveries;
    }

    private void ForgetIfIdle(ChannelRef channel, ChannelDeliveries deliveries)
    {
        if (deliveries.Consumers == 0 && deliveries.Unacked.Count == 0)
        {
            _channels.Remove(channel);
        }
    }

    private void CloseChannel(ChannelRef channel, long now)
    {
        if (!_channels.Remove(channel, out var deliveries))
        {
            return;
        }
        for (var i = _rotation.Count - 1; i >= 0 && deliveries.Consumers > 0; i--)
        {
            var consumer = _rotation[i];
            if (consumer.Channel == channel)
            {
                _consumers.Remove((channel, consumer.Tag));
                deliveries.Consumers--;
                RemoveConsumer(consumer, now);
            }
        }
        foreach (var unacked in deliveries.Unacked.Values)
        {
            Requeue(unacked.Message);
        }
        UnackedCount -= deliveries.Unacked.Count;
    }

    private void RemoveConsumer(Consumer consumer, long now)
    {
        if (consumer.HasCredit)
        {
            _withCredit--;
        }
        consumer.Removed = true;
        var index = _rotation.IndexOf(consumer);
        _rotation.RemoveAt(index);
        if (index < _next)
        {
            _next--;
        }
        if (_next >= _rotation.Count)
        {
            _next = 0;
        }
        if (_channels.TryGetValue(consumer.Channel, out var deliveries))
        {
            deliveries.Consumers--;
            ForgetIfIdle(consumer.Channel, deliveries);
        }
        if (_rotation.Count == 0)
        {
            LastUsedUnixMs = now;
        }
    }

    private void LostLastConsumer()
    {
        if (Definition?.AutoDelete == true)
        {
            _effects.Unused();
        }
    }

    private void Remember(long id)
    {
        if (id == 0 || !_recent.Add(id))
        {
            return;
        }
        var evicted = _recentRing[_recentNext];
        if (evicted != 0)
        {
            _recent.Remove(evicted);
        }
        _recentRing[_recentNext] = id;
        _recentNext = (_recentNext + 1) % _recentRing.Length;
    }

    private void Reset()
    {
        Definition = null;
        _requeued.Clear();
        _fresh.Clear();
        _consumers.Clear();
        _rotation.Clear();
        _channels.Clear();
        _idsHeld.Clear();
        _recent.Clear();
        Array.Clear(_recentRing);
        _recentNext = 0;
        _next = 0;
        _withCredit = 0;
        UnackedCount = 0;
        PersistedCount = 0;
    }

    private sealed class Consumer(ChannelRef channel, string tag, bool noAck, ushort prefetch, bool exclusive, int credit)
    {
        public readonly ChannelRef Channel = channel;
        public readonly string Tag = tag;
        public readonly bool NoAck = noAck;
        public readonly ushort Prefetch = prefetch;
        public readonly bool Exclusive = exclusive;
        public int Credit = credit;
        public int Unacked;
        public bool Removed;

        /// <summary>A manual-ack consumer with a prefetch count is limited by its unacknowledged deliveries, not by the window.</summary>
        public bool LimitedByPrefetch => !NoAck && Prefetch > 0;

        public bool HasCredit => !Removed && (LimitedByPrefetch ? Unacked < Prefetch : Credit > 0);
    }

    private readonly record struct Outstanding(QueuedMessage Message, Consumer? Consumer);

    private sealed class ChannelDeliveries
    {
        public readonly Dictionary<long, Outstanding> Unacked = [];
        public int Consumers;
    }
}
