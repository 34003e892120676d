using Akka.Actor;
using Akka.Cluster.Sharding;
using Broker.Actors.Configuration;
using Broker.Actors.Routing;

namespace Broker.Actors;

/// <summary>The node-local parts every session and connection works with, wired once at start-up.</summary>
public sealed class BrokerServices
{
    public const string SessionTypeName = "session";

    private readonly Lazy<IActorRef> _sessionRegion;
    private readonly Lazy<MessageRouter> _router;

    public BrokerServices(ActorSystem system, BrokerSettings settings, SubscriptionTrie trie, IActorRef sessionIndex, IActorRef retainedStore)
    {
        Settings = settings;
        Trie = trie;
        SessionIndex = sessionIndex;
        RetainedStore = retainedStore;
        // Resolved on first use: remembered sessions may start (and publish wills) while the region is still being started.
        _sessionRegion = new Lazy<IActorRef>(() => ClusterSharding.Get(system).ShardRegion(SessionTypeName));
        _router = new Lazy<MessageRouter>(() => new MessageRouter(trie, _sessionRegion.Value, retainedStore));
    }

    public BrokerSettings Settings { get; }
    public SubscriptionTrie Trie { get; }
    public string NodeName => Settings.NodeName;
    public IActorRef SessionIndex { get; }
    public IActorRef RetainedStore { get; }
    public IActorRef SessionRegion => _sessionRegion.Value;
    public MessageRouter Router => _router.Value;
}
