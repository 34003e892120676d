using Broker.Actors.Configuration;

namespace Broker.Actors.Amqp.Queues;

/// <summary>What a queue entity takes from configuration (not from its journal).</summary>
public sealed record QueueSettings
{
    public static readonly QueueSettings Default = new();

    /// <summary>A queue snapshots after this many journal events (at least as many as it holds journaled messages).</summary>
    public int SnapshotEvery { get; init; } = 500;

    /// <summary>
    /// Deliveries a no-ack consumer, or a manual-ack consumer without prefetch, may have outstanding before its
    /// channel grants more with <see cref="ConsumerCredit"/>.
    /// </summary>
    public int ConsumerWindow { get; init; } = 1000;

    /// <summary>How many accepted message ids a queue remembers to recognise a copy sent again.</summary>
    public int RecentIds { get; init; } = 1024;

    /// <summary>How long an entity without a queue definition waits for one before it passivates.</summary>
    public TimeSpan IdleWithoutQueue { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a queue waits, after a consumer's connection stopped, for the acknowledgements that connection sent
    /// before stopping (see <see cref="ConnectionDrained"/>) before it requeues what the connection held anyway
    /// (<c>broker.amqp.drain-wait</c>).
    /// </summary>
    public TimeSpan DrainWait { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>This node's name (<see cref="BrokerSettings.NodeName"/>), reported in <see cref="QueueStats"/>.</summary>
    public string NodeName { get; init; } = "";

    public static QueueSettings From(BrokerSettings settings) => new()
    {
        SnapshotEvery = settings.SnapshotEvery,
        ConsumerWindow = settings.AmqpConsumerWindow,
        DrainWait = settings.AmqpDrainWait,
        NodeName = settings.NodeName,
    };
}
