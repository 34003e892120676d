using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Event;
using Broker.Actors.Dispatch;
using Broker.Actors.Messages;
using Broker.Actors.Retained;
using Broker.Actors.Routing;

namespace Broker.Actors.Sessions;

/// <summary>
/// One MQTT session, sharded by client ID. Decisions come from <see cref="SessionState"/>; this actor
/// journals their events when the session is persistent (expiry &gt; 0), through a <see cref="SessionJournal"/>
/// child that exists only while the session has journaled state, and carries out their effects (packets to the
/// connection, acknowledgements to publishers) only once the events are durable.
/// On start it asks the <see cref="SessionCatalog"/> whether the client ID has a journal: a session that never
/// had one (every clean session) starts, runs and ends without any journal query or write.
/// </summary>
public sealed class SessionActor : UntypedActor, IWithTimers, IWithUnboundedStash
{
    private sealed record WillDue
    {
        public static readonly WillDue Instance = new();
    }

    private sealed record ExpiryDue
    {
        public static readonly ExpiryDue Instance = new();
    }

    private sealed record ResumeDue
    {
        public static readonly ResumeDue Instance = new();
    }

    /// <summary>Effects of one decision that wait for its events to be durable and/or its routes to be replicated.</summary>
    private sealed class WaitingEffects(IReadOnlyList<object> effects, IActorRef? connection, IActorRef sender, long correlation, int waits)
    {
        public readonly IReadOnlyList<object> Effects = effects;
        public readonly IActorRef? Connection = connection;
        public readonly IActorRef Sender = sender;
        public readonly long Correlation = correlation;
        public int Waits = waits;
    }

    private const string WillTimer = "will";
    private const string ExpiryTimer = "expiry";
    private const string ResumeTimer = "resume";

    /// <summary>How long a session recovered as connected waits for its connection to resume it (after a hand-off).</summary>
    private static readonly TimeSpan ResumeGrace = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan MaxTimerDelay = TimeSpan.FromDays(1);
    private static readonly TimeSpan IdleWithoutSession = TimeSpan.FromSeconds(30);

    private readonly BrokerServices _services;
    private readonly SessionLimits _limits;
    private bool _droppingQos0;
    // Made when something is logged: a logger per session would be kept by every idle one.
    private static ILoggingAdapter Log => Context.GetLogger();
    private RouteCollector? _collector;
    private SessionState _state;
    private IActorRef? _connection;
    private string? _connectionId;
    private Queue<(IActorRef Sender, long Correlation)>? _heldAcks;
    private long[]? _recentIds;
    private int _recentNext;
    private int _pendingWrites;

    /// <summary>The connection whose clean start was answered before the session had started (<see cref="OnStarting"/>).</summary>
    private string? _acceptedEarly;
    private int _sinceSnapshot;
    private bool _ending;

    /// <summary>The user name of the last CONNECT, for the admin API's filter (memory only; "" after a restart until the client connects).</summary>
    private string _username = "";

    /// <summary>An operator asked for the session to end with its connection (KickClient with discard).</summary>
    private bool _discardOnClose;
    private bool _passivating;
    private bool _awaitingResume;
    /// <summary>The acceptance sent to the current connection, answered again to a repeated CONNECT.</summary>
    private ConnectAccepted? _accepted;
    private System.Collections.Immutable.ImmutableSortedDictionary<string, Subscription>? _assertedSubs;
    private bool _assertedConnected;
    private long _routeToken;
    private Dictionary<long, WaitingEffects>? _routeWaits;

    // The journal child and the work waiting for its answers (or for the catalog row it needs first).
    private bool _starting = true;
    private IActorRef? _journal;
    private bool _journalPending;
    private List<Action>? _afterCatalog;
    private long _journalToken;
    private long _lastSequenceNr;
    private Dictionary<long, Action>? _journalWaits;

    // The catalog row: what was last written, the writes waited for, and the write that puts the session to rest.
    private CatalogMark _catalogMark;
    private long _catalogToken;
    private Dictionary<long, Action>? _catalogWaits;
    private long _restToken;

