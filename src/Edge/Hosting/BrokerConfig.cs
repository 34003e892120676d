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
    public static IReadOnlyDictionary<string, string> EnvironmentOverrides => BrokerEnvironment.Variables;

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

    /// <summary>
    /// The configuration in layers, each a parsed document, the first one holding a key winning: the caller's
    /// <paramref name="overrides"/> (HOCON), the BROKER_* environment variables, cluster.hocon; under them what Akka
    /// needs that derives from the typed, checked broker settings (remoting address, seed nodes, roles, persistence).
    /// A wrong broker value throws here, naming its key.
    /// </summary>
    public static Config Load(string? overrides = null)
    {
        var file = ConfigurationFactory.ParseString(File.ReadAllText(FindConfigFile()));
        var merged = BrokerEnvironment.Read().WithFallback(file);
        if (!string.IsNullOrWhiteSpace(overrides))
        {
            merged = ConfigurationFactory.ParseString(overrides).WithFallback(merged);
        }
        return ConfigurationFactory.ParseString(Derived(BrokerSettings.From(merged), merged)).WithFallback(merged);
    }

    /// <summary>
    /// The dispatcher (cluster.hocon) whose threads make the node's database calls when its driver blocks the calling
    /// thread for every statement (SQLite); null when the driver waits without one (PostgreSQL).
    /// </summary>
    public static string? DatabaseDispatcher(BrokerSettings s) => s.DbProvider == "sqlite" ? "akka.actor.database-dispatcher" : null;

    private static string Derived(BrokerSettings s, Config config)
    {
        var seeds = string.Join(", ", s.SeedNodes.Select(seed => Quote($"{RemotingTls.Protocol(config)}://{SystemName}@{seed}")));
        var (provider, connection, mapping) = Persistence(s);
        // The journal actor, the streams that run its queries and the snapshot store call the database on their own
        // threads: with SQLite those are the database dispatcher's, never the thread pool's.
        var database = DatabaseDispatcher(s) is { } dispatcher
            ? $$"""
                akka.persistence.journal.sql.plugin-dispatcher = {{Quote(dispatcher)}}
                akka.persistence.journal.sql.materializer-dispatcher = {{Quote(dispatcher)}}
                akka.persistence.snapshot-store.sql.plugin-dispatcher = {{Quote(dispatcher)}}
                """
            : "";
        return $$"""
            akka.remote.dot-netty.tcp.hostname = {{Quote(s.Host)}}
            akka.remote.dot-netty.tcp.port = {{s.RemotePort}}
            akka.remote.dot-netty.tcp.public-port = {{s.RemotePublicPort}}
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
            {{database}}
            """;
    }

    /// <summary>linq2db provider name, connection string and Akka.Persistence.Sql table mapping.</summary>
    public static (string Provider, string Connection, string Mapping) Persistence(BrokerSettings s) => s.DbProvider switch
    {
        "sqlite" => ("SQLite.MS", string.IsNullOrEmpty(s.DbConnection) ? SqliteConnectionString(s) : s.DbConnection, "sqlite"),
        "postgresql" or "postgres" => ("PostgreSQL", PostgresConnectionString(s), "postgresql"),
        _ => throw SettingsReader.Invalid("db-provider", $"must be sqlite or postgresql, not '{s.DbProvider}'"),
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

    private static string Quote(string value) => BrokerEnvironment.Quote(value);
}
