using Akka.Actor;
using Akka.Cluster.Sharding;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Topology;
using Broker.Actors.Configuration;
using Broker.Actors.Retained;
using Broker.Actors.Routing;

namespace Broker.Actors;

/// <summary>The node-local parts every session and connection works with, wired once at start-up.</summary>
public sealed class BrokerServices
{
    public const string SessionTypeName = "session";
    public const string QueueTypeName = "amqp-queue";

    private readonly Lazy<IActorRef> _sessionRegion;
    private readonly Lazy<IActorRef> _retainedRegion;
    private readonly Lazy<MessageRouter> _router;
    private readonly Lazy<IActorRef> _queueRegion;

    public BrokerServices(ActorSystem system, BrokerSettings settings, SubscriptionTrie trie, IActorRef sessionIndex, IActorRef routes,
        IActorRef catalog, AmqpTopology? amqpTopology = null, SessionHosts? hosts = null)
    {
        Settings = settings;
        SessionLimits = settings.Limits;
        Catalog = catalog;
        InfoCodec = new Sessions.SessionInfoCodec(system);
        SessionIndex = sessionIndex;
        Routes = routes;
        // Resolved on first use: remembered sessions may start (and publish wills) while the regions are still being started.
        _sessionRegion = new Lazy<IActorRef>(() => ClusterSharding.Get(system).ShardRegion(SessionTypeName));
        _retainedRegion = new Lazy<IActorRef>(() => ClusterSharding.Get(system).ShardRegion(RetainedStoreActor.TypeName));
        _queueRegion = new Lazy<IActorRef>(() => ClusterSharding.Get(system).ShardRegion(QueueTypeName));
        AmqpTopology = amqpTopology;
        AmqpRouter = amqpTopology is null ? null : new AmqpTopicRouter(amqpTopology, () => _queueRegion.Value);
        _router = new Lazy<MessageRouter>(() => new MessageRouter(trie, _sessionRegion.Value, _retainedRegion.Value, AmqpRouter, hosts));
    }

    public BrokerSettings Settings { get; }

    /// <summary>The limits every session applies (one object shared by all).</summary>
    public Sessions.SessionLimits SessionLimits { get; }

    public string NodeName => Settings.NodeName;
    public IActorRef SessionIndex { get; }

    /// <summary>This node's <see cref="RouteReplicator"/>, which keeps the router's trie equal to every subscription of the cluster.</summary>
    public IActorRef Routes { get; }

    /// <summary>This node's <see cref="Sessions.SessionCatalog"/>: which client IDs have a journal.</summary>
    public IActorRef Catalog { get; }

    public Sessions.SessionInfoCodec InfoCodec { get; }

    public IActorRef RetainedStore => _retainedRegion.Value;
    public IActorRef SessionRegion => _sessionRegion.Value;
    public MessageRouter Router => _router.Value;

    /// <summary>This node's replica of the AMQP exchanges, queues and bindings (null where AMQP is not started).</summary>
    public AmqpTopology? AmqpTopology { get; }

    /// <summary>Carries MQTT publishes on to AMQP queues bound to amq.topic.</summary>
    public AmqpTopicRouter? AmqpRouter { get; }

    public IActorRef QueueRegion => _queueRegion.Value;
}
