using Akka.Actor;
using Akka.Cluster;
using Broker.Actors.Sessions;
using Broker.AdminHttp.Sessions;

namespace Broker.AdminHttp.Stats;

/// <summary>The counts of the members that answered, and the members that did not.</summary>
public sealed record ClusterStats(IReadOnlyList<NodeStats> Nodes, IReadOnlyList<string> Unreachable);

/// <summary>
/// Cluster-wide counts and membership for the admin API: asks every Up member's session index for its
/// <see cref="NodeStats"/> (a per-node timeout; a member that does not answer is named, never fails the answer) and
/// turns them into the API's bodies.
/// </summary>
public sealed class StatsService(ActorSystem system, TimeSpan timeout, RestingSessions? resting)
{
    private readonly Cluster _cluster = Cluster.Get(system);

    public bool IsAvailable => _cluster.SelfMember.Status == MemberStatus.Up;

    public string NodeId => SessionQueryService.NodeName(_cluster.SelfMember);

    private IEnumerable<Member> Members => _cluster.State.Members.Where(m => m.Status is MemberStatus.Up or MemberStatus.Leaving);

    /// <summary>Every member's counts, or only <paramref name="node"/>'s; null when no member has that name.</summary>
    public async Task<ClusterStats?> GatherAsync(string? node = null)
    {
        var targets = Members.Where(m => node is null || SessionQueryService.NodeName(m) == node).ToList();
        if (targets.Count == 0)
        {
            return null;
        }
        var asks = targets.Select(m => system.ActorSelection(new RootActorPath(m.Address) / "user" / SessionQueryService.IndexActorName)
            .Ask<NodeStats>(GetNodeStats.Instance, timeout)).ToArray();
        try
        {
            await Task.WhenAll(asks).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Inspected one by one below: a member that did not answer is named, not fatal.
        }
        var answered = new List<NodeStats>();
        var unreachable = new List<string>();
        for (var i = 0; i < asks.Length; i++)
        {
            if (asks[i].IsCompletedSuccessfully)
            {
                answered.Add(asks[i].Result);
            }
            else
            {
                unreachable.Add(SessionQueryService.NodeName(targets[i]));
            }
        }
        return new ClusterStats([.. answered.OrderBy(n => n.Node, StringComparer.Ordinal)], unreachable);
    }

    /// <summary>The stats body: summed over <paramref name="stats"/>, with each member's own when <paramref name="withNodes"/>.</summary>
    public static StatsBody Body(ClusterStats stats, bool withNodes)
    {
        var sum = new Dictionary<string, long>(StringComparer.Ordinal);
        long uptimeMs = 0;
        foreach (var n in stats.Nodes)
        {
            uptimeMs = Math.Max(uptimeMs, n.UptimeMs);
            foreach (var (name, value) in n.Counters)
            {
                sum[name] = sum.GetValueOrDefault(name) + value;
            }
        }
        var body = Body(sum, uptimeMs);
        return body with
        {
            Nodes = withNodes ? stats.Nodes.ToDictionary(n => n.Node, n => Body(n.Counters, n.UptimeMs), StringComparer.Ordinal) : null,
            UnreachableNodes = stats.Unreachable.Count > 0 ? stats.Unreachable : null,
        };
    }

