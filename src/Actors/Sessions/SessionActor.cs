using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Event;
using Akka.Persistence;
using Broker.Actors.Messages;
using Broker.Actors.Retained;
using Broker.Actors.Routing;

namespace Broker.Actors.Sessions;

/// <summary>
/// One MQTT session, sharded by client ID. Decisions come from <see cref="SessionState"/>; this actor
/// journals their events when the session is persistent (expiry &gt; 0) and carries out their effects
/// (packets to the connection, acknowledgements to publishers) only once the events are durable.
/// </summary>
public sealed class SessionActor : UntypedPersistentActor, IWithTimers
{
    private sealed record WillDue
    {
        public static readonly WillDue Instance = new();
    }

    private sealed record ExpiryDue
    {
        public static readonly ExpiryDue Instance = new();
    }

    private sealed record RetainedFetched(Subscription Subscription, IReadOnlyList<PublishedMessage> Messages);

    private const string WillTimer = "will";
    private const string ExpiryTimer = "expiry";
    private static readonly TimeSpan MaxTimerDelay = TimeSpan.FromDays(1);
    private static readonly TimeSpan IdleWithoutSession = TimeSpan.FromSeconds(30);

    private readonly BrokerServices _services;
    private readonly SessionLimits _limits;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private RouteCollector? _collector;
    private SessionState _state;
    private IActorRef? _connection;
    private string? _connectionId;
    private Queue<(IActorRef Sender, long Correlation)>? _heldAcks;
    private int _pendingWrites;
    private int _sinceSnapshot;
    private bool _ending;
    private bool _passivating;
    private int _pendingDeletes;
    private long _endingUpTo;

    public static Props Props(BrokerServices services) =>
        Akka.Actor.Props.Create(() => new SessionActor(services)).WithMailbox(Dispatch.CompactMailbox.ConfigPath);

