using Akka.Actor;
using Broker.Actors.Amqp.Topology;

namespace Broker.Edge.Amqp;

/// <summary>What every AMQP connection of a node works with: the topology replica, the queue and topology regions, and the connection limits and users from cluster.hocon.</summary>
internal sealed class AmqpServices(AmqpTopology topology, IActorRef queueRegion, IActorRef topologyOwner, AmqpUsers users, uint frameMax, TimeSpan heartbeat)
{
    public AmqpTopology Topology { get; } = topology;
    public IActorRef QueueRegion { get; } = queueRegion;
    public IActorRef TopologyOwner { get; } = topologyOwner;
    public AmqpUsers Users { get; } = users;
    public uint FrameMax { get; } = frameMax;
    public TimeSpan Heartbeat { get; } = heartbeat;

    /// <summary>The node's connection limits; failed logins are reported to it.</summary>
    public Hosting.Admission Admission { get; init; } = Hosting.Admission.Unlimited;

    /// <summary>RabbitMQ-style permissions in force, or null: every user may do everything (no permissions file).</summary>
    public Func<Security.AmqpPermissions?> Permissions { get; init; } = () => null;

    /// <summary>The MQTT users and ACL: password-file users log in over AMQP too, and amq.topic obeys the ACL.</summary>
    public Security.ClientAccess? Access { get; init; }
}