    private static StatsBody Body(IReadOnlyDictionary<string, long> c, long uptimeMs)
    {
        long Get(string name) => c.GetValueOrDefault(name);
        ProtocolStatsBody Protocol(string p)
        {
            var received = new QosBody(Get($"{p}.messages.received.qos0"), Get($"{p}.messages.received.qos1"), Get($"{p}.messages.received.qos2"));
            var sent = new QosBody(Get($"{p}.messages.sent.qos0"), Get($"{p}.messages.sent.qos1"), Get($"{p}.messages.sent.qos2"));
            return new ProtocolStatsBody(
                new ConnectionsBody(Get($"{p}.connections.current"), Get($"{p}.connections.total"), Get($"{p}.connections.disconnections")),
                new ProtocolMessagesBody(received.Qos0 + received.Qos1 + received.Qos2, sent.Qos0 + sent.Qos1 + sent.Qos2, received, sent),
                new TrafficBody(Get($"{p}.bytes.received"), Get($"{p}.bytes.sent")),
                new ProtocolErrorsBody(Get($"{p}.errors.protocol")),
                Broker.Actors.Messages.ProtocolCounters.CloseReasonNames.ToDictionary(r => r, r => Get($"{p}.closed.{r}"), StringComparer.Ordinal));
        }
        var mqtt = Protocol("mqtt");
        var amqp = Protocol("amqp");
        return new StatsBody(
            uptimeMs / 1000,
            new ConnectionsBody(mqtt.Connections.Current + amqp.Connections.Current, mqtt.Connections.Total + amqp.Connections.Total,
                mqtt.Connections.Disconnections + amqp.Connections.Disconnections),
            new TrafficBody(mqtt.Messages.Received + amqp.Messages.Received, mqtt.Messages.Sent + amqp.Messages.Sent),
            new TrafficBody(mqtt.Bytes.Received + amqp.Bytes.Received, mqtt.Bytes.Sent + amqp.Bytes.Sent),
            new ErrorsBody(mqtt.Errors.Protocol + amqp.Errors.Protocol, Get("errors.auth"), Get("errors.authz"), Get("errors.auth_backend"),
                Get("errors.tls_handshake"), Get("errors.connections_refused")),
            new DroppedBody(Get("dropped.qos0_backlog"), Get("dropped.qos0_slow_client"), Get("dropped.publishes_given_up"), Get("dropped.retained_refused")),
            new SessionCountsBody(Get("sessions.connected"), Get("sessions.in_memory")),
            new Dictionary<string, ProtocolStatsBody>(StringComparer.Ordinal) { ["mqtt"] = mqtt, ["amqp"] = amqp });
    }

    /// <summary>The members as the cluster sees them from this node, with the uptimes of those that answered.</summary>
    public IReadOnlyList<ClusterNodeBody> Nodes(ClusterStats stats)
    {
        var state = _cluster.State;
        var uptimes = stats.Nodes.ToDictionary(n => n.Node, n => n.UptimeMs / 1000, StringComparer.Ordinal);
        return [.. state.Members.OrderBy(SessionQueryService.NodeName, StringComparer.Ordinal).Select(m =>
        {
            var name = SessionQueryService.NodeName(m);
            var reachable = !state.Unreachable.Contains(m);
            return new ClusterNodeBody(name, m.Address.ToString(), m.Status.ToString().ToLowerInvariant(),
                m.Status == MemberStatus.Up && reachable, state.Leader == m.Address, uptimes.TryGetValue(name, out var up) ? up : null);
        })];
    }

    public bool IsLeader => _cluster.State.Leader == _cluster.SelfAddress;

    /// <summary>"cluster" with seed nodes configured or more than one member, else "standalone".</summary>
    public string ClusterMode => _cluster.Settings.SeedNodes.Count > 0 || _cluster.State.Members.Count > 1 ? "cluster" : "standalone";

    /// <summary>Sessions connected and all sessions (those in the members' memory and those at rest); null when the catalog could not be read.</summary>
    public async Task<SessionTotalsBody> SessionTotalsAsync(ClusterStats stats)
    {
        long connected = 0, inMemory = 0;
        foreach (var n in stats.Nodes)
        {
            connected += n.Counters.GetValueOrDefault("sessions.connected");
            inMemory += n.Counters.GetValueOrDefault("sessions.in_memory");
        }
        var atRest = resting is null ? 0 : await resting.CountAsync().WaitAsync(timeout).ConfigureAwait(false);
        return new SessionTotalsBody(connected, inMemory + atRest);
    }
}
