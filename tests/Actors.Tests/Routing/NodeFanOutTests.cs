using Akka.Actor;
using Akka.TestKit;
using Broker.Actors.Messages;
using Broker.Actors.Routing;
using Broker.Actors.Sessions;

namespace Broker.Actors.Tests.Routing;

/// <summary>One copy of a message per node: how the router groups sessions by the node that hosts them, and how that node's fan-out actor hands each session its delivery.</summary>
public sealed class NodeFanOutTests : Akka.TestKit.Xunit2.TestKit
{
    private static readonly Address NodeB = new("akka.tcp", "broker", "10.0.0.2", 2552);
    private static readonly Address NodeC = new("akka.tcp", "broker", "10.0.0.3", 2552);
    private static readonly PublishedMessage Message = new("a/b", [1, 2, 3], 1, false);

    private readonly SubscriptionTrie _trie = new();
    private readonly TestProbe _region;
    private readonly TestProbe _fanOutB;
    private readonly TestProbe _fanOutC;
    private readonly TestProbe _publisher;

    public NodeFanOutTests()
    {
        _region = CreateTestProbe("region");
        _fanOutB = CreateTestProbe("fan-out-b");
        _fanOutC = CreateTestProbe("fan-out-c");
        _publisher = CreateTestProbe("publisher");
    }

    private SessionHosts Hosts(bool enabled = true) => new(enabled, node => node == NodeB ? _fanOutB.Ref : node == NodeC ? _fanOutC.Ref : throw new InvalidOperationException($"no fan-out at {node}"));

    private MessageRouter Router(SessionHosts hosts) => new(_trie, _region.Ref, ActorRefs.Nobody, null, hosts);

    private void Subscribe(params string[] clients)
    {
        foreach (var c in clients)
        {
            _trie.Add(c, "a/+");
        }
    }

    [Fact]
    public void Sessions_on_another_node_get_one_message_for_that_node_and_the_others_go_through_the_region()
    {
        Subscribe("b1", "b2", "b3", "c1", "local", "unknown");
        var hosts = Hosts();
        hosts.HostedAt("b1", NodeB);
        hosts.HostedAt("b2", NodeB);
        hosts.HostedAt("b3", NodeB);
        hosts.HostedAt("c1", NodeC);
        hosts.HostedAt("local", NodeC);
        hosts.HostedHere("local");
        var sent = new Dictionary<DeliveryTarget, object>();

        var result = Router(hosts).Route(Message, new RouteCollector(), 17, _publisher.Ref, sent);

        Assert.Equal(6, result.Sessions);
        Assert.Equal(6, result.Acks);
        var toB = _fanOutB.ExpectMsg<NodeDeliver>();
        Assert.Same(Message, toB.Message);
        Assert.Equal(17, toB.Correlation);
        Assert.Equal(["b1", "b2", "b3"], toB.Targets.Select(t => t.ClientId).Order());
        Assert.All(toB.Targets, t => Assert.True(t.NonShared));
        Assert.Equal(_publisher.Ref, _fanOutB.LastSender);
        Assert.Equal("c1", Assert.Single(_fanOutC.ExpectMsg<NodeDeliver>().Targets).ClientId);
        var direct = new[] { _region.ExpectMsg<Deliver>(), _region.ExpectMsg<Deliver>() };
        Assert.Equal(["local", "unknown"], direct.Select(d => d.ClientId).Order());
        _region.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        _fanOutB.ExpectNoMsg(TimeSpan.FromMilliseconds(10));
        // Every session has its own copy to send again through the region if it is not answered.
        Assert.Equal(6, sent.Count);
        Assert.All(sent.Values, v => Assert.Equal(17, Assert.IsType<Deliver>(v).Correlation));
        Assert.Equal(2, hosts.BatchesSent.Value);
        Assert.Equal(4, hosts.DeliveriesBatched.Value);
    }

