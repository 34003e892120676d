using Akka.Actor;
using Akka.Event;

namespace Broker.Actors.Amqp.Topology;

/// <summary>
/// Keeps this node's <see cref="AmqpTopology"/> equal to the owner's topology. Runs at
/// <c>/user/amqp-topology</c> on every node, where the owner sends each change in version order. A change
/// that does not follow the current version, a start, and a periodic check all ask the owner (through its
/// shard region) for a snapshot; the owner answers the check only when versions differ, so a quiet cluster
/// costs one small message per node and period. Each change and snapshot applied is answered with
/// <see cref="TopologyApplied"/>: the owner waits for those before it answers the command.
/// </summary>
public sealed class TopologyReplica : UntypedActor, IWithTimers
{
    public const string Name = "amqp-topology";

    public static readonly TimeSpan DefaultCheckInterval = TimeSpan.FromSeconds(5);

    private sealed record Check
    {
        public static readonly Check Instance = new();
    }

    private readonly AmqpTopology _topology;
    private readonly IActorRef _owner;
    private readonly TimeSpan _checkInterval;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    // Set from a gap until the next snapshot or check: the changes behind a gap would each ask again otherwise.
    private bool _awaitingSnapshot;
    // Until the first snapshot the replica asks as if it had nothing, so an owner still at version 0 answers too.
    private bool _synced;

    public TopologyReplica(AmqpTopology topology, IActorRef ownerRegion, TimeSpan checkInterval)
    {
        _topology = topology;
        _owner = ownerRegion;
        _checkInterval = checkInterval;
    }

    /// <param name="ownerRegion">the shard region (or proxy) of <see cref="TopologyOwner.TypeName"/>.</param>
    public static Props Props(AmqpTopology topology, IActorRef ownerRegion, TimeSpan? checkInterval = null) =>
        Akka.Actor.Props.Create(() => new TopologyReplica(topology, ownerRegion, checkInterval ?? DefaultCheckInterval));

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Until the first snapshot arrives the replica asks every second: a node's listeners wait for it.</summary>
    private static readonly TimeSpan FirstSyncInterval = TimeSpan.FromSeconds(1);

    protected override void PreStart()
    {
        RequestSnapshot();
        Timers.StartPeriodicTimer(Check.Instance, Check.Instance, _checkInterval < FirstSyncInterval ? _checkInterval : FirstSyncInterval);
    }

    private void MarkSynced()
    {
        if (!_synced)
        {
            _synced = true;
            Timers.StartPeriodicTimer(Check.Instance, Check.Instance, _checkInterval);
        }
    }

    protected override void OnReceive(object message)
    {
        var current = _topology.View;
        switch (message)
        {
            case TopologyChanged c when c.Version == current.Version + 1:
                MarkSynced();
                _topology.Publish(current.Apply(c.Change));
                Sender.Tell(new TopologyApplied(c.Version));
                break;
            case TopologyChanged c when c.Version > current.Version + 1:
                if (!_awaitingSnapshot)
                {
                    _log.Debug("topology change {0} after {1}: asking for a snapshot", c.Version, current.Version);
                    _awaitingSnapshot = true;
                    RequestSnapshot();
                }
                break;
            case TopologyChanged:
                // Had already (it came in a snapshot).
                Sender.Tell(new TopologyApplied(current.Version));
                break;
            case TopologySnapshot s:
                _awaitingSnapshot = false;
                if (s.Version > current.Version || !_synced)
                {
                    MarkSynced();
                    _topology.Publish(TopologyView.FromSnapshot(s));
                }
                Sender.Tell(new TopologyApplied(_topology.View.Version));
                break;
            case Check:
                _awaitingSnapshot = false;
                RequestSnapshot();
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private void RequestSnapshot() =>
        _owner.Tell(new TopologySyncRequest(Self, _synced ? _topology.View.Version : -1));
}
