using System.Collections.Concurrent;
using Akka.Actor;
using Broker.Actors.Messages;
using Broker.Actors.Sessions;

namespace Broker.Actors.Routing;

/// <summary>One session a <see cref="NodeDeliver"/> is for, with what its <see cref="Deliver"/> carries besides the message.</summary>
public readonly record struct NodeTarget(string ClientId, bool NonShared, IReadOnlyList<string>? SharedFilters);

/// <summary>
/// One published message for every matching session hosted on one other node: the payload crosses the network once
/// per node, not once per session. That node's <see cref="NodeFanOutActor"/> hands each session its <see cref="Deliver"/>
/// through the local shard region, as sent by the original sender, so each session answers the publisher as before.
/// </summary>
/// <remarks>
/// The targets of one such message are cut at <see cref="RemoteChunks.ChunkBytes"/> (a publish matching more sessions
/// on one node goes as several), so it always fits the remoting frame, which holds the largest message plus
/// <see cref="RemoteChunks.FrameHeadroom"/>.
/// </remarks>
public sealed record NodeDeliver(PublishedMessage Message, long Correlation, IReadOnlyList<NodeTarget> Targets) : IBrokerSerializable
{
    /// <summary>An upper estimate of a target's serialized size (strings at 3 bytes a char, with their length prefixes).</summary>
    public static long SizeOf(NodeTarget t)
    {
        var size = 8 + 3L * t.ClientId.Length;
        if (t.SharedFilters is { } filters)
        {
            foreach (var f in filters)
            {
                size += 5 + 3L * f.Length;
            }
        }
        return size;
    }
}

/// <summary>
/// Which other node hosts each session, as last told by the <see cref="RouteReplicator"/>s (the node whose session
/// asserted the newest routes), and the <see cref="NodeFanOutActor"/> of each such node. A session hosted here, or
/// whose host is not known, is not listed: the router sends to it through the shard region as before.
/// </summary>
/// <remarks>
/// The entry is a hint, never a requirement: a message sent to a node the session has left goes on through that node's
/// shard region to wherever the session is now. All messages for one session from one node take the same way (the
/// fan-out actor of its host, or the region), so they stay in order; only when the host changes (the session moved)
/// may messages in flight on the old way arrive after the first ones on the new way, as with any hand-off of a shard.
/// </remarks>
public sealed class SessionHosts(bool enabled, Func<Address, IActorRef> fanOutAt)
{
    private readonly ConcurrentDictionary<string, Address> _remote = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Address, IActorRef> _fanOut = new();

    /// <summary>Off: every message goes through the shard region (the key <c>broker.fan-out-per-node</c>).</summary>
    public bool Enabled { get; } = enabled;

    /// <summary><see cref="NodeDeliver"/> messages sent, and the session deliveries they carried (for tests and benchmarks).</summary>
    public Counter BatchesSent { get; } = new();

    public Counter DeliveriesBatched { get; } = new();

    /// <summary>How many sessions are known to live on another node.</summary>
    public int RemoteCount => _remote.Count;

    /// <summary>The session asserted its routes on this node (or stopped asserting any): it is reached through the region.</summary>
    public void HostedHere(string clientId) => _remote.TryRemove(clientId, out _);

    public void HostedAt(string clientId, Address node) => _remote[clientId] = node;

    /// <summary>The node left the cluster: its sessions start elsewhere and assert their routes from there.</summary>
    public void NodeGone(Address node)
    {
        foreach (var (clientId, host) in _remote)
        {
            if (host == node)
            {
                _remote.TryRemove(new KeyValuePair<string, Address>(clientId, host));
            }
        }
        _fanOut.TryRemove(node, out _);
    }

    /// <summary>The fan-out actor of the other node that hosts the session, or null to send through the region.</summary>
    public IActorRef? FanOutFor(string clientId) =>
        Enabled && _remote.TryGetValue(clientId, out var node) ? _fanOut.GetOrAdd(node, fanOutAt) : null;

    /// <summary>The fan-out actor at <paramref name="node"/>, resolved without a round trip (a remote reference by path).</summary>
    public static IActorRef Resolve(ActorSystem system, Address node) =>
        ((ExtendedActorSystem)system).Provider.ResolveActorRef(new RootActorPath(node) / "user" / NodeFanOutActor.Name);
}

/// <summary>
/// Receives <see cref="NodeDeliver"/> from other nodes and gives each session its <see cref="Deliver"/> through this
/// node's shard region; a flow probe for a session reached this way follows the same way, so it arrives after them.
/// Started before the session region, so it exists before any session here asserts routes; what arrives before the
/// region is started (a peer that still names this address for sessions of a node that ran here before) waits for it.
/// </summary>
public sealed class NodeFanOutActor : UntypedActor, IWithUnboundedStash
{
    public const string Name = "fan-out";

    /// <summary>The node's session region has started: deliveries go on to it.</summary>
    public sealed record RegionStarted(IActorRef Region);

    private IActorRef? _region;

    public IStash Stash { get; set; } = null!;

    public static Props Props() => Akka.Actor.Props.Create(() => new NodeFanOutActor());

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case RegionStarted started:
                _region = started.Region;
                Stash.UnstashAll();
                break;
            case NodeDeliver or SessionFlowProbe when _region is null:
                Stash.Stash();
                break;
            case NodeDeliver d:
                foreach (var t in d.Targets)
                {
                    _region!.Tell(new Deliver(t.ClientId, d.Message, t.NonShared, t.SharedFilters, d.Correlation), Sender);
                }
                break;
            case SessionFlowProbe p:
                _region!.Tell(p, Sender);
                break;
            default:
                Unhandled(message);
                break;
        }
    }
}
