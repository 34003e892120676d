using Akka.Actor;
using Akka.Configuration;
using Akka.Dispatch;
using Akka.Dispatch.MessageQueues;

namespace Broker.Actors.Dispatch;

/// <summary>
/// Mailbox for the actors that exist once per client (sessions, connections). Most of them are idle
/// most of the time, so the queue starts empty instead of with the 32-slot segment of the default
/// mailbox, and grows only while messages wait. Supports the deque semantics persistent actors need.
/// </summary>
public sealed class CompactMailbox(Settings settings, Config config)
    : MailboxType(settings, config), IProducesMessageQueue<CompactMessageQueue>
{
    public const string ConfigPath = "broker-compact-mailbox";

    public override IMessageQueue Create(IActorRef owner, ActorSystem system) => new CompactMessageQueue();
}

/// <summary>A message that says how many bytes it holds while it waits in a mailbox (<see cref="CompactMessageQueue.Bytes"/>).</summary>
public interface IQueuedBytes
{
    int QueuedBytes { get; }
}

/// <summary>
/// A lock-guarded FIFO with a prepend stack for unstashed messages. A message that finds the queue empty waits in a
/// field; a queue is made only while two or more wait, and dropped again once they are all taken, so an idle actor
/// holds no queue at all.
/// </summary>
public sealed class CompactMessageQueue : IMessageQueue, IUnboundedDequeBasedMessageQueueSemantics
{
    private readonly Lock _gate = new();
    private Envelope _first;
    private bool _hasFirst;
    private Queue<Envelope>? _rest;
    private Stack<Envelope>? _prepended;
    private int _count;
    private long _bytes;

    public bool HasMessages => Volatile.Read(ref _count) > 0;

    public int Count => Volatile.Read(ref _count);

    /// <summary>Bytes the waiting messages hold, as far as they tell (<see cref="IQueuedBytes"/>; others count 0).</summary>
    public long Bytes => Volatile.Read(ref _bytes);

    private static int Weight(in Envelope envelope) => envelope.Message is IQueuedBytes sized ? sized.QueuedBytes : 0;

    public void Enqueue(IActorRef receiver, Envelope envelope)
    {
        lock (_gate)
        {
            if (!_hasFirst && _rest is null)
            {
                _first = envelope;
                _hasFirst = true;
            }
            else
            {
                // Behind the waiting first message (or behind those already queued when it was taken).
                (_rest ??= new Queue<Envelope>()).Enqueue(envelope);
            }
            _count++;
            _bytes += Weight(envelope);
        }
    }

    public void EnqueueFirst(Envelope envelope)
    {
        lock (_gate)
        {
            (_prepended ??= new Stack<Envelope>()).Push(envelope);
            _count++;
            _bytes += Weight(envelope);
        }
    }

    public bool TryDequeue(out Envelope envelope)
    {
        lock (_gate)
        {
            if (_prepended is { Count: > 0 })
            {
                envelope = _prepended.Pop();
                if (_prepended.Count == 0)
                {
                    _prepended = null;
                }
                _count--;
                _bytes -= Weight(envelope);
                return true;
            }
            if (_hasFirst)
            {
                envelope = _first;
                _first = default;
                _hasFirst = false;
                _count--;
                _bytes -= Weight(envelope);
                return true;
            }
            if (_rest is not null && _rest.TryDequeue(out envelope))
            {
                if (_rest.Count == 0)
                {
                    // All taken: the next message waits in the field again.
                    _rest = null;
                }
                _count--;
                _bytes -= Weight(envelope);
                return true;
            }
            envelope = default;
            return false;
        }
    }

    public void CleanUp(IActorRef owner, IMessageQueue deadletters)
    {
        while (TryDequeue(out var envelope))
        {
            deadletters.Enqueue(owner, envelope);
        }
    }
}
