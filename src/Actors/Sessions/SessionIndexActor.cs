using Akka.Actor;
using Broker.Actors.Messages;

namespace Broker.Actors.Sessions;

public enum SessionStateFilter : byte
{
    All = 0,
    Connected = 1,
    Disconnected = 2,
}

/// <summary>A session on this node started, connected or disconnected (sent by the session actor).</summary>
/// <remarks><paramref name="ProtocolLevel"/> (0 for AMQP) and <paramref name="Username"/> ("" when unknown) serve the session list's filters;
/// <paramref name="Subscriptions"/>: the session's subscriptions now (null: none, an AMQP connection).</remarks>
public sealed record IndexUpdate(string ClientId, bool Connected, IActorRef Session, byte ProtocolLevel = 4, string Username = "",
    System.Collections.Immutable.ImmutableSortedDictionary<string, Subscription>? Subscriptions = null);

/// <summary>Filters of the sessions a node holds, aggregated (admin API); answered with <see cref="FiltersPage"/>.</summary>
public sealed record ListFilters(string? After, string Prefix, SessionStateFilter State, int Limit) : IBrokerSerializable;

/// <summary><paramref name="HasMore"/>: this node has matching filters after the last one returned.</summary>
public sealed record FiltersPage(string Node, IReadOnlyList<FilterRow> Rows, bool HasMore) : IBrokerSerializable;

/// <summary>The sessions a node holds that subscribe to <paramref name="Filter"/>; answered with <see cref="FilterClientsPage"/>.</summary>
public sealed record ListFilterClients(string Filter, string? After, string Prefix, SessionStateFilter State, int Limit) : IBrokerSerializable;

public sealed record FilterClientsPage(string Node, IReadOnlyList<FilterClient> Rows, bool HasMore) : IBrokerSerializable;

/// <summary>The session ended; removed only if <paramref name="Session"/> is still the indexed incarnation.</summary>
public sealed record IndexRemove(string ClientId, IActorRef Session);

/// <summary>One node's part of a sessions page: up to <paramref name="Limit"/> rows strictly after <paramref name="After"/>.</summary>
/// <remarks>
/// <paramref name="ProtocolLevel"/> and <paramref name="Username"/>, when set, keep only sessions of that protocol level
/// (0 = AMQP) or whose client last connected with that user name.
/// </remarks>
public sealed record ListSessions(string? After, string Prefix, SessionStateFilter State, int Limit, byte? ProtocolLevel = null, string? Username = null)
    : IBrokerSerializable;

/// <summary><paramref name="HasMore"/>: this node has matching rows after the last one returned.</summary>
public sealed record SessionsPage(string Node, IReadOnlyList<SessionInfo> Sessions, bool HasMore) : IBrokerSerializable;

public sealed record FindSession(string ClientId) : IBrokerSerializable;

public sealed record SessionNotFound(string ClientId) : IBrokerSerializable;

/// <summary>Asks a node for its counts (answered with <see cref="NodeStats"/>).</summary>
public sealed record GetNodeStats : IBrokerSerializable
{
    public static readonly GetNodeStats Instance = new();
}

/// <summary>
/// One node's counts: <see cref="BrokerCounters.Snapshot"/> and its sessions in memory (<c>sessions.in_memory</c>,
/// <c>sessions.connected</c>), with how long the node has run.
/// </summary>
public sealed record NodeStats(string Node, long UptimeMs, IReadOnlyDictionary<string, long> Counters) : IBrokerSerializable;

/// <summary>
/// Per-node index of the sessions hosted here, sorted by client ID (UTF-8 byte order). A page query
/// picks its rows from the index and asks only those session actors for their details, in parallel
/// and with a timeout, so listing never loads every session.
/// </summary>
public sealed class SessionIndexActor : ReceiveActor
{
    private sealed class Entry(IActorRef session, bool connected, byte protocolLevel, string username)
    {
        public IActorRef Session = session;
        public bool Connected = connected;
        public byte ProtocolLevel = protocolLevel;
        public string Username = username;
    }

    private readonly SortedDictionary<string, Entry> _entries = new(Utf8Ordinal.Instance);
    private readonly SortedSet<string> _keys = new(Utf8Ordinal.Instance);
    private readonly string _node;
    private readonly TimeSpan _askTimeout;
    private readonly long _startedMs = Environment.TickCount64;
    private readonly SubscriptionIndex _subscriptions = new();
    private int _connected;

    public static Props Props(string node, TimeSpan askTimeout) => Akka.Actor.Props.Create(() => new SessionIndexActor(node, askTimeout));

