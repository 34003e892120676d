using Akka.Actor;
using Broker.Actors.Amqp;
using Broker.Actors.Messages;
using Broker.Actors.Retained;
using Broker.Actors.Sessions;

namespace Broker.Actors.Routing;

/// <summary>
/// Routes one published message: matches the cluster-wide subscription trie, sends one <see cref="Deliver"/>
/// per matching session through the session shard region (one hop to wherever the session lives), or, for the
/// sessions <paramref name="hosts"/> knows on another node, one <see cref="NodeDeliver"/> per such node, and
/// hands retained messages to the retained store. Each target answers the sender with <see cref="DeliverAck"/>
/// carrying <c>correlation</c> once the message is durable; correlation 0 asks for no answer (QoS 0).
/// </summary>
/// <param name="nodeBatchBytes">Most bytes of targets in one <see cref="NodeDeliver"/> (estimated; tests make it small).</param>
public sealed class MessageRouter(SubscriptionTrie trie, IActorRef sessionRegion, IActorRef retainedStore, AmqpTopicRouter? amqp = null, SessionHosts? hosts = null,
    long nodeBatchBytes = RemoteChunks.ChunkBytes)
{
    public readonly record struct RouteResult(int Sessions, int Acks);

    /// <summary>
    /// Sends the message to every target. <paramref name="sent"/>, when given, receives each message sent
    /// keyed by its <see cref="DeliverAck.Target"/>, so the caller can send it again if its node fails.
    /// </summary>
    /// <remarks>
    /// With <paramref name="toAmqp"/> the message also goes to AMQP queues bound to <c>amq.topic</c>; they count
    /// as sessions in the result and answer <see cref="Amqp.Enqueued"/> (by message id) instead of DeliverAck.
    /// A message that came from AMQP is routed with it off, since its exchange already reached those queues.
    /// <paramref name="targets"/>, when given, receives every target (for a <see cref="FlowWindow"/>'s probe).
    /// </remarks>
    public RouteResult Route(PublishedMessage message, RouteCollector collector, long correlation, IActorRef sender, Dictionary<DeliveryTarget, object>? sent = null,
        bool toAmqp = true, ISet<DeliveryTarget>? targets = null)
    {
        collector.Clear();
        trie.Match(message.Topic, collector);
        foreach (var (clientId, target) in collector.Targets)
        {
            var fanOut = hosts?.FanOutFor(clientId);
            if (fanOut is null)
            {
                var deliver = new Deliver(clientId, message, target.NonShared, target.SharedFilters, correlation);
                sessionRegion.Tell(deliver, sender);
                sent?.Add(DeliveryTarget.Session(clientId), deliver);
            }
            else
            {
                if (collector.AddRemote(fanOut, new NodeTarget(clientId, target.NonShared, target.SharedFilters), nodeBatchBytes) is { } full)
                {
                    SendToNode(fanOut, message, correlation, full, sender);
                }
                // A copy that is not answered is sent again through the region, which finds the session wherever it is.
                sent?.Add(DeliveryTarget.Session(clientId), new Deliver(clientId, message, target.NonShared, target.SharedFilters, correlation));
            }
            targets?.Add(DeliveryTarget.Session(clientId));
        }
        if (collector.ByNode is { Count: > 0 } byNode)
        {
            foreach (var (fanOut, batch) in byNode)
            {
                if (batch.Targets.Count > 0)
                {
                    SendToNode(fanOut, message, correlation, batch.Targets, sender);
                }
            }
            byNode.Clear();
        }
        var acks = collector.Count;
        if (message.Retain)
        {
            var store = new StoreRetained(message, correlation);
            retainedStore.Tell(store, sender);
            sent?.Add(DeliveryTarget.RetainedStore, store);
            targets?.Add(DeliveryTarget.RetainedStore);
            acks++;
        }
        var queues = toAmqp && amqp is not null ? amqp.Route(message, correlation != 0, sender, sent, targets) : 0;
        return new RouteResult(collector.Count + queues, acks + queues);
    }

    private void SendToNode(IActorRef fanOut, PublishedMessage message, long correlation, List<NodeTarget> targets, IActorRef sender)
    {
        fanOut.Tell(new NodeDeliver(message, correlation, targets), sender);
        hosts!.BatchesSent.Increment();
        hosts.DeliveriesBatched.Add(targets.Count);
    }

    /// <summary>
    /// Sends flow probe <paramref name="id"/> to <paramref name="target"/> the way messages reach it, so it arrives after
    /// them; the target answers <see cref="FlowAck"/> to <paramref name="sender"/>.
    /// </summary>
    public void Probe(DeliveryTarget target, long id, IActorRef sender)
    {
        switch (target.Kind)
        {
            case TargetKind.Session:
                // The way Route sent the messages: through the fan-out actor of the session's node, or the region.
                (hosts?.FanOutFor(target.Name) ?? sessionRegion).Tell(new SessionFlowProbe(target.Name, id), sender);
                break;
            case TargetKind.RetainedStore:
                retainedStore.Tell(new RetainedFlowProbe(id), sender);
                break;
            case TargetKind.Queue when amqp is not null:
                amqp.Probe(target.Name, id, sender);
                break;
            default:
                // No AMQP on this node: no queue was routed to, so none is probed; answer for it.
                sender.Tell(new FlowAck(id));
                break;
        }
    }

    /// <summary>
    /// Sends again one message that <see cref="Route"/> put in <c>sent</c> and that was not answered (its node may have
    /// failed): a session, the retained store and an AMQP queue each recognise a copy they already hold by its id.
    /// </summary>
    public void Resend(object sent, IActorRef sender)
    {
        switch (sent)
        {
            case Deliver d:
                sessionRegion.Tell(d with { Retry = true }, sender);
                break;
            case StoreRetained r:
                retainedStore.Tell(r, sender);
                break;
            case Enqueue e when amqp is not null:
                amqp.Resend(e, sender);
                break;
            default:
                throw new ArgumentException($"not a message Route sends: {sent.GetType().Name}", nameof(sent));
        }
    }
}
