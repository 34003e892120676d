using Akka.Actor;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Topology;
using Broker.AdminHttp.Amqp;

namespace Broker.AdminHttp.Tests;

/// <summary>
/// <see cref="QueueAdminService"/> against stand-ins: a topology owner that answers a replica's sync request with a fixed
/// snapshot, and a queue region where one queue never answers.
/// </summary>
public sealed class QueueAdminServiceTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(500);

    private readonly ActorSystem _system = ActorSystem.Create("queue-admin-test", """
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
        akka.loglevel = WARNING
        """);

    private readonly AmqpTopology _topology = new();

    /// <summary>Answers a replica's sync request with a snapshot of <paramref name="queues"/>, and every other command with <paramref name="answer"/>.</summary>
    private sealed class StandInOwner : ReceiveActor
    {
        public StandInOwner(IReadOnlyList<QueueDefinition> queues, object? answer)
        {
            Receive<TopologySyncRequest>(s => s.Replica.Tell(new TopologySnapshot(1, [], queues, [])));
            Receive<ITopologyCommand>(_ =>
            {
                if (answer is not null)
                {
                    Sender.Tell(answer);
                }
            });
            Receive<TopologyApplied>(_ => { });
        }
    }

    /// <summary>Answers stats for every queue but <paramref name="silent"/>, on node-9.</summary>
    private sealed class StandInQueues : ReceiveActor
    {
        public StandInQueues(string silent)
        {
            Receive<GetQueueStats>(g =>
            {
                if (g.Queue != silent)
                {
                    Sender.Tell(new QueueStats(g.Queue, g.Queue.Length, 1, 2, "node-9"));
                }
            });
            Receive<PurgeQueue>(p => Sender.Tell(new QueuePurged(p.Queue, 4)));
        }
    }

    private IActorRef _owner = ActorRefs.Nobody;
    private IActorRef _queues = ActorRefs.Nobody;

    private static QueueDefinition Q(string name) => new(name, true, false, null, QueueArguments.None);

    private async Task<QueueAdminService> Service(object? ownerAnswer = null, params string[] queues)
    {
        _owner = _system.ActorOf(Props.Create(() => new StandInOwner(queues.Select(Q).ToList(), ownerAnswer)));
        _queues = _system.ActorOf(Props.Create(() => new StandInQueues("b-silent")));
        _system.ActorOf(TopologyReplica.Props(_topology, _owner));
        await _topology.Synced.WaitAsync(TimeSpan.FromSeconds(10));
        return new QueueAdminService(_system, _topology, () => _queues, () => _owner, Timeout);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _system.Terminate();

    [Fact]
    public async Task A_queue_that_does_not_answer_keeps_its_row_with_zeros_and_is_named_unreachable()
    {
        var service = await Service(null, "c", "a", "b-silent", "other");

        var page = await service.ListAsync(after: null, prefix: "", limit: 3);

        Assert.Equal(
            [new QueueBody("a", true, false, false, 1, 1, 2, "node-9"), new QueueBody("b-silent", true, false, false, 0, 0, 0, ""),
                new QueueBody("c", true, false, false, 1, 1, 2, "node-9")],
            page.Queues);
        Assert.True(page.HasMore);
        Assert.Equal(["b-silent"], page.Unreachable);
        var rest = await service.ListAsync(after: "c", prefix: "", limit: 3);
        Assert.Equal(["other"], rest.Queues.Select(q => q.Name));
        Assert.False(rest.HasMore);
        Assert.Empty(rest.Unreachable);
    }

    [Fact]
    public async Task A_delete_the_queue_cannot_carry_out_is_unavailable_and_an_unknown_queue_is_not_found()
    {
        var service = await Service(new TopologyRefused(404, "NOT_FOUND - home node of queue 'a' in vhost '/' is down or inaccessible"), "a");

        Assert.Equal((QueueCommandOutcome.Unavailable, ""), await service.DeleteAsync("a", ifUnused: false, ifEmpty: false));
        Assert.Equal((QueueCommandOutcome.NotFound, ""), await service.DeleteAsync("nope", ifUnused: false, ifEmpty: false));
        Assert.Equal(QueueCommandOutcome.NotFound, await service.PurgeAsync("nope"));
        Assert.Equal(QueueCommandOutcome.Done, await service.PurgeAsync("a"));
    }

    [Fact]
    public async Task A_topology_owner_that_does_not_answer_makes_a_delete_unavailable()
    {
        var service = await Service(null, "a");

        Assert.Equal((QueueCommandOutcome.Unavailable, ""), await service.DeleteAsync("a", ifUnused: true, ifEmpty: true));
    }
}
