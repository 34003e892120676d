using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Broker.Actors.Messages;

namespace Broker.Actors.Routing;

/// <summary>One subscription filter of a client; <c>Connected</c> matters only for shared filters.</summary>
public readonly record struct RouteEntry(string Filter, bool Connected);

/// <summary>
/// Every subscription filter of one client, as its session last asserted them. <paramref name="Version"/>
/// grows with every assertion (see <see cref="RouteVersions"/>), so an older assertion arriving late
/// never overwrites a newer one.
/// </summary>
public sealed record ClientRoutes(string ClientId, long Version, IReadOnlyList<RouteEntry> Entries)
{
    /// <summary>An upper estimate of the serialized size (strings at 3 bytes a char), for <see cref="RemoteChunks"/>.</summary>
    public long ApproximateSize
    {
        get
        {
            var size = 16 + 3L * ClientId.Length;
            foreach (var e in Entries)
            {
                size += 8 + 3L * e.Filter.Length;
            }
            return size;
        }
    }
}

/// <summary>
/// Session → its node's replicator. <paramref name="Hosted"/>: the session lives on this node (its routes are
/// part of what this node hands to joining nodes). A non-zero <paramref name="Token"/> asks for
/// <see cref="RoutesAsserted"/> once every reachable node has applied the routes.
/// </summary>
public sealed record AssertRoutes(ClientRoutes Routes, long Token);

public sealed record RoutesAsserted(long Token);

/// <summary>The session stopped on this node (handed off or passivated): its routes stay, it is just no longer hosted here.</summary>
public sealed record UnhostRoutes(string ClientId);

/// <summary>Replicator → replicator: routes to apply, answered with <see cref="RouteUpdateAck"/>.</summary>
public sealed record RouteUpdate(long Seq, IReadOnlyList<ClientRoutes> Routes) : IBrokerSerializable;

public sealed record RouteUpdateAck(long Seq) : IBrokerSerializable;

/// <summary>A joining node asks each member for the routes of the sessions it hosts.</summary>
public sealed record RouteSyncRequest : IBrokerSerializable
{
    public static readonly RouteSyncRequest Instance = new();
}

/// <summary>One chunk of the routes a member hosts (see <see cref="RemoteChunks"/>); the member's answer is complete with <c>Last</c>.</summary>
public sealed record RouteSync(IReadOnlyList<ClientRoutes> Routes, bool Last = true) : IBrokerSerializable;

/// <summary>Start-up: fetch the routes of every Up member; answered with <see cref="RoutesSynced"/>.</summary>
public sealed record SyncRoutesFromPeers(TimeSpan Timeout);

public sealed record RoutesSynced(int Peers, int Answered, int Clients);

/// <summary>
/// Start-up: the filters of the sessions listed in the session catalog (version 0: any assertion of a running session
/// wins), applied to this node only; answered with itself.
/// </summary>
public sealed record LoadRoutes(IReadOnlyList<ClientRoutes> Routes);

/// <summary>Answered with itself once everything sent to the replicator before it has been applied locally.</summary>
public sealed record FlushRoutes
{
    public static readonly FlushRoutes Instance = new();
}

/// <summary>Versions for <see cref="ClientRoutes"/>: microseconds of wall-clock time, strictly increasing on this node.</summary>
public static class RouteVersions
{
    private static long _last;

    public static long Next()
    {
        var now = DateTime.UtcNow.Ticks / 10;
        while (true)
        {
            var last = Volatile.Read(ref _last);
            var next = Math.Max(now, last + 1);
            if (Interlocked.CompareExchange(ref _last, next, last) == last)
            {
                return next;
            }
        }
    }
}

/// <summary>
/// Keeps this node's <see cref="SubscriptionTrie"/> equal to the subscriptions of every session in the
/// cluster, so a publish is matched where it arrives and goes straight to each matching session.
/// A session asserts its whole filter set whenever it changes; the replicator applies it locally and
/// sends it to the replicator of every other member, and (when asked) answers the session once every
/// reachable member has applied it, so a SUBACK means "routed from every node".
/// Routes outlive the node that asserted them: a session restarted elsewhere asserts again, and a
/// session that receives a message it has no subscription for asserts its real set (see SessionActor).
/// </summary>
public sealed class RouteReplicator : UntypedActor, IWithTimers
{
    public const string Name = "routes";
    private static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(5);

    private sealed class PendingAck(IActorRef replyTo, long token, HashSet<Address> waiting)
    {
        public readonly IActorRef ReplyTo = replyTo;
        public readonly long Token = token;
        public readonly HashSet<Address> Waiting = waiting;
    }

