using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Event;
using Akka.Persistence;
using Broker.Actors.Routing;

namespace Broker.Actors.Amqp.Queues;

/// <summary>Stop message of a queue entity (shard hand-off and passivation): it stops once its journal writes are done.</summary>
public sealed record QueueHandOff
{
    public static readonly QueueHandOff Instance = new();
}

/// <summary>
/// One AMQP queue, sharded by name (entity type <see cref="TypeName"/>). Decisions come from
/// <see cref="QueueState"/>; this actor journals what must survive (the definition, persistent messages of a
/// durable queue and their removal), confirms publishes once they are durable, and carries out the effects.
/// Enqueues and removals are gathered into one event per pass over the mailbox (<see cref="FlushWrites"/>)
/// and written asynchronously; events issued while a write is under way go out together with the next one,
/// so a burst of confirmed publishes costs a few journal round trips, not one per message.
/// </summary>
public sealed class QueueActor : ReceivePersistentActor, IWithTimers
{
    public const string TypeName = "amqp-queue";

    private sealed record FlushWrites
    {
        public static readonly FlushWrites Instance = new();
    }

    private sealed record ExpiryDue
    {
        public static readonly ExpiryDue Instance = new();
    }

    private sealed record UnusedDue
    {
        public static readonly UnusedDue Instance = new();
    }

    /// <summary>The marker for a stopped connection did not come back in time (its node's region is gone, or it was lost).</summary>
    private sealed record DrainDue(IActorRef Connection);

    private const string ExpiryTimer = "expiry";
    private const string UnusedTimer = "unused";
    private static readonly long MaxTimerDelayMs = (long)TimeSpan.FromDays(1).TotalMilliseconds;

    /// <summary>A batch of enqueues is written once it holds this many messages or bytes, even with more waiting in the mailbox.</summary>
    private const int MaxBatchMessages = 512;
    private const int MaxBatchBytes = 1 << 20;

    private readonly QueueSettings _settings;
    private readonly IActorRef _topologyOwner;
    private readonly IDeadLetterPublisher _deadLetters;
    private readonly QueueState _state;
    private readonly IActorRef _self;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HashSet<IActorRef> _watched = [];
    private readonly Func<IActorRef, ICanTell> _regionOf;

    /// <summary>Connections that stopped and whose <see cref="ConnectionDrained"/> marker is on its way.</summary>
    private readonly HashSet<IActorRef> _draining = [];
    private readonly List<MessageEnqueued> _enqueues = [];
    private readonly List<(IActorRef To, object Reply)> _afterEnqueues = [];
    private readonly List<long> _removals = [];
    private int _enqueuedBytes;
    private bool _flushQueued;
    private int _pendingWrites;
    private int _sinceSnapshot;
    private long _expiryTimerAt;
    private bool _ending;
    private bool _passivating;

    /// <param name="topologyOwner">Receives <see cref="QueueUnused"/> (the topology region, or a test probe).</param>
    /// <param name="deadLetters">Routes dead-lettered messages to the queue's dead-letter exchange.</param>
    /// <param name="regionOf">
    /// The queue region a connection sends its acknowledgements through (a test's stand-in); by default the
    /// region of this entity type on the connection's node.
    /// </param>
    public static Props Props(QueueSettings settings, IActorRef topologyOwner, IDeadLetterPublisher deadLetters, Func<IActorRef, ICanTell>? regionOf = null) =>
        Akka.Actor.Props.Create(() => new QueueActor(settings, topologyOwner, deadLetters, regionOf));

