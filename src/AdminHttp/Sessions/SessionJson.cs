using System.Globalization;
using System.Text.Json.Serialization;
using Broker.Actors.Sessions;

namespace Broker.AdminHttp.Sessions;

/// <summary>The Session object of the admin API, field for field (every field present; <c>node</c> added).</summary>
public sealed record SessionBody(
    string ClientId,
    string ConnectionName,
    string State,
    bool Connected,
    string Protocol,
    int Version,
    bool CleanStart,
    uint ExpiryInterval,
    string? ConnectedAt,
    string? DisconnectedAt,
    int ReceiveMaximum,
    uint MaxPacketSize,
    int TopicAliasMax,
    bool RequestResponse,
    bool RequestProblem,
    bool HasWill,
    int SubscriptionCount,
    int InflightCount,
    int OfflineQueueDepth,
    IReadOnlyList<SubscriptionBody> Subscriptions,
    string Node);

/// <summary>One subscription of a session.</summary>
public sealed record SubscriptionBody(string Filter, int Qos, bool NoLocal, bool RetainAsPublished, int RetainHandling, string ConsumerGroup, uint SubscriptionId);

/// <summary>A page of sessions; <c>unreachable_nodes</c> only when some member did not answer.</summary>
public sealed record SessionsPageBody(
    IReadOnlyList<SessionBody> Sessions,
    string NextPageToken,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? UnreachableNodes);

/// <summary>Turns the cluster's session records into the API's Session objects.</summary>
public static class SessionJson
{
    public static string Protocol(byte level) => level switch
    {
        3 => "mqtt3.1",
        4 => "mqtt3.1.1",
        5 => "mqtt5",
        0 => "amqp0.9.1",
        _ => "mqtt",
    };

    public static string? Timestamp(long? unixMs) => unixMs is { } ms
        ? DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)
        : null;

    public static SessionBody Body(SessionInfo s) => new(
        s.ClientId,
        s.ConnectionName,
        s.Connected ? "connected" : "disconnected",
        s.Connected,
        Protocol(s.ProtocolLevel),
        s.ProtocolLevel,
        s.CleanStart,
        s.ExpiryInterval,
        Timestamp(s.ConnectedAtMs),
        Timestamp(s.DisconnectedAtMs),
        s.ReceiveMaximum,
        s.MaxPacketSize,
        s.TopicAliasMax,
        s.RequestResponse,
        s.RequestProblem,
        s.HasWill,
        s.Subscriptions.Count,
        s.InflightCount,
        s.OfflineQueueDepth,
        [.. s.Subscriptions.Select(sub =>
        {
            Broker.Actors.Routing.TopicFilter.TryParseShared(sub.Filter, out var group, out _);
            return new SubscriptionBody(sub.Filter, sub.Qos, sub.NoLocal, sub.RetainAsPublished, sub.RetainHandling, group ?? "", sub.SubscriptionId);
        })],
        s.Node);
}
