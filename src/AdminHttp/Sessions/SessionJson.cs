using System.Globalization;
using System.Text.Json;
using Broker.Actors.Sessions;

namespace Broker.AdminHttp.Sessions;

/// <summary>Writes the Session object of the admin API field for field (snake_case, every field present).</summary>
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

    public static void Write(Utf8JsonWriter w, SessionInfo s)
    {
        w.WriteStartObject();
        w.WriteString("client_id", s.ClientId);
        w.WriteString("connection_name", s.ConnectionName);
        w.WriteString("state", s.Connected ? "connected" : "disconnected");
        w.WriteBoolean("connected", s.Connected);
        w.WriteString("protocol", Protocol(s.ProtocolLevel));
        w.WriteNumber("version", s.ProtocolLevel);
        w.WriteBoolean("clean_start", s.CleanStart);
        w.WriteNumber("expiry_interval", s.ExpiryInterval);
        WriteNullable(w, "connected_at", Timestamp(s.ConnectedAtMs));
        WriteNullable(w, "disconnected_at", Timestamp(s.DisconnectedAtMs));
        w.WriteNumber("receive_maximum", s.ReceiveMaximum);
        w.WriteNumber("max_packet_size", s.MaxPacketSize);
        w.WriteNumber("topic_alias_max", s.TopicAliasMax);
        w.WriteBoolean("request_response", s.RequestResponse);
        w.WriteBoolean("request_problem", s.RequestProblem);
        w.WriteBoolean("has_will", s.HasWill);
        w.WriteNumber("subscription_count", s.Subscriptions.Count);
        w.WriteNumber("inflight_count", s.InflightCount);
        w.WriteNumber("offline_queue_depth", s.OfflineQueueDepth);
        w.WriteStartArray("subscriptions");
        foreach (var sub in s.Subscriptions)
        {
            Broker.Actors.Routing.TopicFilter.TryParseShared(sub.Filter, out var group, out _);
            w.WriteStartObject();
            w.WriteString("filter", sub.Filter);
            w.WriteNumber("qos", sub.Qos);
            w.WriteBoolean("no_local", sub.NoLocal);
            w.WriteBoolean("retain_as_published", sub.RetainAsPublished);
            w.WriteNumber("retain_handling", sub.RetainHandling);
            w.WriteString("consumer_group", group);
            w.WriteNumber("subscription_id", sub.SubscriptionId);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("node", s.Node);
        w.WriteEndObject();
    }

    private static void WriteNullable(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null)
        {
            w.WriteNull(name);
        }
        else
        {
            w.WriteString(name, value);
        }
    }
}
