using Akka.Actor;
using Broker.Tests.Shared;

namespace Broker.EndToEnd.Tests;

/// <summary>
/// Membership must not depend on the .NET thread pool, which the SQLite driver blocks (a thread per statement): with the
/// pool starved by a burst of session writes, heartbeats went out seconds late and the split brain resolver downed
/// healthy nodes. Cluster daemons (heartbeats, gossip, downing) and remoting run on threads of their own, and so do the
/// database calls with SQLite (BlockedDatabaseTests shows the pool's clients unaffected by a locked file). Sharding
/// (regions, shards, coordinator) runs on the pool with the entities it routes every message to.
/// </summary>
public sealed class NodeThreadsTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    private sealed class ThreadProbe : ReceiveActor
    {
        public ThreadProbe() => ReceiveAny(_ => Sender.Tell(Thread.CurrentThread.IsThreadPoolThread));
    }

    [Theory]
    [InlineData("akka.actor.internal-dispatcher")]
    [InlineData("akka.remote.default-remote-dispatcher")]
    [InlineData("akka.actor.database-dispatcher")]
    public async Task Cluster_and_remoting_actors_run_off_the_thread_pool(string dispatcher)
    {
        var system = fixture.Node.Node.System;
        if (dispatcher == "akka.actor.internal-dispatcher")
        {
            // The cluster daemons use the internal dispatcher unless akka.cluster.use-dispatcher names another.
            Assert.Equal("", system.Settings.Config.GetString("akka.cluster.use-dispatcher"));
            Assert.Equal("akka.actor.default-dispatcher", system.Settings.Config.GetString("akka.cluster.sharding.use-dispatcher"));
        }
        else if (dispatcher == "akka.remote.default-remote-dispatcher")
        {
            Assert.Equal(dispatcher, system.Settings.Config.GetString("akka.remote.use-dispatcher"));
        }
        else
        {
            // The fixture's node runs on SQLite: the journal, its queries and the snapshot store call it from these threads.
            Assert.Equal(dispatcher, system.Settings.Config.GetString("akka.persistence.journal.sql.plugin-dispatcher"));
            Assert.Equal(dispatcher, system.Settings.Config.GetString("akka.persistence.journal.sql.materializer-dispatcher"));
            Assert.Equal(dispatcher, system.Settings.Config.GetString("akka.persistence.snapshot-store.sql.plugin-dispatcher"));
        }
        var probe = system.ActorOf(Props.Create(() => new ThreadProbe()).WithDispatcher(dispatcher));
        try
        {
            for (var i = 0; i < 20; i++)
            {
                Assert.False(await probe.Ask<bool>("where", TimeSpan.FromSeconds(5)), $"{dispatcher} ran a message on a thread-pool thread");
            }
        }
        finally
        {
            system.Stop(probe);
        }
    }
}