    private sealed class SyncState(IActorRef replyTo, HashSet<Address> waiting, int peers)
    {
        public readonly IActorRef ReplyTo = replyTo;
        public readonly HashSet<Address> Waiting = waiting;
        public readonly int Peers = peers;
    }

    private sealed record AckTimedOut(long Seq);

    private sealed record SyncTimedOut
    {
        public static readonly SyncTimedOut Instance = new();
    }

    private readonly SubscriptionTrie _trie;
    private readonly SessionHosts? _hosts;
    private readonly Cluster _cluster = Cluster.Get(Context.System);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, ClientRoutes> _mirror = new(StringComparer.Ordinal);
    private readonly HashSet<string> _hosted = new(StringComparer.Ordinal);
    private readonly Dictionary<Address, ActorSelection> _peers = [];
    private readonly HashSet<Address> _unreachable = [];
    private readonly Dictionary<long, PendingAck> _pending = [];
    private SyncState? _sync;
    private long _seq;

    /// <param name="hosts">Told which node hosts each session (the node whose replicator sent its newest routes), for
    /// the router's one copy per node; null where nothing reads it.</param>
    public RouteReplicator(SubscriptionTrie trie, SessionHosts? hosts = null)
    {
        _trie = trie;
        _hosts = hosts;
    }

