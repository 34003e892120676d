using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Topology;

namespace Broker.Actors.Tests.Amqp.Topology;

/// <summary>The replica of one node, with a probe playing the owner's shard region.</summary>
public sealed class TopologyReplicaTests() : Akka.TestKit.Xunit2.TestKit(Config)
{
    private static readonly Config Config = ConfigurationFactory.ParseString("akka.loglevel = WARNING");

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private readonly AmqpTopology _topology = new();

    private static TopologyChange Queue(string name) => new QueueAdded(new QueueDefinition(name, true, false, null, QueueArguments.None));

    private async Task<(IActorRef Replica, TestProbe Owner)> StartAsync(TimeSpan? checkInterval = null)
    {
        var owner = CreateTestProbe();
        var replica = Sys.ActorOf(TopologyReplica.Props(_topology, owner.Ref, checkInterval ?? TimeSpan.FromHours(1)));
        var first = await owner.ExpectMsgAsync<TopologySyncRequest>(Timeout);
        Assert.Equal(replica, first.Replica);
        // Nothing synced yet: the replica asks as if it had nothing, so an owner at version 0 answers too.
        Assert.Equal(-1, first.Version);
        return (replica, owner);
    }

    private async Task AwaitVersionAsync(long version) =>
        await _topology.WaitForVersionAsync(version).WaitAsync(Timeout);

    [Fact]
    public async Task The_first_snapshot_counts_as_synced_even_at_version_0()
    {
        var (replica, _) = await StartAsync();
        Assert.False(_topology.Synced.IsCompleted);
        replica.Tell(new TopologySnapshot(0, [], [], []));
        await _topology.Synced.WaitAsync(Timeout);
        Assert.Equal(0, _topology.View.Version);
    }

    [Fact]
    public async Task Consecutive_changes_are_applied_and_old_ones_ignored()
    {
        var (replica, owner) = await StartAsync();
        replica.Tell(new TopologyChanged(1, Queue("a")));
        replica.Tell(new TopologyChanged(2, Queue("b")));
        await AwaitVersionAsync(2);
        replica.Tell(new TopologyChanged(2, new QueueRemoved("b")));
        replica.Tell(new TopologyChanged(1, new QueueRemoved("a")));
        replica.Tell(new TopologyChanged(3, new QueueRemoved("a")));
        await AwaitVersionAsync(3);

        Assert.Equal(["b"], _topology.View.Queues.Select(q => q.Name));
        await owner.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public async Task A_gap_asks_the_owner_for_a_snapshot_once_and_the_snapshot_replaces_the_view()
    {
        var (replica, owner) = await StartAsync();
        replica.Tell(new TopologyChanged(1, Queue("a")));
        replica.Tell(new TopologyChanged(3, Queue("c")));
        replica.Tell(new TopologyChanged(4, Queue("d")));

        var request = await owner.ExpectMsgAsync<TopologySyncRequest>(Timeout);
        Assert.Equal(1, request.Version);
        Assert.Equal(replica, request.Replica);
        await owner.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(200));

        var snapshot = new TopologySnapshot(4,
            [new ExchangeDefinition("x", ExchangeKind.Fanout, true, false, false)],
            [new QueueDefinition("c", true, false, null, QueueArguments.None), new QueueDefinition("d", true, false, null, QueueArguments.None)],
            [new BindingDefinition("x", "c", false, "", [])]);
        replica.Tell(snapshot);
        await AwaitVersionAsync(4);
        Assert.Equal(["c", "d"], _topology.View.Queues.Select(q => q.Name).Order(StringComparer.Ordinal));
        var routed = new HashSet<string>();
        _topology.View.Route("x", "", [0, 0], routed);
        Assert.Equal(["c"], routed);

        // Back in step: the next change applies.
        replica.Tell(new TopologyChanged(5, new QueueRemoved("d")));
        await AwaitVersionAsync(5);
        Assert.Equal(["c"], _topology.View.Queues.Select(q => q.Name));
    }

    [Fact]
    public async Task A_snapshot_older_than_the_view_is_ignored()
    {
        var (replica, _) = await StartAsync();
        replica.Tell(new TopologyChanged(1, Queue("a")));
        replica.Tell(new TopologyChanged(2, Queue("b")));
        await AwaitVersionAsync(2);
        replica.Tell(new TopologySnapshot(1, [], [], []));
        replica.Tell(new TopologyChanged(3, Queue("c")));
        await AwaitVersionAsync(3);
        Assert.Equal(["a", "b", "c"], _topology.View.Queues.Select(q => q.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task The_periodic_check_tells_the_owner_the_current_version()
    {
        var (replica, owner) = await StartAsync(TimeSpan.FromMilliseconds(100));
        replica.Tell(new TopologyChanged(1, Queue("a")));
        await owner.FishForMessageAsync(m => m is TopologySyncRequest { Version: 1 }, Timeout);
    }

    [Fact]
    public async Task Waiting_for_a_version_completes_when_the_replica_reaches_it()
    {
        var (replica, _) = await StartAsync();
        Assert.True(_topology.WaitForVersionAsync(0).IsCompletedSuccessfully);
        var two = _topology.WaitForVersionAsync(2);
        var one = _topology.WaitForVersionAsync(1);
        Assert.False(two.IsCompleted);

        replica.Tell(new TopologyChanged(1, Queue("a")));
        await one.WaitAsync(Timeout);
        Assert.False(two.IsCompleted);

        replica.Tell(new TopologySnapshot(3, [], [], []));
        await two.WaitAsync(Timeout);
        Assert.True(_topology.WaitForVersionAsync(3).IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Waiting_for_a_version_can_be_cancelled()
    {
        using var cts = new CancellationTokenSource();
        var wait = _topology.WaitForVersionAsync(5, cts.Token);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(Timeout));
    }
}
