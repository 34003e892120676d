using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Topology;
using Microsoft.Data.Sqlite;

namespace Broker.Actors.Tests.Amqp.Topology;

/// <summary>
/// Owner and replica wired as a node wires them: the owner behind a shard region, following cluster
/// membership, and the replica at /user/amqp-topology of a one-node cluster.
/// </summary>
public sealed class TopologyClusterTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private readonly SqliteJournalFolder _db = new("topology-cluster-test");
    private ActorSystem? _system;

    private Config SystemConfig() => _db.SystemConfig("""
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
        akka.cluster.sharding { state-store-mode = ddata, remember-entities = off }
        """);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_system is not null)
        {
            await _system.Terminate();
        }
        _db.Dispose();
    }

    [Fact]
    public async Task A_declare_through_the_shard_region_is_routable_on_the_node_once_its_version_is_reached()
    {
        _system = ActorSystem.Create("topology-cluster", SystemConfig());
        var cluster = Cluster.Get(_system);
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        await cluster.JoinAsync(cluster.SelfAddress);
        await up.Task.WaitAsync(Timeout);

        var queues = new TestProbe(_system, new XunitAssertions(), "queues");
        var sharding = ClusterSharding.Get(_system);
        var settings = ClusterShardingSettings.Create(_system);
        var region = await sharding.StartAsync(TopologyOwner.TypeName, TopologyOwner.Props(queues.Ref, 100), settings,
            new TopologyMessageExtractor(), sharding.DefaultShardAllocationStrategy(settings), TopologyHandOff.Instance);
        var topology = new AmqpTopology();
        _system.ActorOf(TopologyReplica.Props(topology, region), TopologyReplica.Name);

        await region.Ask<TopologyOk>(new DeclareExchange(new ExchangeDefinition("logs", ExchangeKind.Topic, false, false, false), false), Timeout);
        await region.Ask<QueueDeclared>(new DeclareQueue(new QueueDefinition("errors", false, false, null, QueueArguments.None), false, null), Timeout);
        var bound = await region.Ask<TopologyOk>(new Bind(new BindingDefinition("logs", "errors", false, "*.error", [])), Timeout);

        await topology.WaitForVersionAsync(bound.Version).WaitAsync(Timeout);
        var routed = new HashSet<string>();
        topology.View.Route("logs", "db.error", [0, 0], routed);
        Assert.Equal(["errors"], routed);

        // A queue's own message reaches the owner through the same region.
        region.Tell(new QueueUnused("errors"));
        Assert.Equal(new DeleteQueueContent("errors", true, false), await queues.ExpectMsgAsync<DeleteQueueContent>(Timeout));
        queues.Reply(new QueueContentDeleted("errors", 0));
        await topology.WaitForVersionAsync(bound.Version + 1).WaitAsync(Timeout);
        Assert.False(topology.View.TryGetQueue("errors", out _));
    }
}
