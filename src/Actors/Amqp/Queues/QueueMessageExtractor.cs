using Akka.Cluster.Sharding;

namespace Broker.Actors.Amqp.Queues;

/// <summary>Routes every <see cref="IQueueCommand"/> to the entity of its queue name.</summary>
public sealed class QueueMessageExtractor() : HashCodeMessageExtractor(ShardCount)
{
    /// <summary>About ten shards per node of the largest expected cluster; never change it on a live cluster.</summary>
    public const int ShardCount = 100;

    public override string? EntityId(object message) => message switch
    {
        IQueueCommand c => c.Queue,
        _ => null,
    };
}