    public QueueActor(QueueSettings settings, IActorRef topologyOwner, IDeadLetterPublisher deadLetters, Func<IActorRef, ICanTell>? regionOf)
    {
        _settings = settings;
        _topologyOwner = topologyOwner;
        _deadLetters = deadLetters;
        _self = Self;
        var system = Context.System;
        _regionOf = regionOf ?? (connection => system.ActorSelection(connection.Path.Root / "system" / "sharding" / TypeName));
        var name = Uri.UnescapeDataString(Self.Path.Name);
        PersistenceId = "amqp-queue-" + name;
        _state = new QueueState(name, new Effects(this), settings.ConsumerWindow, settings.RecentIds);

        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is QueueSnapshot s)
            {
                _state.RestoreSnapshot(s);
            }
        });
        Recover<IQueueEvent>(e =>
        {
            _state.Recover(e);
            _sinceSnapshot += Weight(e);
        });
        Recover<RecoveryCompleted>(_ => OnRecovered());

        // A deleted queue's entity is ending: commands belong to the next incarnation. Until Passivate is sent
        // they wait here; after that the shard buffers them and starts the next incarnation with them.
        Command<IQueueCommand>(Hold, _ => _ending);
        Command<EnsureQueue>(OnEnsure);
        Command<Enqueue>(OnEnqueue);
        Command<QueueFlowProbe>(p => ReplyAfterWrites(Sender, new FlowAck(p.Id)));
        Command<Consume>(OnConsume);
        Command<ConsumerCredit>(c =>
        {
            if (_state.Exists)
            {
                var now = Now;
                _state.Credit(c.Channel, c.ConsumerTag, c.Credit, now);
                ArmExpiry(now);
            }
        });
        Command<SettleMessages>(m =>
        {
            if (_state.Exists)
            {
                var now = Now;
                _state.Settle(m.Channel, m.Sequences, m.Settlement, now);
                ArmExpiry(now);
            }
        });
        Command<CancelConsumer>(c =>
        {
            if (_state.Exists)
            {
                var now = Now;
                _state.Cancel(c.Channel, c.ConsumerTag, now);
                ArmExpiry(now);
            }
            Sender.Tell(new CancelOk(c.Queue, c.Channel.Channel, c.ConsumerTag));
        });
        Command<ChannelClosed>(c =>
        {
            if (_state.Exists)
            {
                var now = Now;
                _state.ChannelClosed(c.Channel, now);
                ArmExpiry(now);
            }
        });
        Command<GetMessage>(OnGet);
        Command<PurgeQueue>(OnPurge);
        Command<GetQueueStats>(g => Sender.Tell(new QueueStats(g.Queue, _state.ReadyCount, _state.UnackedCount, _state.ConsumerCount, _settings.NodeName)));
        Command<DeleteQueueContent>(OnDelete);
        Command<Terminated>(OnConnectionTerminated);
        Command<ConnectionDrained>(d => Drained(d.Connection, timedOut: false));
        Command<DrainDue>(d => Drained(d.Connection, timedOut: true));
        Command<FlushWrites>(_ =>
        {
            _flushQueued = false;
            // While a write is out, more is gathered: it goes when that write completes, as one larger write.
            if (_pendingWrites == 0)
            {
                WriteBatches(null);
            }
        });
        Command<ExpiryDue>(_ =>
        {
            _expiryTimerAt = 0;
            if (_state.Exists)
            {
                var now = Now;
                _state.ExpireHeads(now);
                ArmExpiry(now);
            }
        });
        Command<UnusedDue>(_ => OnUnusedDue());
        Command<ReceiveTimeout>(_ =>
        {
            if (!_state.Exists && !_ending && _pendingWrites == 0)
            {
                _ending = true;
                Passivate();
            }
        });
        Command<QueueHandOff>(_ =>
        {
            Timers.CancelAll();
            WriteBatches(null);
            DeferAsync(0, _ => Context.Stop(Self));
        });
        Command<SaveSnapshotSuccess>(s =>
        {
            DeleteMessages(s.Metadata.SequenceNr);
            DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1));
        });
        Command<SaveSnapshotFailure>(f => _log.Warning(f.Cause, "queue {0}: snapshot failed", _state.Name));
        Command<DeleteMessagesSuccess>(_ => { });
        Command<DeleteMessagesFailure>(f => _log.Warning(f.Cause, "queue {0}: journal cleanup failed", _state.Name));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning(f.Cause, "queue {0}: snapshot cleanup failed", _state.Name));
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private int _reportedReady;
    private int _reportedUnacked;

    /// <summary>After every message (commands and recovery alike): the process's queue gauges move by the difference.</summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        var handled = base.AroundReceive(receive, message);
        Report(_state.ReadyCount, _state.UnackedCount);
        return handled;
    }

    private void Report(int ready, int unacked)
    {
        if (ready != _reportedReady)
        {
            Messages.BrokerCounters.QueueReady.Add(ready - _reportedReady);
            _reportedReady = ready;
        }
        if (unacked != _reportedUnacked)
        {
            Messages.BrokerCounters.QueueUnacked.Add(unacked - _reportedUnacked);
            _reportedUnacked = unacked;
        }
    }

    public override string PersistenceId { get; }

    private static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private void OnRecovered()
    {
        var now = Now;
        _state.CompleteRecovery(now);
        if (!_state.Exists)
        {
            Context.SetReceiveTimeout(_settings.IdleWithoutQueue);
            return;
        }
        ArmExpiry(now);
        ArmUnused();
    }

    private void Hold(IQueueCommand command)
    {
        if (_passivating)
        {
            Context.Parent.Forward(command);
        }
        else
        {
            Stash.Stash();
        }
    }

    private void OnEnsure(EnsureQueue e)
    {
        Context.SetReceiveTimeout(null);
        var changed = _state.Define(e.Definition, Now);
        var reply = new QueueReady(_state.Name, (uint)_state.ReadyCount, (uint)_state.ConsumerCount);
        if (changed)
        {
            var sender = Sender;
            Write(new QueueInitialized(e.Definition), () => sender.Tell(reply));
        }
        else
        {
            ReplyAfterWrites(Sender, reply);
        }
        ArmUnused();
    }

    private void OnEnqueue(Enqueue e)
    {
        var message = e.Message;
        if (!_state.Exists)
        {
            if (e.Confirm)
            {
                Sender.Tell(new QueueMissing(e.Queue, message.Id));
            }
            return;
        }
        if (_state.Holds(message.Id))
        {
            // A copy sent again (its confirm was late or lost in a shard move): confirm once the first is durable.
            if (e.Confirm)
            {
                ReplyAfterWrites(Sender, new Enqueued(e.Queue, message.Id));
            }
            return;
        }
        if (_state.RefuseIfFull(message))
        {
            if (e.Confirm)
            {
                Sender.Tell(new EnqueueRejected(e.Queue, message.Id));
            }
            return;
        }
        var now = Now;
        var entry = _state.Enqueue(message, now);
        if (entry.Persisted)
        {
            _enqueues.Add(new MessageEnqueued(entry.Sequence, entry.EnqueuedAtUnixMs, message));
            _enqueuedBytes += message.Body.Length + message.Properties.Length;
            if (e.Confirm)
            {
                _afterEnqueues.Add((Sender, new Enqueued(e.Queue, message.Id)));
            }
            if (_enqueues.Count >= MaxBatchMessages || _enqueuedBytes >= MaxBatchBytes)
            {
                WriteBatches(null);
            }
            else
            {
                ScheduleFlush();
            }
        }
        else if (e.Confirm)
        {
            ReplyAfterWrites(Sender, new Enqueued(e.Queue, message.Id));
        }
        ArmExpiry(now);
    }

    private void OnConsume(Consume c)
    {
        if (!_state.Exists)
        {
            Sender.Tell(new ConsumeRefused(c.Queue, c.Channel.Channel, c.ConsumerTag, 404, $"no queue '{c.Queue}' in vhost '/'"));
            return;
        }
        var now = Now;
        var reply = _state.Consume(c, now);
        // consume-ok first: the channel must know the tag before the first delivery for it arrives.
        Sender.Tell(reply);
        if (reply is ConsumeOk)
        {
            Watch(c.Channel.Connection);
            _state.Dispatch(now);
            ArmExpiry(now);
        }
    }

    private void OnGet(GetMessage g)
    {
        if (!_state.Exists)
        {
            Sender.Tell(new GetEmpty(g.Queue, g.Channel.Channel));
            return;
        }
        var now = Now;
        if (_state.Get(g.Channel, g.NoAck, now) is { } delivery)
        {
            if (!g.NoAck)
            {
                Watch(g.Channel.Connection);
                delivery = delivery with { Entity = _self };
            }
            Sender.Tell(delivery);
        }
        else
        {
            Sender.Tell(new GetEmpty(g.Queue, g.Channel.Channel));
        }
        ArmExpiry(now);
    }

    private void OnPurge(PurgeQueue p)
    {
        var reply = new QueuePurged(p.Queue, _state.Exists ? (uint)_state.Purge() : 0);
        var sender = Sender;
        WriteBatches(() => sender.Tell(reply));
    }

    private void OnDelete(DeleteQueueContent d)
    {
        if (!_state.Exists)
        {
            Sender.Tell(new QueueContentDeleted(d.Queue, 0));
            return;
        }
        if (_state.DeleteRefusal(d.IfUnused, d.IfEmpty) is { } refusal)
        {
            Sender.Tell(new QueueDeleteRefused(d.Queue, refusal));
            return;
        }
        // Writes of the content so far go first: their confirms are due, and the marker must follow them.
        WriteBatches(null);
        var reply = new QueueContentDeleted(d.Queue, (uint)_state.Delete());
        Timers.CancelAll();
        _expiryTimerAt = 0;
        _ending = true;
        var sender = Sender;
        Write(QueueDestroyed.Instance, () =>
        {
            sender.Tell(reply);
            // The marker stays, so whatever the deletes leave behind (or a snapshot still being saved) is
            // forgotten on replay; only the space is reclaimed here.
            var marker = LastSequenceNr;
            if (marker > 1)
            {
                DeleteMessages(marker - 1);
            }
            DeleteSnapshots(new SnapshotSelectionCriteria(marker));
            Passivate();
        });
    }

    private void OnUnusedDue()
    {
        if (_state.Definition?.Arguments.ExpiresMs is not { } expires)
        {
            return;
        }
        var wait = expires;
        if (_state.ConsumerCount == 0)
        {
            var idle = Now - _state.LastUsedUnixMs;
            if (idle >= expires)
            {
                // Told again every period until the owner deletes the queue, in case the first was lost.
                _topologyOwner.Tell(new QueueUnused(_state.Name));
            }
            else
            {
                wait = expires - idle;
            }
        }
        Timers.StartSingleTimer(UnusedTimer, UnusedDue.Instance, Delay(wait));
    }

    /// <summary>
    /// A consumer's connection stopped. Its consumers go at once. What it holds unacknowledged is requeued only
    /// once the acknowledgements it sent before stopping have arrived: when the <see cref="ConnectionDrained"/>
    /// marker sent now through its node's region comes back, or after <see cref="QueueSettings.DrainWait"/> if it
    /// does not. When its whole node is gone nothing more can come from there, so it is requeued at once.
    /// </summary>
    private void OnConnectionTerminated(Terminated t)
    {
        var connection = t.ActorRef;
        _watched.Remove(connection);
        if (!_state.Exists)
        {
            return;
        }
        var now = Now;
        if (t.AddressTerminated)
        {
            _state.ConnectionLost(connection, now);
        }
        else
        {
            _state.ConnectionStopped(connection, now);
            if (_draining.Add(connection))
            {
                _regionOf(connection).Tell(new ConnectionDrained(_state.Name, connection), _self);
                Timers.StartSingleTimer(("drain", connection), new DrainDue(connection), _settings.DrainWait);
            }
        }
        ArmExpiry(now);
    }

    /// <summary>The marker of a stopped connection came back, or the wait for it ran out: what it held is requeued.</summary>
    private void Drained(IActorRef connection, bool timedOut)
    {
        if (!_draining.Remove(connection))
        {
            return;
        }
        if (timedOut)
        {
            Messages.BrokerCounters.QueueDrainTimeouts.Increment();
            _log.Info("queue {0}: no word from the region of stopped connection {1} within {2}; requeueing what it held",
                _state.Name, connection.Path, _settings.DrainWait);
        }
        else
        {
            Messages.BrokerCounters.QueueDrained.Increment();
            Timers.Cancel(("drain", connection));
        }
        if (_state.Exists)
        {
            var now = Now;
            _state.ConnectionLost(connection, now);
            ArmExpiry(now);
        }
    }

    private void Watch(IActorRef connection)
    {
        if (_watched.Add(connection))
        {
            Context.Watch(connection);
        }
    }

    private void ArmExpiry(long now)
    {
        var at = _state.HeadExpiry;
        if (at == 0 || (_expiryTimerAt != 0 && _expiryTimerAt <= at))
        {
            return;
        }
        _expiryTimerAt = at;
        // A message expires once the clock passes its expiry, hence the extra millisecond.
        Timers.StartSingleTimer(ExpiryTimer, ExpiryDue.Instance, Delay(at - now + 1));
    }

    private void ArmUnused()
    {
        if (_state.Definition?.Arguments.ExpiresMs is { } expires && !Timers.IsTimerActive(UnusedTimer))
        {
            Timers.StartSingleTimer(UnusedTimer, UnusedDue.Instance, Delay(expires));
        }
    }

    private static TimeSpan Delay(long ms) => TimeSpan.FromMilliseconds(Math.Clamp(ms, 1, MaxTimerDelayMs));

    private void Write(IQueueEvent e, Action? then) => Write([e], then);

    /// <summary>Journals <paramref name="events"/> as one write (one journal round trip), then runs <paramref name="then"/>.</summary>
    private void Write(IQueueEvent[] events, Action? then)
    {
        _pendingWrites++;
        var remaining = events.Length;
        PersistAllAsync(events, e =>
        {
            _sinceSnapshot += Weight(e);
            if (--remaining > 0)
            {
                return;
            }
            _pendingWrites--;
            then?.Invoke();
            MaybeSnapshot();
            if (_pendingWrites == 0 && !_ending && (_enqueues.Count > 0 || _removals.Count > 0))
            {
                // What arrived while this write was out goes as the next one.
                WriteBatches(null);
            }
        });
    }

    /// <summary>How much replay an event saves once a snapshot covers it: the messages it names.</summary>
    private static int Weight(IQueueEvent e) => e switch
    {
        MessagesEnqueued m => m.Messages.Length,
        MessagesRemoved r => Math.Max(1, r.Sequences.Length),
        _ => 1,
    };

    /// <summary>Answers once every write before it is durable, so answers keep the order of the commands.</summary>
    private void ReplyAfterWrites(IActorRef to, object reply)
    {
        if (_enqueues.Count > 0)
        {
            _afterEnqueues.Add((to, reply));
        }
        else if (_pendingWrites > 0)
        {
            DeferAsync(reply, r => to.Tell(r));
        }
        else
        {
            to.Tell(reply);
        }
    }

    private void AddRemoval(long sequence)
    {
        _removals.Add(sequence);
        ScheduleFlush();
    }

    /// <summary>
    /// Enqueues and removals are collected and journaled when a <see cref="FlushWrites"/> sent to itself arrives:
    /// by then the publishes and acknowledgements that were waiting in the mailbox have joined the same events.
    /// </summary>
    private void ScheduleFlush()
    {
        if (!_flushQueued)
        {
            _flushQueued = true;
            _self.Tell(FlushWrites.Instance);
        }
    }

    /// <summary>Journals the collected enqueues, then the collected removals (which may name them), then runs <paramref name="then"/>.</summary>
    private void WriteBatches(Action? then)
    {
        if (_enqueues.Count > 0 || _removals.Count > 0)
        {
            var events = new List<IQueueEvent>(2);
            var replies = _afterEnqueues.ToArray();
            if (_enqueues.Count > 0)
            {
                events.Add(new MessagesEnqueued([.. _enqueues]));
                _enqueues.Clear();
                _afterEnqueues.Clear();
                _enqueuedBytes = 0;
            }
            if (_removals.Count > 0)
            {
                // After the enqueues: a removal may name a message of the same batch.
                events.Add(new MessagesRemoved([.. _removals]));
                _removals.Clear();
            }
            Write([.. events], replies.Length == 0 ? null : () =>
            {
                foreach (var (to, reply) in replies)
                {
                    to.Tell(reply);
                }
            });
        }
        if (then is not null)
        {
            if (_pendingWrites > 0)
            {
                DeferAsync(then, t => t());
            }
            else
            {
                then();
            }
        }
    }

    private void MaybeSnapshot()
    {
        // Only when no write is in flight does the state's journaled part equal the journal up to LastSequenceNr.
        // A large queue snapshots less often, so the cost of writing it out stays proportional to the events it saves replaying.
        if (_pendingWrites == 0 && _enqueues.Count == 0 && !_ending && _state.Exists && _sinceSnapshot >= Math.Max(_settings.SnapshotEvery, _state.PersistedCount))
        {
            _sinceSnapshot = 0;
            SaveSnapshot(_state.ToSnapshot());
        }
    }

    private void Passivate()
    {
        Context.Parent.Tell(new Passivate(QueueHandOff.Instance));
        _passivating = true;
        foreach (var envelope in Stash.ClearStash())
        {
            Context.Parent.Tell(envelope.Message, envelope.Sender);
        }
    }

    protected override void PostStop()
    {
        // Its messages leave this process's memory with it (durable ones stay in the journal for the next incarnation).
        Report(0, 0);
        // Stopped with consumers (hand-off, node leaving, failure): their channels register them again wherever
        // the queue starts next.
        foreach (var (channel, tag) in _state.Consumers)
        {
            channel.Connection.Tell(new ConsumerMoved(_state.Name, channel.Channel, tag));
        }
        base.PostStop();
    }

    private sealed class Effects(QueueActor actor) : IQueueEffects
    {
        public void Send(IActorRef connection, object message) => connection.Tell(message, actor._self);

        public void Removed(long sequence) => actor.AddRemoval(sequence);

        public void DeadLetter(AmqpMessage message, string reason)
        {
            var arguments = actor._state.Definition!.Arguments;
            actor._deadLetters.Publish(message, actor._state.Name, reason, arguments.DeadLetterExchange!, arguments.DeadLetterRoutingKey ?? message.RoutingKey);
        }

        public void Unused() => actor._topologyOwner.Tell(new QueueUnused(actor._state.Name));
    }
}
