using Akka.Actor;
using Broker.Actors.Messages;
using Broker.Actors.Retained;
using Broker.Actors.Sessions;

namespace Broker.Actors.Routing;

/// <summary>
/// Routes one published message: matches the subscription trie, sends one <see cref="Deliver"/> per
/// matching session through the session shard region (wherever the session lives), and hands retained
/// messages to the retained store. Each target answers the sender with <see cref="DeliverAck"/> carrying
/// <c>correlation</c> once the message is durable; correlation 0 asks for no answer (QoS 0).
/// </summary>
public sealed class MessageRouter(SubscriptionTrie trie, IActorRef sessionRegion, IActorRef retainedStore)
{
    public SubscriptionTrie Trie => trie;

    public readonly record struct RouteResult(int Sessions, int Acks);

    public RouteResult Route(PublishedMessage message, RouteCollector collector, long correlation, IActorRef sender)
    {
        collector.Clear();
        trie.Match(message.Topic, collector);
        foreach (var (clientId, target) in collector.Targets)
        {
            sessionRegion.Tell(new Deliver(clientId, message, target.NonShared, target.SharedFilters, correlation), sender);
        }
        var acks = collector.Count;
        if (message.Retain)
        {
            retainedStore.Tell(new StoreRetained(message, correlation), sender);
            acks++;
        }
        return new RouteResult(collector.Count, acks);
    }
}