    public SessionActor(BrokerServices services)
    {
        _services = services;
        _limits = services.Settings.Limits;
        var clientId = Uri.UnescapeDataString(Self.Path.Name);
        _state = SessionState.Empty(clientId);
        PersistenceId = "session-" + clientId;
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public override string PersistenceId { get; }

    private static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    protected override void OnRecover(object message)
    {
        switch (message)
        {
            case SnapshotOffer { Snapshot: SessionState s }:
                _state = s;
                break;
            case ISessionEvent e:
                _state = _state.Apply(e);
                break;
            case RecoveryCompleted:
                OnRecovered();
                break;
        }
    }

    private void OnRecovered()
    {
        if (!_state.Exists)
        {
            Context.SetReceiveTimeout(IdleWithoutSession);
            return;
        }
        foreach (var filter in _state.Subscriptions.Keys)
        {
            _services.Trie.Add(_state.ClientId, filter, connected: false);
        }
        if (_state.Connected)
        {
            // The node stopped while the client was connected: that connection is gone without a DISCONNECT.
            Commit(_state.OnConnectionClosed(graceful: false, publishWill: false, newExpiry: null, Now), Self, 0);
        }
        AfterDisconnect();
    }

    protected override void OnCommand(object message)
    {
        if (_ending && message is ISessionCommand)
        {
            // This incarnation is ending: the command belongs to the next one. Until Passivate is sent it
            // waits here; after that the shard buffers it and starts the next incarnation with it.
            if (_passivating)
            {
                Context.Parent.Forward(message);
            }
            else
            {
                Stash.Stash();
            }
            return;
        }
        switch (message)
        {
            case Deliver d:
                Commit(_state.OnDeliver(d.Message, d.NonShared, d.SharedFilters, _limits, Now), Sender, d.Correlation);
                if (!_state.Exists)
                {
                    Context.SetReceiveTimeout(IdleWithoutSession);
                }
                break;
            case ClientAck a when a.ConnectionId == _connectionId:
                Commit(_state.OnClientAck(a.Kind, a.PacketId, _limits, Now), Sender, 0);
                break;
            case Connect c:
                OnConnect(c);
                break;
            case ConnectionClosed c when c.ConnectionId == _connectionId:
                OnConnectionClosed(c);
                break;
            case SubscribeRequest s when s.ConnectionId == _connectionId:
                Commit(_state.OnSubscribe(s.PacketId, s.Subscriptions, _limits), Sender, 0);
                break;
            case UnsubscribeRequest u when u.ConnectionId == _connectionId:
                Commit(_state.OnUnsubscribe(u.PacketId, u.Filters), Sender, 0);
                break;
            case InboundQos2 q when q.ConnectionId == _connectionId:
                Commit(_state.OnInboundQos2(q.PacketId, q.Release), Sender, 0);
                break;
            case RetainedFetched r:
                foreach (var m in r.Messages)
                {
                    Commit(_state.OnDeliver(m, false, null, _limits, Now, r.Subscription), Self, 0);
                }
                break;
            case SessionProbe p:
                Sender.Tell(new SessionProbeAck(p.ClientId));
                if (!_state.Exists)
                {
                    Context.SetReceiveTimeout(IdleWithoutSession);
                }
                break;
            case GetSessionInfo:
                Sender.Tell(_state.ToInfo(_services.NodeName));
                break;
            case WillDue:
                PublishWill();
                break;
            case ExpiryDue:
                OnExpiryDue();
                break;
            case ReceiveTimeout:
                if (!_state.Exists && _pendingWrites == 0 && !_ending)
                {
                    _ending = true;
                    Passivate();
                }
                break;
            case DeliverAck:
                break; // acknowledgements of this session's own will publish
            case ISessionCommand:
                break; // from a connection this session no longer belongs to
            case SaveSnapshotSuccess s:
                DeleteMessages(s.Metadata.SequenceNr);
                DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1));
                break;
            case SaveSnapshotFailure f:
                _log.Warning(f.Cause, "session {0}: snapshot failed", _state.ClientId);
                break;
            case DeleteMessagesSuccess d:
                if (_pendingDeletes > 0 && d.ToSequenceNr >= _endingUpTo)
                {
                    OnEndingDeleteDone();
                }
                break;
            case DeleteSnapshotsSuccess d:
                if (_pendingDeletes > 0 && d.Criteria.MaxSequenceNr == long.MaxValue)
                {
                    OnEndingDeleteDone();
                }
                break;
            case DeleteMessagesFailure f:
                _log.Warning(f.Cause, "session {0}: journal cleanup failed", _state.ClientId);
                if (_pendingDeletes > 0 && f.ToSequenceNr >= _endingUpTo)
                {
                    OnEndingDeleteDone();
                }
                break;
            case DeleteSnapshotsFailure f:
                _log.Warning(f.Cause, "session {0}: snapshot cleanup failed", _state.ClientId);
                if (_pendingDeletes > 0 && f.Criteria.MaxSequenceNr == long.MaxValue)
                {
                    OnEndingDeleteDone();
                }
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private void OnConnect(Connect c)
    {
        Context.SetReceiveTimeout(null);
        Timers.Cancel(WillTimer);
        Timers.Cancel(ExpiryTimer);
        if (_connection is not null && _connectionId != c.ConnectionId)
        {
            _connection.Tell(new SessionTakenOver(_connectionId!));
        }
        // A will still stored from an earlier connection: published now if its delay is 0 or the
        // session ends with this clean start; otherwise the new connection arrived in time to cancel it.
        if (_state.Will is { } oldWill && (oldWill.DelaySeconds == 0 || c.Info.CleanStart))
        {
            PublishWill();
        }
        var expiry = c.Info.ProtocolLevel >= 5
            ? c.Info.SessionExpiry
            : c.Info.CleanStart ? 0 : _services.Settings.PersistentSessionExpiry;
        var wasPersisted = _state.IsPersistent || LastSequenceNr > 0;
        _connection = c.Connection;
        _connectionId = c.ConnectionId;
        var decision = _state.OnConnect(c.ConnectionId, c.Info, expiry, _limits, Now);
        if (!decision.State.IsPersistent && wasPersisted)
        {
            // The new session lives only in memory: the journal of the old one must not come back after a crash.
            DeleteMessages(long.MaxValue);
            DeleteSnapshots(SnapshotSelectionCriteria.Latest);
        }
        Commit(decision, Sender, 0);
        MarkSharedMembership(connected: true);
        _services.SessionIndex.Tell(new IndexUpdate(_state.ClientId, true, Self));
    }

    private void OnConnectionClosed(ConnectionClosed c)
    {
        _connection = null;
        _connectionId = null;
        Commit(_state.OnConnectionClosed(c.Graceful, c.PublishWill, c.NewSessionExpiry, Now), Self, 0);
        AfterDisconnect();
    }

    /// <summary>Arms the will delay and session expiry timers, or ends a session that has no expiry.</summary>
    private void AfterDisconnect()
    {
        MarkSharedMembership(connected: false);
        _services.SessionIndex.Tell(new IndexUpdate(_state.ClientId, false, Self));
        if (_state.EffectiveExpiry == 0)
        {
            PublishWill();
            EndSession();
            return;
        }
        var disconnectedAt = _state.DisconnectedAtMs ?? Now;
        if (_state.Will is { } will)
        {
            var delay = Math.Min(will.DelaySeconds, _state.EffectiveExpiry);
            var due = disconnectedAt + delay * 1000L - Now;
            if (due <= 0)
            {
                PublishWill();
            }
            else
            {
                Timers.StartSingleTimer(WillTimer, WillDue.Instance, TimeSpan.FromMilliseconds(due));
            }
        }
        ArmExpiry();
    }

    /// <summary>Shared groups send to connected members first; a disconnected one only when no member is connected.</summary>
    private void MarkSharedMembership(bool connected)
    {
        foreach (var sub in _state.Subscriptions.Values)
        {
            if (sub.IsShared)
            {
                _services.Trie.SetConnected(_state.ClientId, sub.Filter, connected);
            }
        }
    }

    private void ArmExpiry()
    {
        if (_state.EffectiveExpiry == uint.MaxValue)
        {
            return; // never expires
        }
        var left = (_state.DisconnectedAtMs ?? Now) + _state.EffectiveExpiry * 1000L - Now;
        var delay = TimeSpan.FromMilliseconds(Math.Max(0, left));
        Timers.StartSingleTimer(ExpiryTimer, ExpiryDue.Instance, delay > MaxTimerDelay ? MaxTimerDelay : delay);
    }

    private void OnExpiryDue()
    {
        if (_state.Connected || !_state.Exists)
        {
            return;
        }
        var left = (_state.DisconnectedAtMs ?? Now) + _state.EffectiveExpiry * 1000L - Now;
        if (left > 0)
        {
            ArmExpiry();
            return;
        }
        PublishWill();
        EndSession();
    }

    private void PublishWill()
    {
        Timers.Cancel(WillTimer);
        if (_state.Will is not { } will)
        {
            return;
        }
        var msg = will.ExpirySeconds == 0 ? will.Message : will.Message with { ExpiresAtUnixMs = Now + will.ExpirySeconds * 1000L };
        _services.Router.Route(msg, _collector ??= new RouteCollector(), 0, Self);
        Commit(_state.OnWillPublished(), Self, 0);
    }

    /// <summary>The session is over: forget its subscriptions and journal, then passivate.</summary>
    private void EndSession()
    {
        if (_ending)
        {
            return;
        }
        _ending = true;
        foreach (var filter in _state.Subscriptions.Keys)
        {
            _services.Trie.Remove(_state.ClientId, filter);
        }
        _services.SessionIndex.Tell(new IndexRemove(_state.ClientId, Self));
        var persisted = LastSequenceNr > 0;
        _state = SessionState.Empty(_state.ClientId);
        DeferAsync(0, _ =>
        {
            if (!persisted)
            {
                Passivate();
                return;
            }
            // The next incarnation must not recover this session: passivate once the deletes are done.
            _pendingDeletes = 2;
            _endingUpTo = LastSequenceNr;
            DeleteMessages(_endingUpTo);
            DeleteSnapshots(SnapshotSelectionCriteria.Latest);
        });
    }

    private void OnEndingDeleteDone()
    {
        if (_ending && --_pendingDeletes == 0)
        {
            Passivate();
        }
    }

    private void Passivate()
    {
        Context.Parent.Tell(new Passivate(PoisonPill.Instance));
        _passivating = true;
        foreach (var envelope in Stash.ClearStash())
        {
            Context.Parent.Tell(envelope.Message, envelope.Sender);
        }
    }

    /// <summary>
    /// Takes a decision's state now (later commands see it), journals its events if the session is
    /// persistent, and runs its effects once they are durable.
    /// </summary>
    private void Commit(SessionDecision decision, IActorRef sender, long correlation)
    {
        var before = _state;
        _state = decision.State;
        SyncTrie(before, _state);
        var connection = _connection;
        var effects = decision.Effects;
        if (decision.Events.Count > 0 && _state.IsPersistent)
        {
            _pendingWrites += decision.Events.Count;
            PersistAllAsync(decision.Events, _ =>
            {
                _pendingWrites--;
                _sinceSnapshot++;
            });
            DeferAsync(0, _ =>
            {
                Run(effects, connection, sender, correlation);
                MaybeSnapshot();
            });
        }
        else
        {
            Run(effects, connection, sender, correlation);
        }
    }

    private void Run(IReadOnlyList<object> effects, IActorRef? connection, IActorRef sender, long correlation)
    {
        foreach (var effect in effects)
        {
            switch (effect)
            {
                case AckDeliverEffect:
                    if (correlation != 0)
                    {
                        (_heldAcks ??= new()).Enqueue((sender, correlation));
                    }
                    break;
                case RetainedRequestEffect r:
                    var sub = r.Subscription;
                    _services.RetainedStore.Ask<RetainedMessages>(new QueryRetained(sub.Filter), TimeSpan.FromSeconds(10))
                        .PipeTo(Self, success: m => new RetainedFetched(sub, m.Messages), failure: _ => new RetainedFetched(sub, []));
                    break;
                default:
                    connection?.Tell(effect);
                    break;
            }
        }
        ReleaseAcks();
    }

    /// <summary>
    /// Flow control towards publishers: while a connected client's queue is over its bound, acknowledgements
    /// of new deliveries wait, so publishers (limited by their receive maximum) slow down to the
    /// subscriber's pace instead of the broker dropping acknowledged messages.
    /// </summary>
    private void ReleaseAcks()
    {
        while (_heldAcks is { Count: > 0 } && (!_state.Connected || _state.QueueCount <= _limits.MaxQueue))
        {
            var (sender, correlation) = _heldAcks.Dequeue();
            sender.Tell(new DeliverAck(correlation));
        }
    }

    private void SyncTrie(SessionState before, SessionState after)
    {
        if (ReferenceEquals(before.Subscriptions, after.Subscriptions))
        {
            return;
        }
        foreach (var filter in before.Subscriptions.Keys)
        {
            if (!after.Subscriptions.ContainsKey(filter))
            {
                _services.Trie.Remove(after.ClientId, filter);
            }
        }
        foreach (var filter in after.Subscriptions.Keys)
        {
            if (!before.Subscriptions.ContainsKey(filter))
            {
                _services.Trie.Add(after.ClientId, filter, after.Connected);
            }
        }
    }

    private void MaybeSnapshot()
    {
        // Only when no write is pending does _state equal the journal up to LastSequenceNr.
        if (_sinceSnapshot >= _services.Settings.SnapshotEvery && _pendingWrites == 0 && _state.IsPersistent)
        {
            _sinceSnapshot = 0;
            SaveSnapshot(_state);
        }
    }

    protected override void PostStop()
    {

        if (_connection is not null && _connectionId is not null)
        {
            // Handed off (rebalance, node shutdown): the client must reconnect to find the session elsewhere.
            _connection.Tell(new SessionTakenOver(_connectionId));
        }
        base.PostStop();
    }
}
