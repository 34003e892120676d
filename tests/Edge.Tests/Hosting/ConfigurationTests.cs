using Akka.Configuration;
using Akka.Configuration.Hocon;
using Broker.Actors.Configuration;
using Broker.Actors.Sessions;
using Broker.Edge.Hosting;

namespace Broker.Edge.Tests.Hosting;

/// <summary>Tests that change process environment variables run alone, never beside another test class.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EnvironmentCollection
{
    public const string Name = "process environment";
}

/// <summary>Sets environment variables for one test and restores every BROKER_* variable afterwards.</summary>
internal sealed class EnvironmentScope : IDisposable
{
    private readonly Dictionary<string, string?> _saved = [];

    public EnvironmentScope(params (string Name, string? Value)[] values)
    {
        // Start from a clean slate: no BROKER_* variable of the machine leaks into the test.
        foreach (var name in BrokerConfig.EnvironmentOverrides.Keys.Append("BROKER_CONFIG"))
        {
            Set(name, null);
        }
        Set("BROKER_CONFIG", Path.Combine(AppContext.BaseDirectory, "cluster.hocon"));
        foreach (var (name, value) in values)
        {
            Set(name, value);
        }
    }

    private void Set(string name, string? value)
    {
        _saved.TryAdd(name, Environment.GetEnvironmentVariable(name));
        Environment.SetEnvironmentVariable(name, value);
    }

    public void Dispose()
    {
        foreach (var (name, value) in _saved)
        {
            Environment.SetEnvironmentVariable(name, value);
        }
    }
}

