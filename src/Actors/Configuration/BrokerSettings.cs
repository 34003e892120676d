using Akka.Configuration;
using Broker.Actors.Amqp.Content;
using Broker.Actors.Sessions;

namespace Broker.Actors.Configuration;

/// <summary>Typed view of the <c>broker</c> section of cluster.hocon (after environment overrides).</summary>
public sealed record BrokerSettings
{
    public required string NodeName { get; init; }
    public required string Host { get; init; }
    public required int MqttPort { get; init; }
    public required int AmqpPort { get; init; }
    public required int AdminPort { get; init; }
    /// <summary>Akka remoting's port (broker.remote-port).</summary>
    public int RemotePort { get; init; } = 2552;

    /// <summary>The port other nodes reach remoting on; 0 = <see cref="RemotePort"/> (broker.remote-public-port).</summary>
    public int RemotePublicPort { get; init; }

    /// <summary>A message for several sessions on another node crosses the network once (broker.fan-out-per-node).</summary>
    public bool FanOutPerNode { get; init; } = true;

    /// <summary>PEM certificate, key and CA of TLS between the nodes; "" = clear text (broker.remote-tls.*, read by RemotingTls).</summary>
    public string RemoteTlsCertFile { get; init; } = "";

    public string RemoteTlsKeyFile { get; init; } = "";

    public string RemoteTlsCaFile { get; init; } = "";

    /// <summary>Thread-pool workers that may run at once before the pool adds more (broker.min-pool-threads; 0 = the .NET default).</summary>
    public int MinPoolThreads { get; init; }

    /// <summary>The journal format this node writes (broker.persistence.format-version, read by the serializer).</summary>
    public int JournalFormatVersion { get; init; } = Serialization.BrokerSerializer.JournalFormat;

    public required string DataDir { get; init; }
    public required string DbProvider { get; init; }
    public required string DbConnection { get; init; }
    /// <summary>PostgreSQL connections this node opens at most (unless its connection string names its own bound).</summary>
    public required int DbMaxConnections { get; init; }
    public required string SqliteSynchronous { get; init; }
    public required IReadOnlyList<string> SeedNodes { get; init; }
    public required int MaxPacketSize { get; init; }
    public required int MaxInflight { get; init; }
    public required int MaxQueuedMessages { get; init; }
    public required bool QueueQos0 { get; init; }
    public required uint PersistentSessionExpiry { get; init; }
    public required ushort ServerKeepAlive { get; init; }
    public required ushort ReceiveMaximum { get; init; }
    public required ushort TopicAliasMaximum { get; init; }

    /// <summary>Most UTF-8 bytes in a topic name or filter (mqtt.max-topic-length).</summary>
    public required int MaxTopicLength { get; init; }

    /// <summary>Most '/'-separated levels in a topic name or filter (mqtt.max-topic-levels).</summary>
    public required int MaxTopicLevels { get; init; }

    /// <summary>Most subscriptions one session holds (mqtt.max-subscriptions-per-session).</summary>
    public required int MaxSubscriptionsPerSession { get; init; }

    public required TimeSpan ConnectTimeout { get; init; }

    /// <summary>Idle time after which a disconnected persistent session leaves memory (rests); zero = never.</summary>
    public TimeSpan SessionRestAfter { get; init; } = TimeSpan.FromSeconds(10);
    public required TimeSpan AdminQueryTimeout { get; init; }
    public required int AdminMaxPageSize { get; init; }