    public static Props Props(SubscriptionTrie trie, SessionHosts? hosts = null) => Akka.Actor.Props.Create(() => new RouteReplicator(trie, hosts));

    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart() =>
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case AssertRoutes a:
                OnAssert(a);
                break;
            case UnhostRoutes u:
                _hosted.Remove(u.ClientId);
                break;
            case RouteUpdate u:
                foreach (var r in u.Routes)
                {
                    ApplyFrom(r, Sender.Path.Address);
                }
                Sender.Tell(new RouteUpdateAck(u.Seq));
                break;
            case RouteUpdateAck a:
                if (_pending.TryGetValue(a.Seq, out var p) && p.Waiting.Remove(Sender.Path.Address) && p.Waiting.Count == 0)
                {
                    Complete(a.Seq);
                }
                break;
            case AckTimedOut t:
                if (_pending.TryGetValue(t.Seq, out var late))
                {
                    _log.Warning("routes of seq {0}: no answer from {1} within {2}", t.Seq, string.Join(", ", late.Waiting), AckTimeout);
                    Complete(t.Seq);
                }
                break;
            case RouteSyncRequest:
                AddPeer(Sender.Path.Address);
                var chunks = RemoteChunks.Split([.. _hosted.Select(id => _mirror.GetValueOrDefault(id)).OfType<ClientRoutes>()], r => r.ApproximateSize).ToList();
                for (var i = 0; i < chunks.Count; i++)
                {
                    Sender.Tell(new RouteSync(chunks[i], i == chunks.Count - 1));
                }
                break;
            case RouteSync s:
                foreach (var r in s.Routes)
                {
                    ApplyFrom(r, Sender.Path.Address);
                }
                if (s.Last && _sync is not null && _sync.Waiting.Remove(Sender.Path.Address) && _sync.Waiting.Count == 0)
                {
                    FinishSync();
                }
                break;
            case SyncRoutesFromPeers s:
                StartSync(s);
                break;
            case SyncTimedOut:
                if (_sync is not null)
                {
                    _log.Warning("route sync: no answer from {0}", string.Join(", ", _sync.Waiting));
                    FinishSync();
                }
                break;
            case LoadRoutes l:
                foreach (var r in l.Routes)
                {
                    Apply(r);
                }
                Sender.Tell(l);
                break;
            case FlushRoutes:
                Sender.Tell(FlushRoutes.Instance);
                break;
            case ClusterEvent.MemberUp up:
                AddPeer(up.Member.Address);
                break;
            case ClusterEvent.MemberRemoved removed:
                RemovePeer(removed.Member.Address);
                _hosts?.NodeGone(removed.Member.Address);
                break;
            case ClusterEvent.UnreachableMember u:
                _unreachable.Add(u.Member.Address);
                StopWaitingFor(u.Member.Address);
                break;
            case ClusterEvent.ReachableMember r:
                _unreachable.Remove(r.Member.Address);
                break;
        }
    }

    private void OnAssert(AssertRoutes a)
    {
        var routes = a.Routes;
        if (Apply(routes))
        {
            _hosts?.HostedHere(routes.ClientId);
        }
        if (routes.Entries.Count > 0)
        {
            _hosted.Add(routes.ClientId);
        }
        else
        {
            _hosted.Remove(routes.ClientId);
        }
        if (_peers.Count == 0)
        {
            Reply(Sender, a.Token);
            return;
        }
        var seq = ++_seq;
        var update = new RouteUpdate(seq, [routes]);
        foreach (var peer in _peers.Values)
        {
            peer.Tell(update, Self);
        }
        if (a.Token == 0)
        {
            return;
        }
        var waiting = _peers.Keys.Where(addr => !_unreachable.Contains(addr)).ToHashSet();
        if (waiting.Count == 0)
        {
            Reply(Sender, a.Token);
            return;
        }
        _pending[seq] = new PendingAck(Sender, a.Token, waiting);
        Timers.StartSingleTimer(seq, new AckTimedOut(seq), AckTimeout);
    }

    private static void Reply(IActorRef to, long token)
    {
        if (token != 0)
        {
            to.Tell(new RoutesAsserted(token));
        }
    }

    private void Complete(long seq)
    {
        if (_pending.Remove(seq, out var p))
        {
            Timers.Cancel(seq);
            Reply(p.ReplyTo, p.Token);
        }
    }

    /// <summary>Applies routes another node's replicator sent: the session asserting them lives on that node.</summary>
    private void ApplyFrom(ClientRoutes routes, Address from)
    {
        if (!Apply(routes) || _hosts is null)
        {
            return;
        }
        if (routes.Entries.Count == 0 || from.HasLocalScope || from == _cluster.SelfAddress)
        {
            _hosts.HostedHere(routes.ClientId);
        }
        else
        {
            _hosts.HostedAt(routes.ClientId, from);
        }
    }

    /// <summary>Brings the trie from the client's previous routes to <paramref name="routes"/>, unless they are older (then false).</summary>
    private bool Apply(ClientRoutes routes)
    {
        _mirror.TryGetValue(routes.ClientId, out var old);
        if (old is not null && old.Version >= routes.Version)
        {
            return false;
        }
        var id = routes.ClientId;
        if (old is not null)
        {
            foreach (var e in old.Entries)
            {
                if (!Contains(routes.Entries, e.Filter))
                {
                    _trie.Remove(id, e.Filter);
                }
            }
        }
        foreach (var e in routes.Entries)
        {
            var previous = old is null ? null : Find(old.Entries, e.Filter);
            if (previous is null)
            {
                _trie.Add(id, e.Filter, e.Connected);
            }
            else if (previous.Value.Connected != e.Connected)
            {
                _trie.SetConnected(id, e.Filter, e.Connected);
            }
        }
        if (routes.Entries.Count == 0)
        {
            _mirror.Remove(id);
        }
        else
        {
            _mirror[id] = routes;
        }
        return true;
    }

    private static bool Contains(IReadOnlyList<RouteEntry> entries, string filter) => Find(entries, filter) is not null;

    private static RouteEntry? Find(IReadOnlyList<RouteEntry> entries, string filter)
    {
        foreach (var e in entries)
        {
            if (e.Filter == filter)
            {
                return e;
            }
        }
        return null;
    }

    private void AddPeer(Address address)
    {
        if (address != _cluster.SelfAddress && !_peers.ContainsKey(address))
        {
            _peers[address] = Context.ActorSelection(new RootActorPath(address) / "user" / Name);
        }
    }

    private void RemovePeer(Address address)
    {
        _peers.Remove(address);
        _unreachable.Remove(address);
        StopWaitingFor(address);
    }

    private void StopWaitingFor(Address address)
    {
        foreach (var (seq, p) in _pending.ToList())
        {
            if (p.Waiting.Remove(address) && p.Waiting.Count == 0)
            {
                Complete(seq);
            }
        }
        if (_sync is not null && _sync.Waiting.Remove(address) && _sync.Waiting.Count == 0)
        {
            FinishSync();
        }
    }

    private void StartSync(SyncRoutesFromPeers s)
    {
        var members = _cluster.State.Members
            .Where(m => m.Status == MemberStatus.Up && m.Address != _cluster.SelfAddress)
            .Select(m => m.Address)
            .ToHashSet();
        foreach (var address in members)
        {
            AddPeer(address);
            _peers[address].Tell(RouteSyncRequest.Instance, Self);
        }
        _sync = new SyncState(Sender, members, members.Count);
        if (members.Count == 0)
        {
            FinishSync();
            return;
        }
        Timers.StartSingleTimer(SyncTimedOut.Instance, SyncTimedOut.Instance, s.Timeout);
    }

    private void FinishSync()
    {
        var sync = _sync!;
        _sync = null;
        Timers.Cancel(SyncTimedOut.Instance);
        sync.ReplyTo.Tell(new RoutesSynced(sync.Peers, sync.Peers - sync.Waiting.Count, _mirror.Count));
    }
}
