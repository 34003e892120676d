using Akka.Cluster.Sharding;

namespace Broker.Actors.Sessions;

/// <summary>Routes every <see cref="ISessionCommand"/> to the session entity of its client ID.</summary>
public sealed class SessionMessageExtractor() : HashCodeMessageExtractor(ShardCount)
{
    /// <summary>About ten shards per node of the largest expected cluster; never change it on a live cluster.</summary>
    public const int ShardCount = 100;

    public override string? EntityId(object message) => message switch
    {
        ISessionCommand c => c.ClientId,
        _ => null,
    };
}