    [Fact]
    public void Sessions_on_one_node_beyond_the_batch_size_go_in_several_messages_each_within_it()
    {
        var clients = Enumerable.Range(0, 50).Select(i => $"client-{i:D3}").ToArray();
        Subscribe(clients);
        var hosts = Hosts();
        foreach (var c in clients)
        {
            hosts.HostedAt(c, NodeB);
        }
        var limit = 10 * NodeDeliver.SizeOf(new NodeTarget("client-000", true, null));
        var router = new MessageRouter(_trie, _region.Ref, ActorRefs.Nobody, null, hosts, limit);

        router.Route(Message, new RouteCollector(), 3, _publisher.Ref);

        var batches = new List<NodeDeliver>();
        for (var i = 0; i < 5; i++)
        {
            batches.Add(_fanOutB.ExpectMsg<NodeDeliver>());
        }
        _fanOutB.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        Assert.All(batches, b => Assert.InRange(b.Targets.Sum(NodeDeliver.SizeOf), 1, limit));
        Assert.Equal(clients, batches.SelectMany(b => b.Targets).Select(t => t.ClientId).Order());
        Assert.Equal(5, hosts.BatchesSent.Value);
    }

    [Fact]
    public void A_shared_subscription_member_on_another_node_carries_its_group_filter()
    {
        _trie.Add("b1", "$share/g/a/+");
        var hosts = Hosts();
        hosts.HostedAt("b1", NodeB);

        Router(hosts).Route(Message, new RouteCollector(), 0, _publisher.Ref);

        var target = Assert.Single(_fanOutB.ExpectMsg<NodeDeliver>().Targets);
        Assert.False(target.NonShared);
        Assert.Equal(["$share/g/a/+"], target.SharedFilters!);
    }

    [Fact]
    public void Turned_off_every_session_is_reached_through_the_region()
    {
        Subscribe("b1", "b2");
        var hosts = Hosts(enabled: false);
        hosts.HostedAt("b1", NodeB);
        hosts.HostedAt("b2", NodeB);

        Router(hosts).Route(Message, new RouteCollector(), 0, _publisher.Ref);

        _region.ExpectMsg<Deliver>();
        _region.ExpectMsg<Deliver>();
        _fanOutB.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public void A_flow_probe_takes_the_way_the_messages_took()
    {
        var hosts = Hosts();
        hosts.HostedAt("b1", NodeB);
        var router = Router(hosts);

        router.Probe(DeliveryTarget.Session("b1"), 5, _publisher.Ref);
        router.Probe(DeliveryTarget.Session("here"), 6, _publisher.Ref);

        Assert.Equal(new SessionFlowProbe("b1", 5), _fanOutB.ExpectMsg<SessionFlowProbe>());
        Assert.Equal(new SessionFlowProbe("here", 6), _region.ExpectMsg<SessionFlowProbe>());
    }

    [Fact]
    public void Sessions_of_a_node_that_left_go_through_the_region_again()
    {
        Subscribe("b1", "c1");
        var hosts = Hosts();
        hosts.HostedAt("b1", NodeB);
        hosts.HostedAt("c1", NodeC);

        hosts.NodeGone(NodeB);
        Router(hosts).Route(Message, new RouteCollector(), 0, _publisher.Ref);

        Assert.Equal("b1", _region.ExpectMsg<Deliver>().ClientId);
        Assert.Equal("c1", Assert.Single(_fanOutC.ExpectMsg<NodeDeliver>().Targets).ClientId);
        Assert.Equal(1, hosts.RemoteCount);
    }

    [Fact]
    public void The_fan_out_actor_holds_deliveries_until_its_region_starts_then_hands_each_session_its_own_as_the_publisher()
    {
        var fanOut = Sys.ActorOf(NodeFanOutActor.Props());
        var message = new NodeDeliver(Message, 9, [new NodeTarget("s1", true, null), new NodeTarget("s2", false, ["$share/g/a/+"])]);

        fanOut.Tell(message, _publisher.Ref);
        fanOut.Tell(new SessionFlowProbe("s1", 3), _publisher.Ref);
        _region.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        fanOut.Tell(new NodeFanOutActor.RegionStarted(_region.Ref));

        var first = _region.ExpectMsg<Deliver>();
        Assert.Equal(new Deliver("s1", Message, true, null, 9), first);
        Assert.Equal(_publisher.Ref, _region.LastSender);
        var second = _region.ExpectMsg<Deliver>();
        Assert.Equal("s2", second.ClientId);
        Assert.Equal(["$share/g/a/+"], second.SharedFilters!);
        Assert.Equal(new SessionFlowProbe("s1", 3), _region.ExpectMsg<SessionFlowProbe>());
        Assert.Equal(_publisher.Ref, _region.LastSender);

        fanOut.Tell(new NodeDeliver(Message, 10, [new NodeTarget("s3", true, null)]), _publisher.Ref);
        Assert.Equal("s3", _region.ExpectMsg<Deliver>().ClientId);
    }
}