    public SessionIndexActor(string node, TimeSpan askTimeout)
    {
        _node = node;
        _askTimeout = askTimeout;
        Receive<IndexUpdate>(u =>
        {
            if (_entries.TryGetValue(u.ClientId, out var e))
            {
                Connected((u.Connected ? 1 : 0) - (e.Connected ? 1 : 0));
                e.Session = u.Session;
                e.Connected = u.Connected;
                e.ProtocolLevel = u.ProtocolLevel;
                e.Username = u.Username;
                SetSubscriptions(u);
            }
            else
            {
                _entries[u.ClientId] = new Entry(u.Session, u.Connected, u.ProtocolLevel, u.Username);
                SetSubscriptions(u);
                _keys.Add(u.ClientId);
                BrokerCounters.SessionsInMemory.Add(1);
                Connected(u.Connected ? 1 : 0);
            }
        });
        Receive<IndexRemove>(r =>
        {
            if (_entries.TryGetValue(r.ClientId, out var e) && e.Session.Equals(r.Session))
            {
                _entries.Remove(r.ClientId);
                _keys.Remove(r.ClientId);
                BrokerCounters.SessionsInMemory.Add(-1);
                Connected(e.Connected ? -1 : 0);
                var held = _subscriptions.SubscriptionCount;
                _subscriptions.Remove(r.ClientId);
                BrokerCounters.Subscriptions.Add(_subscriptions.SubscriptionCount - held);
            }
        });
        Receive<ListSessions>(HandleList);
        Receive<ListFilters>(q =>
        {
            var (rows, more) = _subscriptions.Filters(q.After, q.Prefix, InState(q.State), q.Limit);
            Sender.Tell(new FiltersPage(_node, rows, more));
        });
        Receive<ListFilterClients>(q =>
        {
            var (rows, more) = _subscriptions.Clients(q.Filter, q.After, q.Prefix, InState(q.State), q.Limit);
            Sender.Tell(new FilterClientsPage(_node, rows, more));
        });
        Receive<KickClient>(k =>
        {
            // The session actor (MQTT) or the connection actor (AMQP) of the entry answers; without one, not here.
            if (_entries.TryGetValue(k.ClientId, out var e))
            {
                e.Session.Forward(k);
            }
            else
            {
                Sender.Tell(new KickDone(k.ClientId, false));
            }
        });
        Receive<GetNodeStats>(_ =>
        {
            var counters = BrokerCounters.Snapshot();
            counters["sessions.in_memory"] = _entries.Count;
            counters["sessions.connected"] = _connected;
            Sender.Tell(new NodeStats(_node, Environment.TickCount64 - _startedMs, counters));
        });
        Receive<FindSession>(f =>
        {
            var sender = Sender;
            if (!_entries.TryGetValue(f.ClientId, out var e))
            {
                sender.Tell(new SessionNotFound(f.ClientId));
                return;
            }
            Fetch([e.Session]).ContinueWith(
                t => t.Result.Count == 1 ? (object)t.Result[0] : new SessionNotFound(f.ClientId),
                TaskScheduler.Default).PipeTo(sender);
        });
    }

    private Func<string, bool> InState(SessionStateFilter state) => state switch
    {
        SessionStateFilter.Connected => id => _entries.TryGetValue(id, out var e) && e.Connected,
        SessionStateFilter.Disconnected => id => _entries.TryGetValue(id, out var e) && !e.Connected,
        _ => _ => true,
    };

    private void SetSubscriptions(IndexUpdate u)
    {
        var held = _subscriptions.SubscriptionCount;
        _subscriptions.Set(u.ClientId, u.Subscriptions ?? System.Collections.Immutable.ImmutableSortedDictionary<string, Subscription>.Empty);
        BrokerCounters.Subscriptions.Add(_subscriptions.SubscriptionCount - held);
    }

    private void Connected(int delta)
    {
        _connected += delta;
        BrokerCounters.SessionsConnected.Add(delta);
    }

    /// <summary>What this index held leaves the process's gauges when it stops (a node shutting down in a test process).</summary>
    protected override void PostStop()
    {
        BrokerCounters.SessionsInMemory.Add(-_entries.Count);
        BrokerCounters.SessionsConnected.Add(-_connected);
        BrokerCounters.Subscriptions.Add(-_subscriptions.SubscriptionCount);
        base.PostStop();
    }

    private void HandleList(ListSessions q)
    {
        var sender = Sender;
        var refs = new List<IActorRef>();
        var hasMore = false;
        foreach (var id in Candidates(q.After, q.Prefix))
        {
            if (!Utf8Ordinal.StartsWith(id, q.Prefix))
            {
                break;
            }
            var e = _entries[id];
            if (q.State == SessionStateFilter.Connected && !e.Connected || q.State == SessionStateFilter.Disconnected && e.Connected
                || q.ProtocolLevel is { } level && e.ProtocolLevel != level || q.Username is { } user && e.Username != user)
            {
                continue;
            }
            if (q.Limit > 0 && refs.Count == q.Limit)
            {
                hasMore = true;
                break;
            }
            refs.Add(e.Session);
        }
        Fetch(refs).ContinueWith(t => new SessionsPage(_node, t.Result, hasMore), TaskScheduler.Default).PipeTo(sender);
    }

    private IEnumerable<string> Candidates(string? after, string prefix) => Utf8Ordinal.KeysAfter(_keys, after, prefix);

    private async Task<IReadOnlyList<SessionInfo>> Fetch(List<IActorRef> sessions)
    {
        var tasks = sessions.Select(s => s.Ask<object>(GetSessionInfo.Instance, _askTimeout)).ToArray();
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Rows of sessions that did not answer in time are left out; the rest of the page stands.
        }
        var rows = new List<SessionInfo>(tasks.Length);
        foreach (var t in tasks)
        {
            if (t.IsCompletedSuccessfully && t.Result is SessionInfo info)
            {
                rows.Add(info);
            }
        }
        return rows;
    }
}

/// <summary>
/// The index asks the session actor itself, never through the shard region, which would start an
/// entity for an unknown client ID. Answered with <see cref="SessionInfo"/>.
/// </summary>
public sealed record GetSessionInfo
{
    public static readonly GetSessionInfo Instance = new();
}
