using Akka.Configuration;

namespace Broker.Actors.Configuration;

/// <summary>
/// The BROKER_* environment variables and the cluster.hocon keys they set. Applied as a configuration layer over the
/// file (BrokerConfig.Load); error messages about a key name its variable too.
/// </summary>
public static class BrokerEnvironment
{
    /// <summary>Environment variable → the cluster.hocon key it overrides.</summary>
    public static readonly IReadOnlyDictionary<string, string> Variables = new Dictionary<string, string>
    {
        ["BROKER_NODE_NAME"] = "broker.node-name",
        ["BROKER_HOST"] = "broker.host",
        ["BROKER_MQTT_PORT"] = "broker.mqtt-port",
        ["BROKER_AMQP_PORT"] = "broker.amqp-port",
        ["BROKER_ADMIN_PORT"] = "broker.admin-port",
        ["BROKER_REMOTE_PORT"] = "broker.remote-port",
        ["BROKER_REMOTE_PUBLIC_PORT"] = "broker.remote-public-port",
        ["BROKER_REMOTE_TLS_CERT_FILE"] = "broker.remote-tls.cert-file",
        ["BROKER_REMOTE_TLS_KEY_FILE"] = "broker.remote-tls.key-file",
        ["BROKER_REMOTE_TLS_CA_FILE"] = "broker.remote-tls.ca-file",
        ["BROKER_SEED_NODES"] = "broker.seed-nodes",
        ["BROKER_DATA_DIR"] = "broker.data-dir",
        ["BROKER_DB_PROVIDER"] = "broker.db-provider",
        ["BROKER_DB_CONNECTION"] = "broker.db-connection",
        ["BROKER_SQLITE_SYNCHRONOUS"] = "broker.sqlite-synchronous",
        ["BROKER_AMQP_USERS"] = "broker.amqp.users",
        ["BROKER_MEMORY_HIGH_WATERMARK"] = "broker.memory.high-watermark",
        ["BROKER_MEMORY_HIGH_WATERMARK_BYTES"] = "broker.memory.high-watermark-bytes",
        ["BROKER_MQTT_PASSWORD_FILE"] = "broker.mqtt.password-file",
        ["BROKER_MQTT_ACL_FILE"] = "broker.mqtt.acl-file",
        ["BROKER_ALLOW_ANONYMOUS"] = "broker.allow-anonymous",
        ["BROKER_AUTH_HTTP_URL"] = "broker.auth-http.url",
        ["BROKER_ADMIN_TOKENS_FILE"] = "broker.admin.tokens-file",
        ["BROKER_ADMIN_OPEN"] = "broker.admin.open",
        ["BROKER_TLS_CERT_FILE"] = "broker.tls.cert-file",
        ["BROKER_TLS_KEY_FILE"] = "broker.tls.key-file",
        ["BROKER_TLS_CA_FILE"] = "broker.tls.ca-file",
        ["BROKER_TLS_REQUIRE_CLIENT_CERT"] = "broker.tls.require-client-cert",
        ["BROKER_MQTT_TLS_PORT"] = "broker.mqtt-tls-port",
        ["BROKER_AMQP_TLS_PORT"] = "broker.amqp-tls-port",
        ["BROKER_ADMIN_TLS_PORT"] = "broker.admin-tls-port",
        ["BROKER_MAX_CONNECTIONS"] = "broker.limits.max-connections",
        ["BROKER_AMQP_PERMISSIONS_FILE"] = "broker.amqp.permissions-file",
        ["BROKER_WS_PORT"] = "broker.ws-port",
        ["BROKER_WSS_PORT"] = "broker.wss-port",
    };

    private static readonly Dictionary<string, string> VariableOfKey = Variables.ToDictionary(kv => kv.Value, kv => kv.Key, StringComparer.Ordinal);

    /// <summary>The variable that sets <paramref name="key"/> (a full key such as broker.mqtt-port), if one does.</summary>
    public static string? VariableOf(string key) => VariableOfKey.GetValueOrDefault(key);

    /// <summary>The variables set in this process as a configuration layer (each value a string, as the environment holds it).</summary>
    public static Config Read()
    {
        var config = Config.Empty;
        foreach (var (variable, key) in Variables)
        {
            if (Environment.GetEnvironmentVariable(variable) is { } value)
            {
                config = ConfigurationFactory.ParseString($"{key} = {Quote(value)}").WithFallback(config);
            }
        }
        return config;
    }

    /// <summary>A HOCON string literal of <paramref name="value"/>: whatever it holds stays one string value.</summary>
    public static string Quote(string value)
    {
        var escaped = new System.Text.StringBuilder(value.Length + 2).Append('"');
        foreach (var c in value)
        {
            escaped.Append(c switch
            {
                '\\' => "\\\\",
                '"' => "\\\"",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ when char.IsControl(c) => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }
        return escaped.Append('"').ToString();
    }
}
