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
    public required long InboundHighWaterMark { get; init; }
    public required int Qos0DropBacklog { get; init; }
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
        Qos0DropBacklog: Qos0DropBacklog);

    public static BrokerSettings From(Config config)
    {
        var b = config.GetConfig("broker") ?? throw new ConfigurationException("cluster.hocon has no 'broker' section");
        var seeds = b.GetString("seed-nodes", "")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new BrokerSettings
        {
            NodeName = b.GetString("node-name", "node-1"),
            Host = b.GetString("host", "127.0.0.1"),
            MqttPort = b.GetInt("mqtt-port", 1883),
            AmqpPort = b.GetInt("amqp-port", 5672),
            AdminPort = b.GetInt("admin-port", 8082),
            DataDir = b.GetString("data-dir", "./data"),
            DbProvider = b.GetString("db-provider", "sqlite").ToLowerInvariant(),
            DbConnection = b.GetString("db-connection", ""),
            DbMaxConnections = (int)InRange(b, "db-max-connections", 20, 2, 1000),
            SqliteSynchronous = b.GetString("sqlite-synchronous", "normal").ToUpperInvariant() switch
            {
                "NORMAL" => "NORMAL",
                "FULL" => "FULL",
                var other => throw new ConfigurationException($"broker.sqlite-synchronous must be normal or full, not '{other}'"),
            },
            SeedNodes = seeds,
            MaxPacketSize = b.GetInt("mqtt.max-packet-size", 1048576),
            MaxInflight = b.GetInt("mqtt.max-inflight", 100),
            MaxQueuedMessages = b.GetInt("mqtt.max-queued-messages", 1000),
            QueueQos0 = b.GetBoolean("mqtt.queue-qos0", false),
            PersistentSessionExpiry = (uint)b.GetLong("mqtt.persistent-session-expiry", 86400),
            ServerKeepAlive = (ushort)b.GetInt("mqtt.server-keep-alive", 0),
            ReceiveMaximum = (ushort)b.GetInt("mqtt.receive-maximum", 1024),
            TopicAliasMaximum = (ushort)b.GetInt("mqtt.topic-alias-maximum", 64),
            MaxTopicLength = (int)InRange(b, "mqtt.max-topic-length", 4096, 1, 65535),
            MaxTopicLevels = (int)InRange(b, "mqtt.max-topic-levels", 128, 1, int.MaxValue),
            MaxSubscriptionsPerSession = (int)InRange(b, "mqtt.max-subscriptions-per-session", 1000, 1, int.MaxValue),
            ConnectTimeout = b.GetTimeSpan("mqtt.connect-timeout", TimeSpan.FromSeconds(10)),
            SessionRestAfter = b.GetTimeSpan("mqtt.session-rest-after", TimeSpan.FromSeconds(10)),
            AdminQueryTimeout = b.GetTimeSpan("admin.query-timeout", TimeSpan.FromSeconds(3)),
            AdminMaxPageSize = (int)InRange(b, "admin.max-page-size", 10000, 1, 1000000),
            SnapshotEvery = b.GetInt("persistence.snapshot-every", 500),
            AmqpUsers = b.GetString("amqp.users", "guest:guest"),
            AmqpLoopbackUsers = b.GetString("amqp.loopback-users", "guest"),
            AmqpFrameMax = (uint)Math.Max(4096, b.GetLong("amqp.frame-max", 131072)),
            AmqpHeartbeat = b.GetTimeSpan("amqp.heartbeat", TimeSpan.FromSeconds(60)),
            AmqpMaxMessageSize = InRange(b, "amqp.max-message-size", 16777216, 0, 536870912),
            AmqpChannelMax = (ushort)InRange(b, "amqp.channel-max", 2047, 1, ushort.MaxValue),
            AmqpMaxPendingContentBytes = (long)InRange(b, "amqp.max-pending-content-bytes", 67108864, 1, long.MaxValue),
            AmqpMaxUnconfirmedPerChannel = (int)InRange(b, "amqp.max-unconfirmed-per-channel", 10000, 1, int.MaxValue),
            AmqpMaxTxPublishes = (int)InRange(b, "amqp.max-tx-publishes", 10000, 1, int.MaxValue),
            AmqpMaxTxBytes = (long)InRange(b, "amqp.max-tx-bytes", 67108864, 1, long.MaxValue),
            AmqpMaxTableDepth = (int)InRange(b, "amqp.max-table-depth", 16, 1, FieldTableCodec.MaxDepth),
            AmqpConsumerWindow = b.GetInt("amqp.consumer-window", 1000),
            InboundHighWaterMark = (long)InRange(b, "inbound-high-water-mark", 1048576, 4096, long.MaxValue),
            Qos0DropBacklog = (int)InRange(b, "mqtt.qos0-drop-backlog", 1000, 1, int.MaxValue),
            MemoryHighWatermark = b.GetDouble("memory.high-watermark", 0.4) is > 0 and <= 1 and var share
                ? share
                : throw new ConfigurationException("broker.memory.high-watermark must be above 0 and at most 1"),
            MemoryHighWatermarkBytes = (long)InRange(b, "memory.high-watermark-bytes", 0, 0, long.MaxValue),
            RetainedMaxMessages = b.GetInt("retained.max-messages", 100000),
            RetainedMaxBytes = b.GetLong("retained.max-bytes", 268435456),
        };
    }

    private static ulong InRange(Config b, string key, long fallback, long min, long max)
    {
        var value = b.GetLong(key, fallback);
        if (value < min || value > max)
        {
            throw new ConfigurationException($"broker.{key} must be between {min} and {max}, not {value}");
        }
        return (ulong)value;
    }
}
