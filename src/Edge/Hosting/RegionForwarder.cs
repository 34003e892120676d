using Akka.Actor;
using Akka.Cluster.Sharding;

namespace Broker.Edge.Hosting;

/// <summary>
/// Forwards everything to a shard region looked up by name on first use, so two regions whose entities
/// talk to each other can be started one after the other.
/// </summary>
internal sealed class RegionForwarder : ReceiveActor
{
    private IActorRef? _region;

    public static Props Props(string typeName) => Akka.Actor.Props.Create(() => new RegionForwarder(typeName));

    public RegionForwarder(string typeName)
    {
        ReceiveAny(message => (_region ??= ClusterSharding.Get(Context.System).ShardRegion(typeName)).Forward(message));
    }
}
