using Akka.Actor;
using Akka.Configuration;
using Broker.Actors.Messages;
using Broker.Actors.Routing;

namespace Broker.Actors.Tests.Routing;

/// <summary>
/// The replicator on one node, with no other member: the test plays the other nodes by sending their
/// messages itself. Checks what reaches the trie, versions, acknowledgements and what a joining node gets.
/// </summary>
public sealed class RouteReplicatorTests() : Akka.TestKit.Xunit2.TestKit(Config)
{
    private static readonly Config Config = ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
        """);

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private readonly SubscriptionTrie _trie = new();

    private IActorRef Start() => Sys.ActorOf(RouteReplicator.Props(_trie));

    private List<string> Plain(string topic)
    {
        var c = new RouteCollector();
        _trie.Match(topic, c);
        return [.. c.Targets.Where(t => t.Value.NonShared).Select(t => t.Key).Order(StringComparer.Ordinal)];
    }

    private static ClientRoutes Routes(string client, long version, params string[] filters) =>
        new(client, version, [.. filters.Select(f => new RouteEntry(f, true))]);

    [Fact]
    public void An_assertion_replaces_the_clients_filters_and_an_older_one_is_ignored()
    {
        var routes = Start();
        routes.Tell(new AssertRoutes(Routes("c1", 10, "a/+", "b/#"), 1));
        ExpectMsg<RoutesAsserted>(Timeout);
        Assert.Equal(["c1"], Plain("a/x"));
        Assert.Equal(["c1"], Plain("b/y/z"));

        routes.Tell(new AssertRoutes(Routes("c1", 20, "b/#", "c"), 2));
        ExpectMsg<RoutesAsserted>(Timeout);
        Assert.Empty(Plain("a/x"));
        Assert.Equal(["c1"], Plain("c"));

        // A late copy of the first assertion changes nothing.
        routes.Tell(new RouteUpdate(1, [Routes("c1", 10, "a/+")]));
        Assert.Equal(1, ExpectMsg<RouteUpdateAck>(Timeout).Seq);
        Assert.Empty(Plain("a/x"));
        Assert.Equal(["c1"], Plain("c"));
        Assert.Equal(2, _trie.Count);
    }

    [Fact]
    public void Routes_from_other_nodes_are_applied_and_acknowledged_and_an_empty_set_removes_the_client()
    {
        var routes = Start();
        routes.Tell(new RouteUpdate(7, [Routes("remote", 5, "x/+"), Routes("other", 5, "x/y")]));
        Assert.Equal(7, ExpectMsg<RouteUpdateAck>(Timeout).Seq);
        Assert.Equal(["other", "remote"], Plain("x/y"));

        routes.Tell(new RouteUpdate(8, [Routes("remote", 6)]));
        ExpectMsg<RouteUpdateAck>(Timeout);
        Assert.Equal(["other"], Plain("x/y"));
    }

    [Fact]
    public void Shared_members_that_disconnect_are_picked_only_when_no_member_is_connected()
    {
        var routes = Start();
        routes.Tell(new AssertRoutes(new ClientRoutes("m1", 1, [new RouteEntry("$share/g/t", true)]), 1));
        routes.Tell(new AssertRoutes(new ClientRoutes("m2", 1, [new RouteEntry("$share/g/t", true)]), 2));
        ExpectMsg<RoutesAsserted>(Timeout);
        ExpectMsg<RoutesAsserted>(Timeout);
        routes.Tell(new AssertRoutes(new ClientRoutes("m2", 2, [new RouteEntry("$share/g/t", false)]), 3));
        ExpectMsg<RoutesAsserted>(Timeout);

        for (var i = 0; i < 6; i++)
        {
            var c = new RouteCollector();
            _trie.Match("t", c);
            Assert.Equal(["m1"], c.Targets.Keys);
        }
    }

    [Fact]
    public void A_joining_node_gets_the_routes_of_the_sessions_hosted_here_only()
    {
        var routes = Start();
        routes.Tell(new AssertRoutes(Routes("here-1", 1, "a"), 0));
        routes.Tell(new AssertRoutes(Routes("here-2", 1, "b"), 0));
        routes.Tell(new AssertRoutes(Routes("moved", 1, "c"), 0));
        routes.Tell(new UnhostRoutes("moved"));
        routes.Tell(new RouteUpdate(1, [Routes("elsewhere", 1, "d")]));
        ExpectMsg<RouteUpdateAck>(Timeout);

        routes.Tell(RouteSyncRequest.Instance);

        var sync = ExpectMsg<RouteSync>(Timeout);
        Assert.Equal(["here-1", "here-2"], sync.Routes.Select(r => r.ClientId).Order(StringComparer.Ordinal));
        // A session that moved away keeps routing until its new node asserts again.
        Assert.Equal(["moved"], Plain("c"));
    }

    [Fact]
    public void Routes_larger_than_one_chunk_reach_a_joining_node_in_several_chunks_the_last_marked()
    {
        var routes = Start();
        // 40 clients with 100 filters of ~1 KB each: about 4 MB of routes, over several 1 MiB chunks.
        for (var c = 0; c < 40; c++)
        {
            var filters = Enumerable.Range(0, 100).Select(i => $"{new string('x', 1000)}/{c}/{i}").ToArray();
            routes.Tell(new AssertRoutes(new ClientRoutes("big-" + c, 1, [.. filters.Select(f => new RouteEntry(f, true))]), 0));
        }

        routes.Tell(RouteSyncRequest.Instance);

        var received = new List<RouteSync>();
        do
        {
            received.Add(ExpectMsg<RouteSync>(Timeout));
        }
        while (!received[^1].Last);
        Assert.True(received.Count > 1);
        Assert.All(received, chunk => Assert.True(chunk.Routes.Sum(r => r.ApproximateSize) <= RemoteChunks.ChunkBytes));
        Assert.Equal(40, received.SelectMany(r => r.Routes).Select(r => r.ClientId).Distinct().Count());
    }

    [Fact]
    public void Versions_grow_strictly()
    {
        var previous = RouteVersions.Next();
        for (var i = 0; i < 10_000; i++)
        {
            var next = RouteVersions.Next();
            Assert.True(next > previous);
            previous = next;
        }
    }
}