    /// <summary>Server-Sent Events stats streams served at once (admin.max-stat-streams).</summary>
    public int AdminMaxStatStreams { get; init; } = 32;
    public required int SnapshotEvery { get; init; }
    public required string AmqpUsers { get; init; }
    public required string AmqpLoopbackUsers { get; init; }
    public required uint AmqpFrameMax { get; init; }
    public required TimeSpan AmqpHeartbeat { get; init; }
    public required ulong AmqpMaxMessageSize { get; init; }
    public required ushort AmqpChannelMax { get; init; }
    public required long AmqpMaxPendingContentBytes { get; init; }
    public required int AmqpMaxUnconfirmedPerChannel { get; init; }
    public required int AmqpMaxTxPublishes { get; init; }
    public required long AmqpMaxTxBytes { get; init; }
    public required int AmqpMaxTableDepth { get; init; }
    public required int AmqpConsumerWindow { get; init; }
    public required TimeSpan AmqpDrainWait { get; init; }
    public required long InboundHighWaterMark { get; init; }
    public required int Qos0DropBacklog { get; init; }
    public required long Qos0DropBacklogBytes { get; init; }
    public required long Qos0DropPendingBytes { get; init; }
    public required double MemoryHighWatermark { get; init; }
    public required long MemoryHighWatermarkBytes { get; init; }
    public required int RetainedMaxMessages { get; init; }
    public required long RetainedMaxBytes { get; init; }

    public Retained.RetainedLimits RetainedLimits => new(RetainedMaxMessages, RetainedMaxBytes);

    /// <summary>
    /// Largest message between nodes (Akka remoting's maximum-frame-size, derived at start-up): the largest MQTT
    /// packet or AMQP message (its body plus a frame of properties) and room for a reply chunk and envelopes.
    /// </summary>
    public int RemoteFrameSize => (int)(Math.Max(MaxPacketSize, (long)AmqpMaxMessageSize + AmqpFrameMax) + Messages.RemoteChunks.FrameHeadroom);

    public SessionLimits Limits => new(MaxInflight, MaxQueuedMessages, QueueQos0,
        MaxTopicLength: MaxTopicLength, MaxTopicLevels: MaxTopicLevels, MaxSubscriptions: MaxSubscriptionsPerSession,
        Qos0DropBacklog: Qos0DropBacklog, Qos0DropBacklogBytes: Qos0DropBacklogBytes);

    public static BrokerSettings From(Config config) => From(new SettingsReader(config));

