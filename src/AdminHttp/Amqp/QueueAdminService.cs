using Akka.Actor;
using Akka.Cluster;
using Broker.Actors;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Topology;
using Broker.Actors.Sessions;

namespace Broker.AdminHttp.Amqp;

/// <summary>One page of queues; <c>HasMore</c> when rows remain after its last, <c>Unreachable</c> the queues that did not answer.</summary>
public sealed record QueuesPage(IReadOnlyList<QueueBody> Queues, bool HasMore, IReadOnlyList<string> Unreachable);

public enum QueueCommandOutcome
{
    Done,
    NotFound,

    /// <summary>if-empty or if-unused refused the delete, as queue.delete would.</summary>
    Refused,

    /// <summary>The topology owner or the queue did not answer in time.</summary>
    Unavailable,
}

/// <summary>
/// The AMQP queues of the whole cluster for the admin API. Which queues exist comes from this node's topology replica,
/// which holds every queue of the cluster; only queues it lists are asked anything, so the API never starts an entity
/// for a queue that does not exist. The counts of a page's queues come from their entities, asked in parallel through
/// the queue shard region with the admin query timeout: a queue that does not answer keeps its row (counts 0, node "")
/// and is named in the result instead of failing the page. Delete and purge go the way a client's queue.delete and
/// queue.purge go: to the topology owner, and to the queue entity.
/// </summary>
/// <param name="queueRegion">the shard region of the queue entities (<see cref="BrokerServices.QueueTypeName"/>)</param>
/// <param name="topologyOwner">the shard region of the topology owner (<see cref="TopologyOwner.TypeName"/>)</param>
public sealed class QueueAdminService(ActorSystem system, AmqpTopology topology, Func<IActorRef> queueRegion, Func<IActorRef> topologyOwner, TimeSpan timeout)
{
    /// <summary>AMQP's reply code for a refused if-empty or if-unused.</summary>
    private const ushort PreconditionFailed = 406;

    /// <summary>The names of one view in UTF-8 byte order, so each page is a binary search and a slice.</summary>
    private sealed record SortedNames(TopologyView View, string[] Names);

    private readonly Cluster _cluster = Cluster.Get(system);
    private SortedNames? _sorted;

    /// <summary>True while this node is an Up member.</summary>
    public bool IsAvailable => _cluster.SelfMember.Status == MemberStatus.Up;

    /// <summary>At most <paramref name="limit"/> queues whose names start with <paramref name="prefix"/>, after <paramref name="after"/> when given.</summary>
    public async Task<QueuesPage> ListAsync(string? after, string prefix, int limit)
    {
        var view = topology.View;
        var names = Sorted(view);
        var start = LowerBound(names, prefix);
        if (after is not null)
        {
            start = Math.Max(start, UpperBound(names, after));
        }
        var page = new List<QueueDefinition>();
        var more = false;
        for (var i = start; i < names.Length && Utf8Ordinal.StartsWith(names[i], prefix); i++)
        {
            if (page.Count == limit)
            {
                more = true;
                break;
            }
            if (view.TryGetQueue(names[i], out var definition))
            {
                page.Add(definition);
            }
        }
        var asks = page.Select(q => queueRegion().Ask<QueueStats>(new GetQueueStats(q.Name), timeout)).ToArray();
        try
        {
            await Task.WhenAll(asks).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Each ask is inspected below; a queue that failed or timed out only marks that queue.
        }
        var rows = new List<QueueBody>(page.Count);
        var unreachable = new List<string>();
        for (var i = 0; i < page.Count; i++)
        {
            var q = page[i];
            var stats = asks[i].IsCompletedSuccessfully ? asks[i].Result : null;
            if (stats is null)
            {
                unreachable.Add(q.Name);
            }
            rows.Add(new QueueBody(q.Name, q.Durable, q.ExclusiveOwner is not null, q.AutoDelete,
                stats?.Ready ?? 0, stats?.Unacked ?? 0, stats?.Consumers ?? 0, stats?.Node ?? ""));
        }
        return new QueuesPage(rows, more, unreachable);
    }

    /// <summary>
    /// Deletes the queue through the topology owner (its consumers are cancelled), and waits (within the timeout) until
    /// this node's view no longer lists it. The refusal text is RabbitMQ's, e.g. "PRECONDITION_FAILED - queue 'q' in vhost '/' not empty".
    /// </summary>
    public async Task<(QueueCommandOutcome Outcome, string Refusal)> DeleteAsync(string name, bool ifUnused, bool ifEmpty)
    {
        if (!topology.View.TryGetQueue(name, out _))
        {
            return (QueueCommandOutcome.NotFound, "");
        }
        object answer;
        try
        {
            answer = await topologyOwner().Ask<object>(new DeleteQueue(name, ifUnused, ifEmpty), timeout).ConfigureAwait(false);
        }
        catch (AskTimeoutException)
        {
            return (QueueCommandOutcome.Unavailable, "");
        }
        switch (answer)
        {
            case QueueDeleted deleted:
                try
                {
                    await topology.WaitForVersionAsync(deleted.Version).WaitAsync(timeout).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    // The owner has deleted it; this node's view only lags (every replica gets the change).
                }
                return (QueueCommandOutcome.Done, "");
            case TopologyRefused { ReplyCode: PreconditionFailed } refused:
                return (QueueCommandOutcome.Refused, refused.ReplyText);
            default:
                // 404 "home node of queue ... is down or inaccessible": the queue exists but cannot be reached.
                return (QueueCommandOutcome.Unavailable, "");
        }
    }

    /// <summary>Drops the queue's ready messages; unacknowledged ones stay with their consumers.</summary>
    public async Task<QueueCommandOutcome> PurgeAsync(string name)
    {
        if (!topology.View.TryGetQueue(name, out _))
        {
            return QueueCommandOutcome.NotFound;
        }
        try
        {
            await queueRegion().Ask<QueuePurged>(new PurgeQueue(name), timeout).ConfigureAwait(false);
            return QueueCommandOutcome.Done;
        }
        catch (AskTimeoutException)
        {
            return QueueCommandOutcome.Unavailable;
        }
    }

    private string[] Sorted(TopologyView view)
    {
        var cached = Volatile.Read(ref _sorted);
        if (cached is null || !ReferenceEquals(cached.View, view))
        {
            var names = view.Queues.Select(q => q.Name).ToArray();
            Array.Sort(names, Utf8Ordinal.Instance);
            cached = new SortedNames(view, names);
            Volatile.Write(ref _sorted, cached);
        }
        return cached.Names;
    }

    /// <summary>The index of the first name not before <paramref name="value"/>: names sharing a prefix start there.</summary>
    private static int LowerBound(string[] names, string value)
    {
        var i = Array.BinarySearch(names, value, Utf8Ordinal.Instance);
        return i >= 0 ? i : ~i;
    }

    /// <summary>The index of the first name after <paramref name="value"/>.</summary>
    private static int UpperBound(string[] names, string value)
    {
        var i = Array.BinarySearch(names, value, Utf8Ordinal.Instance);
        return i >= 0 ? i + 1 : ~i;
    }
}
