using Broker.Actors.Messages;

namespace Broker.Actors.Routing;

/// <summary>
/// Answer of a target (session, AMQP queue, retained store) to a flow probe: everything the prober sent it before the
/// probe has been handled (and written, where the target writes it).
/// </summary>
public sealed record FlowAck(long Id) : IBrokerSerializable, Akka.Event.IDeadLetterSuppression;

/// <summary>
/// Flow control for the messages nobody acknowledges: MQTT QoS 0 publishes and AMQP publishes without confirms. Each
/// is sent to its targets (sessions, queues, the retained store) without an answer, wherever in the cluster they
/// live. Without a bound, one client publishing faster than a target's node takes the messages fills the link between
/// the nodes, and the cluster's heartbeats wait behind it until the nodes call each other unreachable.
/// </summary>
/// <remarks>
/// The connection keeps the inbound bytes of such a message counted against its inbound high-water mark after
/// acting on it (<see cref="Hold"/>); once the bytes held since the last probe reach <c>probeWeight</c>, it sends a
/// probe to every target those messages went to (<see cref="Probe"/>). A target answers a probe after what came
/// before it from the same sender (actor messages keep their order between two actors, through the shard regions
/// too), so when all have answered, the bytes are released (<see cref="Answer"/>). A connection therefore has at most
/// its high-water mark in flight towards its targets, and above it stops reading its socket until they catch up. A
/// probe unanswered for <c>timeoutMs</c> (its target's node failed) releases its bytes anyway (<see cref="Expire"/>).
/// <c>probeWeight</c> must stay below half the high-water mark (where a blocked connection reads again), so what is
/// held but not yet probed never keeps a connection blocked.
/// </remarks>
public sealed class FlowWindow(long probeWeight, long timeoutMs)
{
    private readonly Dictionary<long, SentProbe> _probes = [];
    private long _heldWeight;
    private long _lastId;

    private sealed class SentProbe(long weight, int remaining, long sentAtMs)
    {
        public long Weight { get; } = weight;

        public int Remaining { get; set; } = remaining;

        public long SentAtMs { get; } = sentAtMs;
    }

    /// <summary>
    /// The targets of the messages held since the last probe; the router adds to it as it sends each message (a set,
    /// so a target that got many messages gets one probe).
    /// </summary>
    public HashSet<DeliveryTarget> Targets { get; } = [];

    /// <summary>Probes sent and not yet answered by all their targets.</summary>
    public int Outstanding => _probes.Count;

    /// <summary>Weight held and not yet covered by a probe.</summary>
    public long Unprobed => _heldWeight;

    /// <summary>Holds one message of <paramref name="weight"/> (routed to <see cref="Targets"/>); true when a probe is due.</summary>
    public bool Hold(long weight)
    {
        _heldWeight += weight;
        return _heldWeight >= probeWeight;
    }

    /// <summary>
    /// Starts a probe of everything held since the last one: <paramref name="send"/> is called once per target with
    /// the probe's id. Returns the weight to release at once: all of it when the messages reached no target.
    /// </summary>
    public long Probe(long nowMs, Action<DeliveryTarget, long> send)
    {
        var weight = _heldWeight;
        _heldWeight = 0;
        if (Targets.Count == 0)
        {
            return weight;
        }
        var id = ++_lastId;
        _probes[id] = new SentProbe(weight, Targets.Count, nowMs);
        foreach (var target in Targets)
        {
            send(target, id);
        }
        Targets.Clear();
        return 0;
    }

    /// <summary>One target answered probe <paramref name="id"/>; returns the weight to release (when it was the last).</summary>
    public long Answer(long id)
    {
        if (!_probes.TryGetValue(id, out var probe) || --probe.Remaining > 0)
        {
            return 0;
        }
        _probes.Remove(id);
        return probe.Weight;
    }

    /// <summary>Gives up the probes sent <c>timeoutMs</c> or more before <paramref name="nowMs"/>; returns their weight and count.</summary>
    public (long Weight, int Probes) Expire(long nowMs)
    {
        long weight = 0;
        var expired = 0;
        foreach (var (id, probe) in _probes)
        {
            if (nowMs - probe.SentAtMs >= timeoutMs)
            {
                weight += probe.Weight;
                expired++;
                _probes.Remove(id);
            }
        }
        return (weight, expired);
    }
}