    /// <summary>What of the state the catalog row reflects; a change writes the row again.</summary>
    private readonly record struct CatalogMark(object? Subscriptions, bool Connected, long? DisconnectedAtMs, bool HasWill, uint Expiry);

    public static Props Props(BrokerServices services) =>
        Akka.Actor.Props.Create(() => new SessionActor(services)).WithMailbox(Dispatch.CompactMailbox.ConfigPath);

    public SessionActor(BrokerServices services)
    {
        _services = services;
        _limits = services.SessionLimits;
        var clientId = Uri.UnescapeDataString(Self.Path.Name);
        _state = SessionState.Empty(clientId);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public IStash Stash { get; set; } = null!;

    private static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    protected override void PreStart() => _services.Catalog.Tell(new CatalogLookup(_state.ClientId));

    /// <summary>Until the state is known (catalog answer, then the journal's recovery if it has one) every message waits.</summary>
    private void OnStarting(object message)
    {
        switch (message)
        {
            case CatalogFound { Exists: true }:
                StartJournal();
                break;
            case CatalogFound:
                _starting = false;
                OnRecovered();
                Stash.UnstashAll();
                break;
            case JournalRecovered r:
                SetState(r.State);
                _lastSequenceNr = r.LastSequenceNr;
                _starting = false;
                OnRecovered();
                Stash.UnstashAll();
                break;
            case Terminated t when t.ActorRef.Equals(_journal):
                Log.Error("session {0}: its journal could not be recovered; the session stops", _state.ClientId);
                Context.Stop(Self);
                break;
            case Connect c when _acceptedEarly is null && c.Info.CleanStart && (c.Info.ProtocolLevel < 5 || c.Info.SessionExpiry == 0):
                // A clean start of a session that lives in memory only: whatever the catalog says of an earlier session,
                // the answer is the same (no session present, no inbound QoS 2 state, nothing made durable), so the
                // client gets it now. The CONNECT itself waits with everything else and is acted on once the earlier
                // session, if any, is known (its will, its journal and routes to discard), before any later packet.
                c.Connection.Tell(new ConnectAccepted(c.ConnectionId, false, []));
                _acceptedEarly = c.ConnectionId;
                // Indexed before the CONNACK can reach the client, so the admin API finds a session the client was told
                // exists; its details are answered once the session has started (GetSessionInfo waits in the stash).
                _services.SessionIndex.Tell(new IndexUpdate(_state.ClientId, true, Self, c.Info.ProtocolLevel, c.Username));
                Stash.Stash();
                break;
            default:
                Stash.Stash();
                break;
        }
    }

    private void StartJournal()
    {
        _journal = Context.ActorOf(SessionJournal.Props(_services.Catalog, _state.ClientId), "journal");
        Context.Watch(_journal);
    }

    /// <summary>
    /// Runs <paramref name="then"/> once the session has a journal: the first time, after the catalog row that
    /// announces it is durable (a journal never exists without its row).
    /// </summary>
    private void WithJournal(Action then)
    {
        if (_journal is not null)
        {
            then();
            return;
        }
        (_afterCatalog ??= []).Add(then);
        if (!_journalPending)
        {
            _journalPending = true;
            PutCatalog(resting: false, () =>
            {
                _journalPending = false;
                StartJournal();
                var waiting = _afterCatalog!;
                _afterCatalog = null;
                foreach (var next in waiting)
                {
                    next();
                }
            });
        }
    }

    /// <summary>Writes the session's catalog row from its state; <paramref name="then"/> runs once it is durable.</summary>
    private long PutCatalog(bool resting, Action? then = null)
    {
        var token = ++_catalogToken;
        if (then is not null)
        {
            (_catalogWaits ??= [])[token] = then;
        }
        _catalogMark = Mark();
        var subs = _state.Subscriptions;
        _services.Catalog.Tell(new CatalogPut(_state.ClientId, token, resting, DueAtMs(),
            subs.Count == 0 ? null : RouteCodec.Encode([.. subs.Keys]),
            resting ? _services.InfoCodec.Encode(_state.ToInfo("")) : null));
        return token;
    }

    private CatalogMark Mark() => new(_state.Subscriptions, _state.Connected, _state.DisconnectedAtMs, _state.Will is not null, _state.EffectiveExpiry);

    /// <summary>
    /// Writes the row again when what it reflects changed (only sessions that have one). Returns the token to wait for
    /// when the filters changed and <paramref name="waitForRoutes"/>: a session at rest is routed from its row, so a
    /// SUBACK waits for it; 0 otherwise.
    /// </summary>
    private long MaybePutCatalog(bool waitForRoutes)
    {
        if (_journal is null && !_journalPending)
        {
            return 0;
        }
        var mark = Mark();
        if (mark == _catalogMark)
        {
            return 0;
        }
        var routesChanged = !ReferenceEquals(mark.Subscriptions, _catalogMark.Subscriptions);
        if (routesChanged && waitForRoutes)
        {
            return PutCatalog(resting: false, () => { });
        }
        PutCatalog(resting: false);
        return 0;
    }

    /// <summary>The next will-delay or expiry deadline of a disconnected session (the durable schedule starts it then).</summary>
    private long? DueAtMs()
    {
        if (_state.Connected || !_state.Exists)
        {
            return null;
        }
        var at = _state.DisconnectedAtMs ?? Now;
        long? due = _state.EffectiveExpiry == uint.MaxValue ? null : at + _state.EffectiveExpiry * 1000L;
        if (_state.Will is { } will)
        {
            var willAt = at + Math.Min(will.DelaySeconds, _state.EffectiveExpiry) * 1000L;
            due = due is null ? willAt : Math.Min(due.Value, willAt);
        }
        return due;
    }

    private void OnCatalogWritten(CatalogWritten w)
    {
        if (!w.Ok)
        {
            Log.Error("session {0}: the session catalog could not be written; the session stops", _state.ClientId);
            Context.Stop(Self);
            return;
        }
        if (_catalogWaits is not null && _catalogWaits.Remove(w.Token, out var then))
        {
            then();
        }
    }

    private bool CanRest() =>
        _services.Settings.SessionRestAfter > TimeSpan.Zero && _journal is not null && !_journalPending && _state.Exists && !_state.Connected
        && _connection is null && !_awaitingResume && !_ending && _pendingWrites == 0 && _heldAcks is not { Count: > 0 }
        && _routeWaits is not { Count: > 0 } && _journalWaits is not { Count: > 0 } && _catalogWaits is not { Count: > 0 };

    /// <summary>
    /// A disconnected persistent session with nothing to do leaves memory: its row (filters, next deadline, admin summary)
    /// is written as at rest, then it passivates. Any message before that write is durable keeps it running.
    /// </summary>
    private void Rest()
    {
        var token = 0L;
        token = PutCatalog(resting: true, () =>
        {
            if (_restToken == token && CanRest())
            {
                _restToken = 0;
                Timers.CancelAll();
                _ending = true;
                Passivate();
            }
        });
        _restToken = token;
    }

    /// <summary>Writes <paramref name="events"/> (none: only waits for earlier writes) and runs <paramref name="then"/> once durable.</summary>
    private void Write(IReadOnlyList<ISessionEvent> events, Action then)
    {
        if (_journal is null && !_journalPending && events.Count == 0)
        {
            then();
            return;
        }
        WithJournal(() =>
        {
            var token = ++_journalToken;
            (_journalWaits ??= [])[token] = then;
            _journal!.Tell(new JournalWrite(events, token));
        });
    }

    /// <summary>Runs <paramref name="then"/> once every write sent before is durable.</summary>
    private void Defer(Action then) => Write([], then);

    /// <summary>Deletes the journal, then its catalog row, and stops the journal child; <paramref name="then"/> runs after the delete.</summary>
    private void DeleteJournal(Action? then = null)
    {
        if (_journal is null && !_journalPending)
        {
            then?.Invoke();
            return;
        }
        WithJournal(() =>
        {
            var token = ++_journalToken;
            var journal = _journal!;
            (_journalWaits ??= [])[token] = () =>
            {
                // Writes sent after the delete (the session became persistent again) keep the journal and its row.
                if (_journal == journal && !_state.IsPersistent && _journalWaits!.Count == 0)
                {
                    Context.Unwatch(journal);
                    Context.Stop(journal);
                    _journal = null;
                    _lastSequenceNr = 0;
                    _services.Catalog.Tell(new CatalogRemove(_state.ClientId));
                }
                then?.Invoke();
            };
            journal.Tell(new JournalDeleteAll(token));
        });
    }

    private void OnJournalDone(JournalDone d)
    {
        _lastSequenceNr = d.LastSequenceNr;
        if (_journalWaits is not null && _journalWaits.Remove(d.Token, out var then))
        {
            then();
        }
    }

    private void OnRecovered()
    {
        if (!_state.Exists)
        {
            // A row without a session (it ended before its row was removed, or only a hand-off wrote it): clean up.
            DeleteJournal();
            Context.SetReceiveTimeout(IdleWithoutSession);
            return;
        }
        if (_journal is not null)
        {
            // The catalog names the node hosting the session, so it is started again if this node goes.
            PutCatalog(resting: false);
        }
        SyncRoutes(wait: false);
        if (_state.Connected)
        {
            // Either the session was handed off from another node and its connection is about to resume it,
            // or the node it ran on failed. Commands wait (stashed) until the connection resumes, the client
            // connects again, or the grace period ends.
            _awaitingResume = true;
            Timers.StartSingleTimer(ResumeTimer, ResumeDue.Instance, ResumeGrace);
            Index(connected: true);
            return;
        }
        AfterDisconnect();
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case CatalogWritten w:
                OnCatalogWritten(w);
                return;
            case JournalDone d:
                OnJournalDone(d);
                return;
        }
        if (_starting)
        {
            OnStarting(message);
            return;
        }
        if (_restToken != 0 && message is not ReceiveTimeout)
        {
            // Something to do after all: the row names this node again.
            _restToken = 0;
            PutCatalog(resting: false);
        }
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
        if (_awaitingResume && message is ISessionCommand and not (Connect or ResumeSession or ConnectionClosed or SessionProbe))
        {
            Stash.Stash();
            return;
        }
        switch (message)
        {
            case Deliver d when IsRecent(d.Message.Id) || (d.Retry && _state.Holds(d.Message.Id)):
                // Sent again because its acknowledgement was late or a message got lost, but this session has it:
                // acknowledge once the first copy is durable, unless that acknowledgement is still held back. The
                // first copy can also come second: the copy sent again goes through this node's region while the
                // first may still be on its way through another node (one copy per node, or a region that forwards
                // during a hand-off), so any copy of a recent message id is recognised, not only one marked as sent again.
                var retrySender = Sender;
                var retryCorrelation = d.Correlation;
                Defer(() =>
                {
                    if (_heldAcks is null || !_heldAcks.Contains((retrySender, retryCorrelation)))
                    {
                        retrySender.Tell(new DeliverAck(retryCorrelation, DeliveryTarget.Session(_state.ClientId)));
                    }
                });
                break;
            case Deliver d when d.Correlation == 0 && d.Message.Qos == 0 && Behind(out var backlog, out var backlogBytes)
                && (backlog > _limits.Qos0DropBacklog || backlogBytes > _limits.Qos0DropBacklogBytes):
                // Nobody waits for a QoS 0 message: while this session is that far behind, it is dropped here.
                BrokerCounters.Qos0Dropped.Increment();
                if (!_droppingQos0)
                {
                    _droppingQos0 = true;
                    Log.Warning("session {0}: {1} messages ({2} bytes) wait; QoS 0 messages are dropped until it catches up",
                        _state.ClientId, backlog, backlogBytes);
                }
                break;
            case Deliver d:
                if (_droppingQos0 && Behind(out var left, out var leftBytes)
                    && left <= _limits.Qos0DropBacklog / 2 && leftBytes <= _limits.Qos0DropBacklogBytes / 2)
                {
                    _droppingQos0 = false;
                }
                RememberId(d.Message.Id);
                Commit(_state.OnDeliver(d.Message, d.NonShared, d.SharedFilters, _limits, Now), Sender, d.Correlation);
                if (!_state.Exists)
                {
                    Context.SetReceiveTimeout(IdleWithoutSession);
                    ForgetStaleRoutes();
                }
                break;
            case ClientAck a when a.ConnectionId == _connectionId:
                Commit(_state.OnClientAck(a.Kind, a.PacketId, _limits, Now), Sender, 0);
                break;
            case Connect c when c.ConnectionId == _connectionId && _connection is not null:
                // The connection sent its CONNECT again (the first may have gone to a node that died): the same answer,
                // once the first one's writes are durable (until then it is on its way).
                if (_accepted?.ConnectionId == c.ConnectionId)
                {
                    c.Connection.Tell(_accepted);
                }
                break;
            case Connect c:
                OnConnect(c);
                break;
            case ConnectionClosed c when c.ConnectionId == _connectionId:
                OnConnectionClosed(c);
                break;
            case ConnectionClosed c when _awaitingResume:
                // The connection of the previous incarnation closed instead of resuming.
                EndAwaitingResume();
                Commit(_state.OnConnectionClosed(c.Graceful, c.PublishWill, c.NewSessionExpiry, Now), Self, 0);
                AfterDisconnect();
                break;
            case ResumeSession r:
                OnResume(r);
                break;
            case KickClient k:
                OnKick(k);
                break;
            case ResumeDue:
                if (_awaitingResume)
                {
                    // Nobody resumed: the connection died with the node that hosted this session before.
                    EndAwaitingResume();
                    Commit(_state.OnConnectionClosed(graceful: false, publishWill: true, newExpiry: null, Now), Self, 0);
                    AfterDisconnect();
                }
                break;
            case Terminated t when t.ActorRef.Equals(_connection):
                // The connection's node failed (a closing connection says ConnectionClosed before it stops).
                OnConnectionClosed(new ConnectionClosed(_state.ClientId, _connectionId!, Graceful: false, PublishWill: true, NewSessionExpiry: null));
                break;
            case SessionHandOff:
                OnHandOff();
                break;
            case RoutesAsserted a:
                if (_routeWaits is not null && _routeWaits.Remove(a.Token, out var waiting))
                {
                    Done(waiting);
                }
                break;
            case SubscribeRequest s when s.ConnectionId == _connectionId:
                Commit(_state.OnSubscribe(s.PacketId, s.Subscriptions, _limits), Sender, 0);
                Index(connected: true);
                break;
            case UnsubscribeRequest u when u.ConnectionId == _connectionId:
                Commit(_state.OnUnsubscribe(u.PacketId, u.Filters, _limits), Sender, 0);
                Index(connected: true);
                break;
            case InboundQos2 q when q.ConnectionId == _connectionId:
                Commit(_state.OnInboundQos2(q.PacketId, q.Release), Sender, 0);
                break;
            case RetainedMessages r:
                // Chunks of one answer; a subscription removed meanwhile takes none of them.
                if (_state.Subscriptions.TryGetValue(r.Filter, out var subscription))
                {
                    foreach (var m in r.Messages)
                    {
                        Commit(_state.OnDeliver(m, false, null, _limits, Now, subscription), Self, 0);
                    }
                }
                break;
            case SessionFlowProbe p:
                // After the messages sent before it, and once what they changed is durable.
                var prober = Sender;
                Defer(() => prober.Tell(new FlowAck(p.Id)));
                if (!_state.Exists)
                {
                    Context.SetReceiveTimeout(IdleWithoutSession);
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
                else if (_restToken == 0 && CanRest())
                {
                    Rest();
                }
                break;
            case DeliverAck:
                break; // acknowledgements of this session's own will publish
            case ISessionCommand:
                break; // from a connection this session no longer belongs to
            case Terminated t when t.ActorRef.Equals(_journal):
                // A write failed (the journal child stopped): nothing more can be made durable.
                Log.Error("session {0}: its journal stopped after a failed write; the session stops", _state.ClientId);
                Context.Stop(Self);
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private void OnConnect(Connect c)
    {
        _username = c.Username;
        Context.SetReceiveTimeout(null);
        Timers.Cancel(WillTimer);
        Timers.Cancel(ExpiryTimer);
        if (_awaitingResume)
        {
            // The client came back (to any node) before its old connection resumed: this connection wins.
            EndAwaitingResume();
        }
        if (_connection is not null && _connectionId != c.ConnectionId)
        {
            _connection.Tell(new SessionTakenOver(_connectionId!));
            Context.Unwatch(_connection);
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
        var wasPersisted = _journal is not null || _journalPending;
        _connection = c.Connection;
        _connectionId = c.ConnectionId;
        Context.Watch(_connection);
        var decision = _state.OnConnect(c.ConnectionId, c.Info, expiry, _limits, Now);
        if (!decision.State.IsPersistent && wasPersisted)
        {
            // The new session lives only in memory: the journal of the old one must not come back after a crash.
            DeleteJournal();
        }
        Commit(decision, Sender, 0);
        Index(connected: true);
    }

    /// <summary>The last 64 message ids this incarnation accepted, to recognise resent copies (kept only once a QoS 1/2 message arrives).</summary>
    private void RememberId(long id)
    {
        if (id == 0)
        {
            return;
        }
        _recentIds ??= new long[64];
        _recentIds[_recentNext] = id;
        _recentNext = (_recentNext + 1) % _recentIds.Length;
    }

    private bool IsRecent(long id) => id != 0 && _recentIds is not null && Array.IndexOf(_recentIds, id) >= 0;

    private void OnResume(ResumeSession r)
    {
        if (_connection is not null && _connectionId == r.ConnectionId)
        {
            // A resend (the first answer may have been lost while the shard moved).
            r.Connection.Tell(new SessionResumed(r.ConnectionId));
            return;
        }
        if (_connection is null && _awaitingResume)
        {
            _connection = r.Connection;
            _connectionId = r.ConnectionId;
            Context.Watch(_connection);
            EndAwaitingResume();
            if (!_state.IsPersistent)
            {
                // Only the hand-off wrote this session to the journal; it must not come back after a crash.
                DeleteJournal();
            }
            r.Connection.Tell(new SessionResumed(r.ConnectionId));
            if (r.AfterFailure)
            {
                Commit(_state.OnResumeAfterFailure(_limits, Now), Self, 0);
            }
            return;
        }
        r.Connection.Tell(new SessionLost(r.ConnectionId));
    }

    private void EndAwaitingResume()
    {
        _awaitingResume = false;
        Timers.Cancel(ResumeTimer);
        Stash.UnstashAll();
    }

    /// <summary>
    /// Sharding moves this session to another node: once its writes are durable, tell the connection (which
    /// resumes the session there) and stop. A session that is not journaled writes its state once, so the
    /// next incarnation starts from it.
    /// </summary>
    private void OnHandOff()
    {
        Timers.CancelAll();
        if (_connection is not null && !_ending)
        {
            var connection = _connection;
            var connectionId = _connectionId!;
            if (!_state.IsPersistent)
            {
                Write([new SessionHandedOff(_state)], () => { });
            }
            Defer(() =>
            {
                connection.Tell(new SessionMoved(connectionId));
                Context.Unwatch(connection);
                _connection = null;
                _connectionId = null;
                Context.Stop(Self);
            });
            return;
        }
        Defer(() =>
        {
            if (_journal is not null && _state.Exists && !_state.Connected && !_ending)
            {
                // Nothing starts it on the new node until it is needed: its row says so, and carries its deadline.
                PutCatalog(resting: true, () => Context.Stop(Self));
                return;
            }
            Context.Stop(Self);
        });
    }

    private void OnConnectionClosed(ConnectionClosed c)
    {
        if (_connection is not null)
        {
            Context.Unwatch(_connection);
        }
        _connection = null;
        _connectionId = null;
        Commit(_state.OnConnectionClosed(c.Graceful, c.PublishWill, c.NewSessionExpiry, Now), Self, 0);
        if (_discardOnClose)
        {
            _discardOnClose = false;
            PublishWill();
            EndSession();
            return;
        }
        AfterDisconnect();
    }

    /// <summary>Tells this node's session index how the session stands (connection, protocol, user name, subscriptions).</summary>
    private void Index(bool connected) =>
        _services.SessionIndex.Tell(new IndexUpdate(_state.ClientId, connected, Self, _state.ProtocolLevel, _username, _state.Subscriptions));

    /// <summary>
    /// An operator's disconnect: the connection is told (it closes, and its close is handled as any other); with
    /// discard the session also ends, at once when no client is connected, else once the connection has closed.
    /// </summary>
    private void OnKick(KickClient k)
    {
        var found = _state.Exists || _connection is not null;
        if (_connection is not null)
        {
            _connection.Tell(new ClientKicked(_connectionId!));
            _discardOnClose |= k.Discard;
        }
        else if (k.Discard && _state.Exists)
        {
            PublishWill();
            EndSession();
        }
        Sender.Tell(new KickDone(k.ClientId, found));
    }

    /// <summary>Arms the will delay and session expiry timers, or ends a session that has no expiry.</summary>
    private void AfterDisconnect()
    {
        Index(connected: false);
        if (_state.IsPersistent && _services.Settings.SessionRestAfter > TimeSpan.Zero)
        {
            // Idle this long, it rests (see Rest); ReceiveTimeout comes again while something still holds it.
            Context.SetReceiveTimeout(_services.Settings.SessionRestAfter);
        }
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
        _services.SessionIndex.Tell(new IndexRemove(_state.ClientId, Self));
        SetState(SessionState.Empty(_state.ClientId));
        SyncRoutes(wait: false);
        // The next incarnation must not recover this session: passivate once the journal (if any) is deleted.
        DeleteJournal(Passivate);
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
    /// <summary>
    /// Replaces the state, moving the process's gauges of messages in flight to clients and queued for them by the
    /// difference (two counts compared; an interlocked add only when one changed).
    /// </summary>
    private void SetState(SessionState state)
    {
        var inflight = state.Inflight.Count - _state.Inflight.Count;
        var queued = state.QueueCount - _state.QueueCount;
        _state = state;
        if (inflight != 0)
        {
            BrokerCounters.SessionInflight.Add(inflight);
        }
        if (queued != 0)
        {
            BrokerCounters.SessionQueued.Add(queued);
        }
    }

    private void Commit(SessionDecision decision, IActorRef sender, long correlation)
    {
        SetState(decision.State);
        var connection = _connection;
        var effects = decision.Effects;
        var routeToken = SyncRoutes(wait: effects.Count > 0);
        var persist = decision.Events.Count > 0 && _state.IsPersistent;
        var catalogToken = MaybePutCatalog(waitForRoutes: effects.Count > 0);
        if (!persist && routeToken == 0 && catalogToken == 0)
        {
            Run(effects, connection, sender, correlation);
            return;
        }
        WaitingEffects? waiting = null;
        if (routeToken != 0 || catalogToken != 0)
        {
            // e.g. a SUBACK: sent once every node routes to the new subscription (and it is durable, in the journal and
            // in the catalog row that routes to the session while it is at rest).
            waiting = new WaitingEffects(effects, connection, sender, correlation,
                (persist ? 1 : 0) + (routeToken != 0 ? 1 : 0) + (catalogToken != 0 ? 1 : 0));
            if (routeToken != 0)
            {
                (_routeWaits ??= [])[routeToken] = waiting;
            }
            if (catalogToken != 0)
            {
                var w = waiting;
                _catalogWaits![catalogToken] = () => Done(w);
            }
        }
        if (persist)
        {
            var count = decision.Events.Count;
            _pendingWrites += count;
            Write(decision.Events, () =>
            {
                _pendingWrites -= count;
                _sinceSnapshot += count;
                if (waiting is null)
                {
                    Run(effects, connection, sender, correlation);
                }
                else
                {
                    Done(waiting);
                }
                MaybeSnapshot();
            });
        }
    }

    /// <summary>How many messages, and how many bytes of messages (<see cref="IQueuedBytes"/>), wait in this session's mailbox.</summary>
    private bool Behind(out int messages, out long bytes)
    {
        var cell = (ActorCell)Context;
        messages = cell.NumberOfMessages;
        bytes = cell.Mailbox?.MessageQueue is CompactMessageQueue queue ? queue.Bytes : 0;
        return true;
    }

    private void Done(WaitingEffects waiting)
    {
        if (--waiting.Waits == 0)
        {
            Run(waiting.Effects, waiting.Connection, waiting.Sender, waiting.Correlation);
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
                    _services.RetainedStore.Tell(new QueryRetained(r.Subscription.Filter), Self);
                    break;
                case ConnectAccepted accepted:
                    _accepted = accepted;
                    if (accepted.ConnectionId == _acceptedEarly)
                    {
                        // Answered while the session was starting (OnStarting).
                        _acceptedEarly = null;
                        if (accepted.SessionPresent || accepted.PendingInboundQos2.Count > 0)
                        {
                            Log.Error("session {0}: a clean start answered early turned out to have a session present", _state.ClientId);
                        }
                        break;
                    }
                    connection?.Tell(effect);
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
            sender.Tell(new DeliverAck(correlation, DeliveryTarget.Session(_state.ClientId)));
        }
    }

    /// <summary>
    /// Asserts this session's filters to the cluster's route tables when they (or, for shared subscriptions,
    /// whether the client is connected) changed since the last assertion. With <paramref name="wait"/> the
    /// returned token is answered with <see cref="RoutesAsserted"/> once every reachable node applied them; 0 = nothing sent.
    /// </summary>
    private long SyncRoutes(bool wait)
    {
        var subs = _state.Subscriptions;
        var hasShared = false;
        foreach (var sub in subs.Values)
        {
            hasShared |= sub.IsShared;
        }
        // Shared groups send to connected members first; a disconnected one only when no member is connected.
        var connected = !hasShared || _state.Connected;
        var sameFilters = ReferenceEquals(subs, _assertedSubs) || (subs.Count == 0 && (_assertedSubs is null || _assertedSubs.Count == 0));
        if (sameFilters && (subs.Count == 0 || connected == _assertedConnected))
        {
            return 0;
        }
        _assertedSubs = subs;
        _assertedConnected = connected;
        var entries = new RouteEntry[subs.Count];
        var i = 0;
        foreach (var filter in subs.Keys)
        {
            entries[i++] = new RouteEntry(filter, connected);
        }
        var token = wait ? ++_routeToken : 0;
        _services.Routes.Tell(new AssertRoutes(new ClientRoutes(_state.ClientId, RouteVersions.Next(), entries), token), Self);
        return token;
    }

    /// <summary>A message reached a session that does not exist: route tables still list it somewhere, so correct them once.</summary>
    private void ForgetStaleRoutes()
    {
        if (_assertedSubs is null)
        {
            _assertedSubs = _state.Subscriptions;
            _assertedConnected = true;
            _services.Routes.Tell(new AssertRoutes(new ClientRoutes(_state.ClientId, RouteVersions.Next(), []), 0), Self);
        }
    }

    private void MaybeSnapshot()
    {
        // Only when no write is pending does _state equal the journal up to LastSequenceNr.
        if (_sinceSnapshot >= _services.Settings.SnapshotEvery && _pendingWrites == 0 && _state.IsPersistent)
        {
            _sinceSnapshot = 0;
            _journal?.Tell(new JournalSnapshot(_state));
        }
    }

    protected override void PostStop()
    {
        // What this incarnation held leaves memory with it (a queue at rest stays in the journal).
        BrokerCounters.SessionInflight.Add(-_state.Inflight.Count);
        BrokerCounters.SessionQueued.Add(-_state.QueueCount);
        if (_connection is not null && _connectionId is not null)
        {
            // Stopped without a hand-off: the client must reconnect to find the session again.
            _connection.Tell(new SessionLost(_connectionId));
        }
        _services.Routes.Tell(new UnhostRoutes(_state.ClientId));
        _services.SessionIndex.Tell(new IndexRemove(_state.ClientId, Self));
        base.PostStop();
    }
}
