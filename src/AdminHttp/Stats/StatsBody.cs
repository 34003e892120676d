using System.Text.Json.Serialization;

namespace Broker.AdminHttp.Stats;

public sealed record ConnectionsBody(long Current, long Total, long Disconnections);

public sealed record TrafficBody(long Received, long Sent);

public sealed record QosBody(long Qos0, long Qos1, long Qos2);

public sealed record ProtocolMessagesBody(long Received, long Sent, QosBody ReceivedByQos, QosBody SentByQos);

/// <remarks><c>closed</c>: connections ended, by why (client, protocol_error, keepalive_timeout, taken_over, kicked, refused, rate_limit, server_shutdown, other).</remarks>
public sealed record ProtocolStatsBody(ConnectionsBody Connections, ProtocolMessagesBody Messages, TrafficBody Bytes, ProtocolErrorsBody Errors,
    IReadOnlyDictionary<string, long> Closed);

public sealed record ProtocolErrorsBody(long Protocol);

/// <summary>Denials and failures: <c>auth</c> logins refused, <c>authz</c> what the ACL or permissions refused.</summary>
public sealed record ErrorsBody(long Protocol, long Auth, long Authz, long AuthBackend, long TlsHandshake, long ConnectionsRefused);

/// <summary>What could not be delivered, by reason (each also logged where it happened).</summary>
public sealed record DroppedBody(long Qos0Backlog, long Qos0SlowClient, long PublishesGivenUp, long RetainedRefused);

/// <summary>Sessions in the members' memory; <c>connected</c> is every connected client.</summary>
public sealed record SessionCountsBody(long Connected, long InMemory);

/// <summary>
/// <c>GET /api/v1/stats</c>: cumulative counts since each node started, summed over the members that answered (or one
/// member's with <c>?node=</c>); <c>nodes</c> holds each member's own, <c>unreachable_nodes</c> those that did not answer.
/// </summary>
public sealed record StatsBody(
    long UptimeSeconds,
    ConnectionsBody Connections,
    TrafficBody Messages,
    TrafficBody Bytes,
    ErrorsBody Errors,
    DroppedBody Dropped,
    SessionCountsBody Sessions,
    IReadOnlyDictionary<string, ProtocolStatsBody> ByProtocol,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, StatsBody>? Nodes = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? UnreachableNodes = null);

/// <summary>One member as <c>GET /api/v1/cluster</c> lists it.</summary>
public sealed record ClusterNodeBody(string Id, string Address, string Status, bool Healthy, bool Leader, long? UptimeSeconds);

/// <summary><c>GET /api/v1/cluster</c>.</summary>
public sealed record ClusterBody(string NodeId, string ClusterMode, bool IsLeader, IReadOnlyList<ClusterNodeBody> Nodes,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? UnreachableNodes = null);

public sealed record SessionTotalsBody(long Connected, long Total);

public sealed record OverviewClusterBody(IReadOnlyList<ClusterNodeBody> Nodes);

/// <summary><c>GET /api/v1/overview</c>: what a dashboard paints first.</summary>
public sealed record OverviewBody(string NodeId, string ClusterMode, bool IsLeader, long UptimeSeconds, SessionTotalsBody Sessions, StatsBody Stats,
    OverviewClusterBody Cluster,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? UnreachableNodes = null);

/// <summary><c>GET /cluster/status</c>.</summary>
public sealed record ClusterStatusBody(string NodeId, bool IsLeader, string ClusterMode, int NodeCount, SessionTotalsBody Sessions);
