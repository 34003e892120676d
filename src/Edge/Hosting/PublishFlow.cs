using Akka.Actor;
using Broker.Actors.Routing;

namespace Broker.Edge.Hosting;

/// <summary>
/// One connection's <see cref="FlowWindow"/> over its <see cref="InboundGate"/>, for MQTT and AMQP alike: the inbound
/// weight of a publish nobody acknowledges (MQTT QoS 0, AMQP without confirms) stays counted until its targets answer
/// the flow probe that covers it. Created at the connection's first such publish.
/// </summary>
internal sealed class PublishFlow(InboundGate gate, MessageRouter router)
{
    /// <summary>A probe unanswered this long is given up (its target's node failed): what it covered no longer holds the client back.</summary>
    public const long ProbeTimeoutMs = 10_000;

    private readonly FlowWindow _window = new(gate.ProbeWeight, ProbeTimeoutMs);

    /// <summary>Where the router adds the targets of each publish held.</summary>
    public HashSet<DeliveryTarget> Targets => _window.Targets;

    /// <summary>Probes still unanswered: the connection's periodic tick must run to <see cref="Expire"/> them.</summary>
    public bool HasOutstanding => _window.Outstanding > 0;

    /// <summary>Holds an acted-on publish of <paramref name="wireBytes"/>; true when that sent a probe (answered to <paramref name="self"/>).</summary>
    public bool Hold(int wireBytes, IActorRef self, long nowMs)
    {
        if (!_window.Hold(InboundGate.Weight(wireBytes)))
        {
            return false;
        }
        gate.ReleaseWeight(_window.Probe(nowMs, (target, id) => router.Probe(target, id, self)));
        return true;
    }

    public void Answer(FlowAck ack) => gate.ReleaseWeight(_window.Answer(ack.Id));

    /// <summary>Releases what probes unanswered for <see cref="ProbeTimeoutMs"/> covered; returns how much and how many, for the log.</summary>
    public (long Weight, int Probes) Expire(long nowMs)
    {
        var expired = _window.Expire(nowMs);
        gate.ReleaseWeight(expired.Weight);
        return expired;
    }
}