[Collection(EnvironmentCollection.Name)]
public class ConfigurationTests
{
    private static string FileText => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "cluster.hocon"));

    [Fact]
    public void Merged_configuration_holds_the_cluster_settings_the_file_declares()
    {
        using var env = new EnvironmentScope();
        var config = BrokerConfig.Load();

        Assert.Equal("cluster", config.GetString("akka.actor.provider"));
        Assert.True(config.GetBoolean("akka.cluster.sharding.remember-entities"));
        Assert.Equal("eventsourced", config.GetString("akka.cluster.sharding.remember-entities-store"));
        Assert.Equal("ddata", config.GetString("akka.cluster.sharding.state-store-mode"));
        Assert.Equal("akka.persistence.journal.sql", config.GetString("akka.cluster.sharding.journal-plugin-id"));
        Assert.Equal("akka.persistence.snapshot-store.sql", config.GetString("akka.cluster.sharding.snapshot-plugin-id"));
        Assert.Equal("Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster", config.GetString("akka.cluster.downing-provider-class"));
        Assert.Equal("keep-majority", config.GetString("akka.cluster.split-brain-resolver.active-strategy"));
        Assert.Equal("akka.persistence.journal.sql", config.GetString("akka.persistence.journal.plugin"));
        Assert.Equal("akka.persistence.snapshot-store.sql", config.GetString("akka.persistence.snapshot-store.plugin"));
        Assert.False(config.GetBoolean("akka.coordinated-shutdown.exit-clr"));
        Assert.False(config.GetBoolean("akka.coordinated-shutdown.run-by-clr-shutdown-hook"));
    }

    [Fact]
    public void Merged_configuration_binds_the_broker_serializer()
    {
        using var env = new EnvironmentScope();
        var config = BrokerConfig.Load();
        Assert.Equal("Broker.Actors.Serialization.BrokerSerializer, Broker.Actors", config.GetString("akka.actor.serializers.broker"));
        var bindings = config.GetConfig("akka.actor.serialization-bindings").AsEnumerable()
            .ToDictionary(kv => kv.Key, kv => kv.Value.GetString(), StringComparer.Ordinal);
        Assert.Equal("broker", bindings["Broker.Actors.Messages.IBrokerSerializable, Broker.Actors"]);
        // The bound names resolve to real types.
        Assert.NotNull(Type.GetType("Broker.Actors.Serialization.BrokerSerializer, Broker.Actors"));
        Assert.NotNull(Type.GetType("Broker.Actors.Messages.IBrokerSerializable, Broker.Actors"));
    }

    [Fact]
    public void Broker_settings_are_the_files_values()
    {
        using var env = new EnvironmentScope();
        var s = BrokerSettings.From(BrokerConfig.Load());
        Assert.Equal("node-1", s.NodeName);
        Assert.Equal("127.0.0.1", s.Host);
        Assert.Equal(1883, s.MqttPort);
        Assert.Equal(5672, s.AmqpPort);
        Assert.Equal(8082, s.AdminPort);
        Assert.Empty(s.SeedNodes);
        Assert.Equal("./data", s.DataDir);
        Assert.Equal("sqlite", s.DbProvider);
        Assert.Equal(1048576, s.MaxPacketSize);
        Assert.Equal(100, s.MaxInflight);
        Assert.Equal(1000, s.MaxQueuedMessages);
        Assert.False(s.QueueQos0);
        Assert.Equal(86400u, s.PersistentSessionExpiry);
        Assert.Equal(1024, s.ReceiveMaximum);
        Assert.Equal(64, s.TopicAliasMaximum);
        Assert.Equal(4096, s.MaxTopicLength);
        Assert.Equal(128, s.MaxTopicLevels);
        Assert.Equal(1000, s.MaxSubscriptionsPerSession);
        Assert.Equal(10000, s.Qos0DropBacklog);
        Assert.Equal(4194304, s.Qos0DropBacklogBytes);
        Assert.Equal(new SessionLimits(100, 1000, false, MaxTopicLength: 4096, MaxTopicLevels: 128, MaxSubscriptions: 1000, Qos0DropBacklog: 10000,
            Qos0DropBacklogBytes: 4194304), s.Limits);
        Assert.Equal(1048576, s.InboundHighWaterMark);
        Assert.Equal(0.4, s.MemoryHighWatermark);
        Assert.Equal(0, s.MemoryHighWatermarkBytes);
        Assert.Equal(100000, s.RetainedMaxMessages);
        Assert.Equal(268435456, s.RetainedMaxBytes);
        Assert.Equal(10000, s.AdminMaxPageSize);
        Assert.Equal(TimeSpan.FromSeconds(10), s.ConnectTimeout);
        Assert.Equal(TimeSpan.FromSeconds(3), s.AdminQueryTimeout);
        Assert.Equal(500, s.SnapshotEvery);
        Assert.Equal(1000, s.AmqpConsumerWindow);
        Assert.Equal(16UL * 1024 * 1024, s.AmqpMaxMessageSize);
        Assert.Equal(2047, s.AmqpChannelMax);
        Assert.Equal(64L * 1024 * 1024, s.AmqpMaxPendingContentBytes);
        Assert.Equal(10000, s.AmqpMaxUnconfirmedPerChannel);
        Assert.Equal(10000, s.AmqpMaxTxPublishes);
        Assert.Equal(64L * 1024 * 1024, s.AmqpMaxTxBytes);
        Assert.Equal(16, s.AmqpMaxTableDepth);
    }

    [Fact]
    public void Amqp_limits_are_read_from_their_keys()
    {
        using var env = new EnvironmentScope();
        var config = ConfigurationFactory.ParseString("""
            broker.amqp {
              max-message-size = 1001
              channel-max = 1002
              max-pending-content-bytes = 1003
              max-unconfirmed-per-channel = 1004
              max-tx-publishes = 1005
              max-tx-bytes = 1006
              max-table-depth = 7
            }
            """).WithFallback(BrokerConfig.Load());
        var s = BrokerSettings.From(config);
        Assert.Equal(
            (1001UL, (ushort)1002, 1003L, 1004, 1005, 1006L, 7),
            (s.AmqpMaxMessageSize, s.AmqpChannelMax, s.AmqpMaxPendingContentBytes, s.AmqpMaxUnconfirmedPerChannel, s.AmqpMaxTxPublishes, s.AmqpMaxTxBytes, s.AmqpMaxTableDepth));
    }

    [Theory]
    [InlineData("channel-max = 0")]
    [InlineData("channel-max = 65536")]
    [InlineData("max-table-depth = 65")]
    [InlineData("max-message-size = 4294967296")]
    [InlineData("max-pending-content-bytes = 0")]
    public void An_amqp_limit_out_of_range_is_refused_at_start_up(string setting)
    {
        using var env = new EnvironmentScope();
        var config = ConfigurationFactory.ParseString("broker.amqp." + setting).WithFallback(BrokerConfig.Load());
        var error = Assert.Throws<ConfigurationException>(() => BrokerSettings.From(config));
        Assert.Contains(setting.Split(' ')[0], error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_remoting_frame_holds_the_largest_mqtt_packet_and_amqp_message_with_headroom()
    {
        using var env = new EnvironmentScope();
        var config = BrokerConfig.Load();
        var frame = config.GetByteSize("akka.remote.dot-netty.tcp.maximum-frame-size");
        Assert.Equal(16777216 + 131072 + 2 * 1048576, frame);

        var bigMqtt = BrokerConfig.Load("broker.mqtt.max-packet-size = 268435455\nbroker.amqp.max-message-size = 1024");
        Assert.Equal(268435455 + 2 * 1048576, bigMqtt.GetByteSize("akka.remote.dot-netty.tcp.maximum-frame-size"));
    }

    [Fact]
    public void An_amqp_message_size_beyond_512_mib_is_refused()
    {
        using var env = new EnvironmentScope();
        var ex = Assert.Throws<ConfigurationException>(() => BrokerConfig.Load("broker.amqp.max-message-size = 536870913"));
        Assert.Contains("max-message-size", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Derived_settings_follow_from_the_broker_section()
    {
        using var env = new EnvironmentScope();
        var config = BrokerConfig.Load();
        Assert.Equal("127.0.0.1", config.GetString("akka.remote.dot-netty.tcp.hostname"));
        Assert.Equal(2552, config.GetInt("akka.remote.dot-netty.tcp.port"));
        Assert.Empty(config.GetStringList("akka.cluster.seed-nodes"));
        Assert.Equal(["broker", "node:node-1"], config.GetStringList("akka.cluster.roles"));
        foreach (var plugin in new[] { "akka.persistence.journal.sql", "akka.persistence.snapshot-store.sql" })
        {
            Assert.Equal("SQLite.MS", config.GetString(plugin + ".provider-name"));
            Assert.Equal("sqlite", config.GetString(plugin + ".table-mapping"));
            Assert.True(config.GetBoolean(plugin + ".auto-initialize"));
            Assert.Contains(Path.GetFullPath(Path.Combine("./data", "broker.db")), config.GetString(plugin + ".connection-string"), StringComparison.Ordinal);
        }
        Assert.Equal("Akka.Persistence.Sql.Journal.SqlWriteJournal, Akka.Persistence.Sql", config.GetString("akka.persistence.journal.sql.class"));
        Assert.Equal("Akka.Persistence.Sql.Snapshot.SqlSnapshotStore, Akka.Persistence.Sql", config.GetString("akka.persistence.snapshot-store.sql.class"));
    }

    [Fact]
    public void Every_value_in_the_file_is_in_the_merged_configuration()
    {
        using var env = new EnvironmentScope();
        var file = ConfigurationFactory.ParseString(FileText);
        var merged = BrokerConfig.Load();
        var leaves = Leaves(file.Root, "").ToList();
        Assert.True(leaves.Count > 40, $"cluster.hocon has {leaves.Count} values");
        foreach (var (path, value) in leaves)
        {
            // The node adds its own "node:NAME" role to the file's roles.
            if (path == "akka.cluster.roles")
            {
                Assert.Subset(merged.GetStringList(path).ToHashSet(), file.GetStringList(path).ToHashSet());
                continue;
            }
            Assert.True(merged.HasPath(path), $"{path} is missing");
            var actual = merged.GetValue(path);
            Assert.True(Render(value) == Render(actual), $"{path}: file says {Render(value)}, merged has {Render(actual)}");
        }
    }

    private static IEnumerable<(string Path, HoconValue Value)> Leaves(HoconValue value, string prefix)
    {
        if (value.IsObject())
        {
            foreach (var (key, child) in value.GetObject().Items)
            {
                var segment = key.IndexOfAny(['.', ' ', ',', '"']) >= 0 ? "\"" + key + "\"" : key;
                foreach (var leaf in Leaves(child, prefix.Length == 0 ? segment : prefix + "." + segment))
                {
                    yield return leaf;
                }
            }
        }
        else
        {
            yield return (prefix, value);
        }
    }

    private static string Render(HoconValue v) =>
        v.IsArray() ? "[" + string.Join(",", v.GetArray().Select(Render)) + "]" : v.GetString() ?? "null";

    [Fact]
    public void Environment_variables_override_the_file()
    {
        using var env = new EnvironmentScope(
            ("BROKER_NODE_NAME", "edge \"7\""),
            ("BROKER_HOST", "10.1.2.3"),
            ("BROKER_MQTT_PORT", "11883"),
            ("BROKER_AMQP_PORT", "15672"),
            ("BROKER_ADMIN_PORT", "18082"),
            ("BROKER_REMOTE_PORT", "12552"),
            ("BROKER_SEED_NODES", "10.1.2.3:12552, 10.1.2.4:12552"),
            ("BROKER_DATA_DIR", "/var/lib/broker"),
            ("BROKER_DB_PROVIDER", "postgresql"),
            ("BROKER_DB_CONNECTION", "Host=db;Username=broker"),
            ("BROKER_SQLITE_SYNCHRONOUS", "full"));
        var config = BrokerConfig.Load();
        var s = BrokerSettings.From(config);

        Assert.Equal("edge \"7\"", s.NodeName);
        Assert.Equal("10.1.2.3", s.Host);
        Assert.Equal(11883, s.MqttPort);
        Assert.Equal(15672, s.AmqpPort);
        Assert.Equal(18082, s.AdminPort);
        Assert.Equal(["10.1.2.3:12552", "10.1.2.4:12552"], s.SeedNodes);
        Assert.Equal("/var/lib/broker", s.DataDir);
        Assert.Equal("postgresql", s.DbProvider);
        Assert.Equal("Host=db;Username=broker", s.DbConnection);
        Assert.Equal("FULL", s.SqliteSynchronous);

        Assert.Equal("10.1.2.3", config.GetString("akka.remote.dot-netty.tcp.hostname"));
        Assert.Equal(12552, config.GetInt("akka.remote.dot-netty.tcp.port"));
        Assert.Equal(["akka.tcp://broker@10.1.2.3:12552", "akka.tcp://broker@10.1.2.4:12552"], config.GetStringList("akka.cluster.seed-nodes"));
        Assert.Equal(["broker", "node:edge \"7\""], config.GetStringList("akka.cluster.roles"));
        Assert.Equal("PostgreSQL", config.GetString("akka.persistence.journal.sql.provider-name"));
        Assert.Equal("postgresql", config.GetString("akka.persistence.journal.sql.table-mapping"));
        // With the node's connection bound added (A_postgresql_node_bounds_its_connections_unless_the_connection_string_does).
        Assert.Equal("Host=db;Username=broker;Maximum Pool Size=20", config.GetString("akka.persistence.snapshot-store.sql.connection-string"));
        // Keys no variable names keep the file's value.
        Assert.Equal(1048576, s.MaxPacketSize);
        Assert.True(config.GetBoolean("akka.cluster.sharding.remember-entities"));
    }

    [Fact]
    public void Data_dir_variable_moves_the_sqlite_file()
    {
        var dir = Path.Combine(Path.GetTempPath(), "broker-config-test");
        using var env = new EnvironmentScope(("BROKER_DATA_DIR", dir));
        var connection = BrokerConfig.Load().GetString("akka.persistence.journal.sql.connection-string");
        Assert.Contains(Path.Combine(dir, "broker.db"), connection, StringComparison.Ordinal);
    }

    [Fact]
    public void Caller_overrides_win_over_environment_variables()
    {
        using var env = new EnvironmentScope(("BROKER_MQTT_PORT", "11883"));
        var s = BrokerSettings.From(BrokerConfig.Load("broker.mqtt-port = 0"));
        Assert.Equal(0, s.MqttPort);
    }

    [Fact]
    public void Variables_are_restored_after_a_scope()
    {
        var before = Environment.GetEnvironmentVariable("BROKER_MQTT_PORT");
        using (new EnvironmentScope(("BROKER_MQTT_PORT", "2")))
        {
            Assert.Equal("2", Environment.GetEnvironmentVariable("BROKER_MQTT_PORT"));
        }
        Assert.Equal(before, Environment.GetEnvironmentVariable("BROKER_MQTT_PORT"));
    }

    [Fact]
    public void Broker_config_variable_selects_another_file()
    {
        var path = Path.Combine(Path.GetTempPath(), "broker-config-" + Guid.NewGuid().ToString("N") + ".hocon");
        File.WriteAllText(path, FileText.Replace("mqtt-port = 1883", "mqtt-port = 2883", StringComparison.Ordinal));
        try
        {
            using var env = new EnvironmentScope(("BROKER_CONFIG", path));
            Assert.Equal(path, BrokerConfig.FindConfigFile());
            Assert.Equal(2883, BrokerSettings.From(BrokerConfig.Load()).MqttPort);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("broker.mqtt.max-topic-length = 0")]
    [InlineData("broker.mqtt.max-topic-length = 65536")]   // beyond what an MQTT string can hold
    [InlineData("broker.mqtt.max-topic-levels = 0")]
    [InlineData("broker.mqtt.max-subscriptions-per-session = -1")]
    public void Topic_and_subscription_bounds_outside_their_range_are_refused(string hocon)
    {
        using var env = new EnvironmentScope();
        Assert.Throws<ConfigurationException>(() => BrokerSettings.From(BrokerConfig.Load(hocon)));
    }

    [Theory]
    [InlineData("Host=db;Username=u;Password=p;Database=broker", "", 20)]
    [InlineData("Host=db;Username=u;Password=p;Database=broker", "broker.db-max-connections = 7", 7)]
    [InlineData("Host=db;Username=u;Password=p;Database=broker;Maximum Pool Size=50", "broker.db-max-connections = 7", 50)]
    [InlineData("Host=db;Username=u;Password=p;Database=broker;MaxPoolSize=40", "", 40)]
    public void A_postgresql_node_bounds_its_connections_unless_the_connection_string_does(string connection, string hocon, int pool)
    {
        using var env = new EnvironmentScope(("BROKER_DB_PROVIDER", "postgresql"), ("BROKER_DB_CONNECTION", connection));
        var config = BrokerConfig.Load(hocon);
        var journal = new Npgsql.NpgsqlConnectionStringBuilder(config.GetString("akka.persistence.journal.sql.connection-string"));
        var catalog = new Npgsql.NpgsqlConnectionStringBuilder(BrokerConfig.Persistence(BrokerSettings.From(config)).Connection);
        Assert.Equal((pool, pool), (journal.MaxPoolSize, catalog.MaxPoolSize));
        Assert.Equal("db", journal.Host);
    }

    [Theory]
    [InlineData("broker.db-max-connections = 1")]
    [InlineData("broker.db-max-connections = 1001")]
    public void A_connection_bound_outside_its_range_is_refused(string hocon)
    {
        using var env = new EnvironmentScope();
        Assert.Throws<ConfigurationException>(() => BrokerSettings.From(BrokerConfig.Load(hocon)));
    }

    [Fact]
    public void Unknown_db_provider_is_refused()
    {
        using var env = new EnvironmentScope(("BROKER_DB_PROVIDER", "oracle"));
        Assert.Throws<ConfigurationException>(() => BrokerConfig.Load());
    }

    [Fact]
    public void Every_key_of_the_broker_section_in_the_file_is_read()
    {
        using var env = new EnvironmentScope();
        var reader = new SettingsReader(BrokerConfig.Load());
        _ = BrokerSettings.From(reader);
        _ = Broker.Edge.Security.SecuritySettings.From(reader);
        var present = reader.KeysPresent();
        Assert.True(present.Count > 70, $"the broker section has {present.Count} keys");
        Assert.Empty(reader.KeysNotRead());
        // And what is read but missing from the file would run on a default nobody can see: every read key is in the file.
        Assert.Empty(reader.KeysRead.Except(present));
        // The node's own entry point reads the same keys and accepts the file.
        Assert.Equal("node-1", NodeSettings.Read(BrokerConfig.Load()).Broker.NodeName);
    }

    [Fact]
    public void Every_environment_variable_sets_a_key_the_file_holds()
    {
        using var env = new EnvironmentScope();
        var present = new SettingsReader(BrokerConfig.Load()).KeysPresent().Select(k => "broker." + k).ToHashSet();
        Assert.All(BrokerConfig.EnvironmentOverrides, kv => Assert.Contains(kv.Value, present));
    }

    [Theory]
    [InlineData("broker.mqtt.max-packet-sise = 10", "broker.mqtt.max-packet-sise is not a setting")]
    [InlineData("broker.limits { max-conections = 3, tracked-address = 4 }", "broker.limits.max-conections, broker.limits.tracked-address are not settings")]
    public void A_misspelt_key_stops_the_node_naming_it(string hocon, string message)
    {
        using var env = new EnvironmentScope();
        var ex = Assert.Throws<ConfigurationException>(() => NodeSettings.Read(BrokerConfig.Load(hocon)));
        Assert.StartsWith(message, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("BROKER_MQTT_PORT", "abc", "broker.mqtt-port (BROKER_MQTT_PORT) must be a whole number, not 'abc'")]
    [InlineData("BROKER_MQTT_PORT", "70000", "broker.mqtt-port (BROKER_MQTT_PORT) must be a port (0 to 65535), not 70000")]
    [InlineData("BROKER_WS_PORT", "-2", "broker.ws-port (BROKER_WS_PORT) must be 0 (off), -1 (a free port) or a port, not -2")]
    [InlineData("BROKER_MAX_CONNECTIONS", "-1", "broker.limits.max-connections (BROKER_MAX_CONNECTIONS) must be between 0 and")]
    [InlineData("BROKER_ALLOW_ANONYMOUS", "maybe", "broker.allow-anonymous (BROKER_ALLOW_ANONYMOUS) must be auto, true, on, yes, false, off or no, not 'maybe'")]
    [InlineData("BROKER_TLS_REQUIRE_CLIENT_CERT", "sure", "broker.tls.require-client-cert (BROKER_TLS_REQUIRE_CLIENT_CERT) must be true or false, not 'sure'")]
    [InlineData("BROKER_DB_PROVIDER", "mysql", "broker.db-provider (BROKER_DB_PROVIDER) must be sqlite, postgresql or postgres, not 'mysql'")]
    [InlineData("BROKER_MEMORY_HIGH_WATERMARK", "2", "broker.memory.high-watermark (BROKER_MEMORY_HIGH_WATERMARK) must be between")]
    [InlineData("BROKER_MEMORY_HIGH_WATERMARK", "lots", "broker.memory.high-watermark (BROKER_MEMORY_HIGH_WATERMARK) must be a number, not 'lots'")]
    [InlineData("BROKER_NODE_NAME", "", "broker.node-name (BROKER_NODE_NAME) must not be empty")]
    [InlineData("BROKER_AUTH_HTTP_URL", "ftp://x", "broker.auth-http.url (BROKER_AUTH_HTTP_URL) must be an http:// or https:// URL, not 'ftp://x'")]
    [InlineData("BROKER_TLS_CERT_FILE", "/c.pem", "broker.tls.key-file (BROKER_TLS_KEY_FILE) must be set with")]
    public void A_wrong_value_stops_the_node_naming_the_key_and_its_variable(string variable, string value, string message)
    {
        using var env = new EnvironmentScope((variable, value));
        var ex = Assert.ThrowsAny<ConfigurationException>(() => NodeSettings.Read(BrokerConfig.Load()));
        Assert.StartsWith(message, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("broker.tls.handshake-timeout = soon", "broker.tls.handshake-timeout must be a duration such as 10s or 500ms, not 'soon'")]
    [InlineData("broker.tls.handshake-timeout = 0s", "broker.tls.handshake-timeout must be at least 1ms, not 0ms")]
    [InlineData("broker.auth-http.cache-entries = 0", "broker.auth-http.cache-entries must be between 1 and")]
    [InlineData("broker.mqtt.queue-qos0 = sometimes", "broker.mqtt.queue-qos0 must be true or false, not 'sometimes'")]
    [InlineData("broker.fan-out-per-node = sometimes", "broker.fan-out-per-node must be true or false, not 'sometimes'")]
    [InlineData("broker.mqtt.max-inflight = 0", "broker.mqtt.max-inflight must be between 1 and 65535, not 0")]
    [InlineData("broker.amqp.frame-max = 100", "broker.amqp.frame-max must be between 4096 and")]
    [InlineData("broker.persistence.format-version = 9", "broker.persistence.format-version must be between 0 and")]
    [InlineData("broker.sqlite-synchronous = off", "broker.sqlite-synchronous (BROKER_SQLITE_SYNCHRONOUS) must be normal or full, not 'off'")]
    public void A_wrong_value_in_the_file_stops_the_node_naming_the_key(string hocon, string message)
    {
        using var env = new EnvironmentScope();
        var ex = Assert.ThrowsAny<ConfigurationException>(() => NodeSettings.Read(BrokerConfig.Load(hocon)));
        Assert.StartsWith(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Environment_values_stay_one_string_whatever_they_hold()
    {
        using var env = new EnvironmentScope(("BROKER_NODE_NAME", "a\"\nbroker.mqtt-port = 1}\u0001"), ("BROKER_AMQP_USERS", "u:p${x}"));
        var s = BrokerSettings.From(BrokerConfig.Load());
        Assert.Equal("a\"\nbroker.mqtt-port = 1}\u0001", s.NodeName);
        Assert.Equal("u:p${x}", s.AmqpUsers);
        Assert.Equal(1883, s.MqttPort);
    }
}