    /// <summary>Reads and checks every key of the broker section that is not about security (SecuritySettings reads those).</summary>
    public static BrokerSettings From(SettingsReader r)
    {
        var seeds = r.String("seed-nodes", "")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var publicPort = r.Port("remote-public-port", 0);
        return new BrokerSettings
        {
            NodeName = NonEmpty(r, "node-name", "node-1"),
            Host = NonEmpty(r, "host", "127.0.0.1"),
            MqttPort = r.Port("mqtt-port", 1883),
            AmqpPort = r.Port("amqp-port", 5672),
            AdminPort = r.Port("admin-port", 8082),
            RemotePort = r.Port("remote-port", 2552),
            RemotePublicPort = publicPort,
            FanOutPerNode = r.Bool("fan-out-per-node", true),
            RemoteTlsCertFile = r.String("remote-tls.cert-file", ""),
            RemoteTlsKeyFile = r.String("remote-tls.key-file", ""),
            RemoteTlsCaFile = r.String("remote-tls.ca-file", ""),
            DataDir = NonEmpty(r, "data-dir", "./data"),
            DbProvider = r.Choice("db-provider", "sqlite", "sqlite", "postgresql", "postgres"),
            DbConnection = r.String("db-connection", ""),
            DbMaxConnections = r.Int("db-max-connections", 20, 2, 1000),
            SqliteSynchronous = r.Choice("sqlite-synchronous", "normal", "normal", "full").ToUpperInvariant(),
            MinPoolThreads = r.Int("min-pool-threads", 0, 0, 32767),
            SeedNodes = seeds,
            MaxPacketSize = r.Int("mqtt.max-packet-size", 1048576, 64, 268435455),
            MaxInflight = r.Int("mqtt.max-inflight", 100, 1, 65535),
            MaxQueuedMessages = r.Int("mqtt.max-queued-messages", 1000, 0, int.MaxValue),
            QueueQos0 = r.Bool("mqtt.queue-qos0", false),
            PersistentSessionExpiry = (uint)r.Long("mqtt.persistent-session-expiry", 86400, 0, uint.MaxValue),
            ServerKeepAlive = (ushort)r.Int("mqtt.server-keep-alive", 0, 0, ushort.MaxValue),
            ReceiveMaximum = (ushort)r.Int("mqtt.receive-maximum", 1024, 1, ushort.MaxValue),
            TopicAliasMaximum = (ushort)r.Int("mqtt.topic-alias-maximum", 64, 0, ushort.MaxValue),
            MaxTopicLength = r.Int("mqtt.max-topic-length", 4096, 1, 65535),
            MaxTopicLevels = r.Int("mqtt.max-topic-levels", 128, 1, int.MaxValue),
            MaxSubscriptionsPerSession = r.Int("mqtt.max-subscriptions-per-session", 1000, 1, int.MaxValue),
            ConnectTimeout = r.Duration("mqtt.connect-timeout", TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(1)),
            SessionRestAfter = r.Duration("mqtt.session-rest-after", TimeSpan.FromSeconds(10), TimeSpan.Zero),
            AdminQueryTimeout = r.Duration("admin.query-timeout", TimeSpan.FromSeconds(3), TimeSpan.FromMilliseconds(1)),
            AdminMaxPageSize = r.Int("admin.max-page-size", 10000, 1, 1000000),
            AdminMaxStatStreams = r.Int("admin.max-stat-streams", 32, 0, 10000),
            SnapshotEvery = r.Int("persistence.snapshot-every", 500, 1, int.MaxValue),
            JournalFormatVersion = r.Int("persistence.format-version", Serialization.BrokerSerializer.JournalFormat, 0, Serialization.BrokerSerializer.JournalFormat),
            AmqpUsers = r.String("amqp.users", "guest:guest"),
            AmqpLoopbackUsers = r.String("amqp.loopback-users", "guest"),
            AmqpFrameMax = (uint)r.Long("amqp.frame-max", 131072, 4096, uint.MaxValue),
            AmqpHeartbeat = r.Duration("amqp.heartbeat", TimeSpan.FromSeconds(60), TimeSpan.Zero),
            AmqpMaxMessageSize = (ulong)r.Long("amqp.max-message-size", 16777216, 0, 536870912),
            AmqpChannelMax = (ushort)r.Int("amqp.channel-max", 2047, 1, ushort.MaxValue),
            AmqpMaxPendingContentBytes = r.Long("amqp.max-pending-content-bytes", 67108864, 1, long.MaxValue),
            AmqpMaxUnconfirmedPerChannel = r.Int("amqp.max-unconfirmed-per-channel", 10000, 1, int.MaxValue),
            AmqpMaxTxPublishes = r.Int("amqp.max-tx-publishes", 10000, 1, int.MaxValue),
            AmqpMaxTxBytes = r.Long("amqp.max-tx-bytes", 67108864, 1, long.MaxValue),
            AmqpMaxTableDepth = r.Int("amqp.max-table-depth", 16, 1, FieldTableCodec.MaxDepth),
            AmqpConsumerWindow = r.Int("amqp.consumer-window", 1000, 1, int.MaxValue),
            AmqpDrainWait = r.Duration("amqp.drain-wait", TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(1)),
            InboundHighWaterMark = r.Long("inbound-high-water-mark", 1048576, 4096, long.MaxValue),
            Qos0DropBacklog = r.Int("mqtt.qos0-drop-backlog", 10000, 1, int.MaxValue),
            Qos0DropBacklogBytes = r.Long("mqtt.qos0-drop-backlog-bytes", 4194304, 1, long.MaxValue),
            Qos0DropPendingBytes = r.Long("mqtt.qos0-drop-pending-bytes", 8388608, 4096, long.MaxValue),
            MemoryHighWatermark = r.Double("memory.high-watermark", 0.4, double.Epsilon, 1),
            MemoryHighWatermarkBytes = r.Long("memory.high-watermark-bytes", 0, 0, long.MaxValue),
            RetainedMaxMessages = r.Int("retained.max-messages", 100000, 0, int.MaxValue),
            RetainedMaxBytes = r.Long("retained.max-bytes", 268435456, 0, long.MaxValue),
        };
    }

    private static string NonEmpty(SettingsReader r, string key, string fallback) =>
        r.String(key, fallback) is { Length: > 0 } value ? value : throw SettingsReader.Invalid(key, "must not be empty");
}
