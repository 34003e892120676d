using Akka.Configuration;
using Broker.Actors.Configuration;
using LinqToDB;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Broker.Edge.Hosting;

/// <summary>
/// Loads cluster.hocon, applies the BROKER_* environment variables on top, and derives the Akka settings
/// that follow from the broker settings: remoting address and frame size, seed nodes, roles and the persistence connection.
/// </summary>
public static class BrokerConfig
{
    public const string SystemName = "broker";

    /// <summary>Environment variable → the cluster.hocon key it overrides.</summary>
    public static readonly IReadOnlyDictionary<string, string> EnvironmentOverrides = new Dictionary<string, string>
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

    /// <summary>cluster.hocon from BROKER_CONFIG, else the working directory, else next to the executable.</summary>
    public static string FindConfigFile()
    {
        var explicitPath = Environment.GetEnvironmentVariable("BROKER_CONFIG");
        if (!string.IsNullOrEmpty(explicitPath))
        {
            return explicitPath;
        }
        var local = Path.Combine(Directory.GetCurrentDirectory(), "cluster.hocon");
        return File.Exists(local) ? local : Path.Combine(AppContext.BaseDirectory, "cluster.hocon");
    }

    /// <summary>The merged configuration; <paramref name="overrides"/> (HOCON) wins over everything.</summary>
    public static Config Load(string? overrides = null)
    {
        // One document, later text winning: the file, the environment, the caller's overrides, then what derives from them.
        var text = File.ReadAllText(FindConfigFile()) + "\n" + FromEnvironment() + "\n" + (overrides ?? "");
        var config = ConfigurationFactory.ParseString(text);
        var derived = Derived(BrokerSettings.From(config), config);
        return ConfigurationFactory.ParseString(text + "\n" + derived);
    }

    private static string FromEnvironment()
    {
        var lines = new List<string>();
        foreach (var (variable, key) in EnvironmentOverrides)
        {
            var value = Environment.GetEnvironmentVariable(variable);
            if (value is not null)
            {
                lines.Add($"{key} = {Quote(value)}");
            }
        }
        return string.Join("\n", lines);
    }

    private static string Derived(BrokerSettings s, Config config)
    {
        var remotePort = config.GetInt("broker.remote-port", 2552);
        var publicPort = config.GetInt("broker.remote-public-port", 0);
        if (publicPort is < 0 or > 65535)
        {
            throw new ConfigurationException($"broker.remote-public-port must be 0 (the remote port) or a port, not {publicPort}");
        }
        var seeds = string.Join(", ", s.SeedNodes.Select(seed => Quote($"{RemotingTls.Protocol(config)}://{SystemName}@{seed}")));
        var (provider, connection, mapping) = Persistence(s);
        return $$"""
            akka.remote.dot-netty.tcp.hostname = {{Quote(s.Host)}}
            akka.remote.dot-netty.tcp.port = {{remotePort}}
            akka.remote.dot-netty.tcp.public-port = {{publicPort}}
            akka.remote.dot-netty.tcp.maximum-frame-size = {{s.RemoteFrameSize}}b
            {{RemotingTls.Hocon(config)}}
            akka.cluster.seed-nodes = [{{seeds}}]
            akka.cluster.roles = ["broker", {{Quote("node:" + s.NodeName)}}]
            akka.persistence.journal.sql {
              # SQLite has one writer at a time: parallel writers would only queue on its lock.
              parallelism = {{(provider == "SQLite.MS" ? 1 : 3)}}
              provider-name = {{Quote(provider)}}
              connection-string = {{Quote(connection)}}
              table-mapping = {{mapping}}
            }
            akka.persistence.snapshot-store.sql {
              provider-name = {{Quote(provider)}}
              connection-string = {{Quote(connection)}}
              table-mapping = {{mapping}}
            }
            """;
    }

    /// <summary>linq2db provider name, connection string and Akka.Persistence.Sql table mapping.</summary>
    public static (string Provider, string Connection, string Mapping) Persistence(BrokerSettings s) => s.DbProvider switch
    {
        "sqlite" => ("SQLite.MS", string.IsNullOrEmpty(s.DbConnection) ? SqliteConnectionString(s) : s.DbConnection, "sqlite"),
        "postgresql" or "postgres" => ("PostgreSQL", PostgresConnectionString(s), "postgresql"),
        _ => throw new ConfigurationException($"broker.db-provider must be sqlite or postgresql, not '{s.DbProvider}'"),
    };

    /// <summary>
    /// The configured PostgreSQL connection string with this node's connection bound (broker.db-max-connections) unless it
    /// names its own: the journal, snapshot store and session catalog share the one pool, so a burst of session
    /// recoveries waits for a connection instead of exhausting the server's max_connections for every node.
    /// </summary>
    private static string PostgresConnectionString(BrokerSettings s)
    {
        // Npgsql's own builder says it "contains" every keyword it knows; the plain one holds only what was written.
        var written = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = s.DbConnection };
        var namesBound = written.Keys.Cast<string>().Any(k => k.Replace(" ", "", StringComparison.Ordinal)
            .Equals("MaximumPoolSize", StringComparison.OrdinalIgnoreCase) || k.Equals("MaxPoolSize", StringComparison.OrdinalIgnoreCase));
        var builder = new NpgsqlConnectionStringBuilder(s.DbConnection);
        if (!namesBound)
        {
            builder.MaxPoolSize = s.DbMaxConnections;
        }
        return builder.ConnectionString;
    }

    private static string SqliteConnectionString(BrokerSettings s) => new SqliteConnectionStringBuilder
    {
        DataSource = Path.GetFullPath(Path.Combine(s.DataDir, "broker.db")),
        DefaultTimeout = 30,
        Pooling = true,
    }.ToString();

    /// <summary>The journal's connection setup: for SQLite with the configured durability pragma.</summary>
    public static Akka.Actor.Setup.Setup DataOptions(BrokerSettings s)
    {
        var (provider, connection, _) = Persistence(s);
        return provider == "SQLite.MS"
            ? SqliteTuning.Setup(connection, s.SqliteSynchronous)
            : new Akka.Persistence.Sql.Config.DataOptionsSetup(new LinqToDB.DataOptions().UseConnectionString(provider, connection));
    }

    /// <summary>Creates the data folder and switches the SQLite file to write-ahead logging (kept in the file).</summary>
    public static void PrepareStorage(BrokerSettings s)
    {
        if (s.DbProvider != "sqlite")
        {
            return;
        }
        var (_, connection, _) = Persistence(s);
        var builder = new SqliteConnectionStringBuilder(connection);
        var folder = Path.GetDirectoryName(Path.GetFullPath(builder.DataSource));
        if (!string.IsNullOrEmpty(folder))
        {
            Directory.CreateDirectory(folder);
        }
        using var db = new SqliteConnection(connection);
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode=WAL;";
        cmd.ExecuteNonQuery();
    }

    private static string Quote(string value) => "\"" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
}
