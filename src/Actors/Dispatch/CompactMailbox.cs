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

/// <summary>A lock-guarded FIFO with a prepend stack for unstashed messages; no allocation when empty.</summary>
public sealed class CompactMessageQueue : IMessageQueue, IUnboundedDequeBasedMessageQueueSemantics
{
    private readonly Queue<Envelope> _queue = new();
    private Stack<Envelope>? _prepended;
    private int _count;
    private bool _grown;

    public bool HasMessages => Volatile.Read(ref _count) > 0;

    public int Count => Volatile.Read(ref _count);

    public void Enqueue(IActorRef receiver, Envelope envelope)
    {
        lock (_queue)
        {
            _queue.Enqueue(envelope);
            _count++;
            _grown |= _queue.Count > 32;
        }
    }

    public void EnqueueFirst(Envelope envelope)
    {
        lock (_queue)
        {
            (_prepended ??= new Stack<Envelope>()).Push(envelope);
            _count++;
        }
    }

    public bool TryDequeue(out Envelope envelope)
    {
        lock (_queue)
        {
            if (_prepended is { Count: > 0 })
            {
                envelope = _prepended.Pop();
                _count--;
                return true;
            }
            if (_queue.TryDequeue(out envelope))
            {
                _count--;
                if (_grown && _queue.Count == 0)
                {
                    // After a burst an idle actor gives its buffer back.
                    _queue.TrimExcess();
                    _grown = false;
                }
                return true;
            }
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
