using System.Collections.Immutable;
using System.Text;
using Akka.Actor;
using Akka.Configuration;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Queues;
using Broker.Actors.Messages;
using Broker.Actors.Retained;
using Broker.Actors.Routing;
using Broker.Actors.Serialization;
using Broker.Actors.Sessions;

namespace Broker.Actors.Tests.Serialization;

public class SerializerTests : Akka.TestKit.Xunit2.TestKit
{
    public SerializerTests() : base(SystemConfig())
    {
    }

    /// <summary>cluster.hocon as the node reads it, on a local provider (no remoting needed to test serialization).</summary>
    private static Config SystemConfig() =>
        ConfigurationFactory.ParseString("akka.actor.provider = local")
            .WithFallback(ConfigurationFactory.ParseString(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "cluster.hocon"))));

    private static readonly PublishedMessage Full = new(
        "sensors/k\u00fcche/temp",
        [0x00, 0xFF, 0x10, 0x80],
        2,
        true,
        "application/json",
        "replies/1",
        [9, 8, 7],
        1,
        1_800_000_000_123,
        [new UserProperty("k", "v"), new UserProperty("k", "v2"), new UserProperty("", "")],
        "origin-client",
        -7_000_000_000_000_000_001);

    private static readonly PublishedMessage Bare = new("t", [], 0, false);

    private static readonly PublishedMessage EmptyLists = Bare with { CorrelationData = [], UserProperties = [], ContentType = "", ResponseTopic = "" };

    private static readonly ConnectInfo Info = new(5, false, 3600, 20, 65536, 16, true, false,
        new WillMessage(Full with { Topic = "will/x" }, 30, 120), 1_700_000_000_456);

    private static readonly Subscription Sub = new("$share/g/a/+", 1, NoLocal: false, RetainAsPublished: true, RetainHandling: 2, SubscriptionId: 268435455);

    private static readonly SessionInfo Row = new("c\u00e9", true, 5, false, 3600, 1_700_000_000_000, null, 20, 65536, 16, true, false, true, 3, 7,
        [Sub, new Subscription("x/#", 2, NoLocal: true)], "node-2", "conn-name");

    private static SessionState RichState()
    {
        var queued = new OutboundEntry(12, Full, 1, true, [1, 2]);
        var inflightA = new InflightEntry(7, new OutboundEntry(10, Bare, 2, false, null), InflightStage.AwaitPubComp);
        var inflightB = new InflightEntry(65535, new OutboundEntry(11, EmptyLists, 1, false, []), InflightStage.AwaitPubAck);
        return new SessionState
        {
            ClientId = "rich",
            Exists = true,
            Connected = false,
            LastConnect = Info,
            Will = Info.Will,
            EffectiveExpiry = 3600,
            DisconnectedAtMs = 1_700_000_001_000,
            Subscriptions = ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, new Dictionary<string, Subscription>
            {
                [Sub.Filter] = Sub,
                ["b/#"] = new("b/#", 0, NoLocal: true, SubscriptionId: 4),
            }),
            Queue = ImmutableQueue.Create(queued, queued with { Seq = 13, Message = Bare }),
            QueueCount = 2,
            Inflight = ImmutableDictionary.CreateRange(new Dictionary<ushort, InflightEntry> { [7] = inflightA, [65535] = inflightB }),
            InboundQos2 = [1, 300, 65535],
            NextSeq = 14,
            LastPacketId = 65535,
        };
    }

    /// <summary>One or more instances of every message type the serializer handles, with non-default fields.</summary>
    public static IEnumerable<object> Samples()
    {
        yield return new Deliver("c1", Full, true, ["$share/g/a", "$share/h/#"], 42);
        yield return new Deliver("c1", Bare, false, null, -1);
        yield return new Deliver("c1", Full, true, null, 43, Retry: true);
        yield return new NodeDeliver(Full, 44, [new NodeTarget("c1", true, null), new NodeTarget("c\u00fc", false, ["$share/g/a", "$share/h/#"])]);
        yield return new NodeDeliver(Bare, 0, []);
        yield return new DeliverAck(long.MaxValue, DeliveryTarget.Session("c\u00fc"));
        yield return new DeliverAck(1, DeliveryTarget.RetainedStore);
        yield return new DeliverAck(2, DeliveryTarget.Queue("orders"));
        yield return new SessionMoved("conn-3");
        yield return new SessionResumed("conn-3");
        yield return new SessionLost("conn-3");
        yield return new SessionHandedOff(RichState());
        yield return new RouteUpdate(7, [new ClientRoutes("c1", 1_700_000_000_000_001, [new RouteEntry("a/+", true), new RouteEntry("$share/g/#", false)]), new ClientRoutes("gone", 2, [])]);
        yield return new RouteUpdateAck(long.MaxValue);
        yield return RouteSyncRequest.Instance;
        yield return new RouteSync([]);
        yield return new RouteSync([new ClientRoutes("c", 7, [new RouteEntry("a/#", true)])], Last: false);
        yield return new SendPublish(65535, 2, true, true, Full, [1, 268435455]);
        yield return new SendPublish(0, 0, false, false, EmptyLists, null);
        yield return new ClientAck("c1", "conn-1", AckKind.PubComp, 513);
        yield return new SendPubRel(258);
        yield return new ConnectAccepted("conn-1", true, [1, 2, 65535]);
        yield return new ConnectAccepted("conn-2", false, []);
        yield return new ConnectionClosed("c1", "conn-1", true, true, 77);
        yield return new ConnectionClosed("c1", "conn-1", false, false, null);
        yield return new ConnectionClosed("c1", "conn-1", false, false, 0);
        yield return new SessionTakenOver("conn-9");
        yield return new SubscribeRequest("c1", "conn-1", 5, [Sub, new Subscription("plain", 0)]);
        yield return new SubscribeDone(5, [0, 1, 2, 0x80, 0x8F]);
        yield return new UnsubscribeRequest("c1", "conn-1", 6, ["a", "b/#"]);
        yield return new UnsubscribeDone(6, [0x00, 0x11]);
        yield return new InboundQos2("c1", "conn-1", 300, true);
        yield return new InboundQos2Done(300, false);
        yield return Row;
        yield return Row with { ConnectedAtMs = null, DisconnectedAtMs = 5, Subscriptions = [], Connected = false };
        yield return new SessionConnected(Info, 3600);
        yield return new SessionConnected(Info with { Will = null }, 0);
        yield return new SessionDisconnected(1_700_000_000_000, 99, true);
        yield return WillCleared.Instance;
        yield return new SubscriptionAdded(Sub);
        yield return new SubscriptionRemoved("a/+/b");
        yield return new MessageQueued(new OutboundEntry(9, Full, 1, true, [3]));
        yield return new MessageQueued(new OutboundEntry(long.MaxValue, Bare, 0, false, null));
        yield return new MessageSent(9, 65535);
        yield return new MessageDropped(9);
        yield return new ClientAcked(AckKind.PubRec, 12);
        yield return new InboundQos2Changed(12, true);
        yield return RichState();
        yield return SessionState.Empty("empty");
        yield return new StoreRetained(Full, 17);
        yield return new QueryRetained("$share/g/#");
        yield return new RetainedMessages("$share/g/#", [Full, Bare, EmptyLists], Last: false);
        yield return new RetainedMessages("a/+", []);
        yield return new RetainedRefused(42);
        yield return new RetainedSet(Full);
        yield return new RetainedRemoved("gone/topic");
        yield return new RetainedSnapshot([Full, Bare]);
        yield return new ListSessions("after-me", "pre", SessionStateFilter.Disconnected, 50);
        yield return new ListSessions(null, "", SessionStateFilter.All, 0);
        yield return new SessionsPage("node-1", [Row, Row with { ClientId = "z" }], true);
        yield return new SessionsPage("node-1", [], false);
        yield return new FindSession("who");
        yield return new ListSessions("a", "", SessionStateFilter.Connected, 5, 0, "alice");
        yield return GetNodeStats.Instance;
        yield return new KickClient("dev/1", true);
        yield return new ListFilters(null, "a/", SessionStateFilter.Connected, 10);
        yield return new FiltersPage("node-1", [new FilterRow("a/+", 3, 1), new FilterRow("$share/g/b/#", 1, 2)], true);
        yield return new ListFilterClients("a/#", "c1", "c", SessionStateFilter.All, 2);
        yield return new FilterClientsPage("node-2", [new FilterClient("c2", 0)], false);
        yield return new ListRetained(null, "a/", 10);
        yield return new ListRetained("a/b", "", 1);
        yield return new RetainedPage([new RetainedRow("a/b", 1, 5, 1700000000000), new RetainedRow("a/c", 0, 0, null)], true);
        yield return new DeleteRetained("a/+/b");
        yield return new RetainedDeleted("a", true);
        yield return new KickDone("dev/1", false);
        yield return new ClientKicked("conn-7");
        yield return new NodeStats("node-2", 1234, new Dictionary<string, long> { ["mqtt.connections.current"] = 3, ["errors.auth"] = 0 });
        yield return new SessionNotFound("who");
        yield return new SessionProbe("$shard-probe-7");
        yield return new SessionProbeAck("$shard-probe-7");
        yield return new SessionFlowProbe("c\u00fc-1", long.MaxValue);
        yield return new Broker.Actors.Amqp.QueueFlowProbe("orders", 1);
        yield return new RetainedFlowProbe(42);
        yield return new FlowAck(-1);
        foreach (var sample in Amqp.Topology.TopologySerializerTests.Samples())
        {
            yield return sample;
        }
        foreach (var sample in QueueSamples())
        {
            yield return sample;
        }
    }

    private static readonly AmqpMessage FullAmqp = new("amq.topic", "k\u00fc.#", [0xFF, 0xFC, 0x0A, 0x74, 0x65, 0x78, 0x74], [0x00, 0xFF, 0x10], true,
        1_800_000_000_123, -7_000_000_000_000_000_001);

    private static readonly AmqpMessage BareAmqp = new("", "", [0x00, 0x00], [], false);

    private static readonly QueueDefinition FullQueue = new("q\u00e9", true, true, "conn-7", new QueueArguments(60_000, 3_600_000, 10, "dlx", "dead"));

    private static readonly QueueDefinition BareQueue = new("q", false, false, null, QueueArguments.None);

    private static IEnumerable<object> QueueSamples()
    {
        yield return new EnsureQueue(FullQueue);
        yield return new EnsureQueue(BareQueue with { Arguments = new QueueArguments(MaxLength: 0, DeadLetterExchange: "") });
        yield return new EnsureQueue(BareQueue with { Arguments = new QueueArguments(MaxLength: 3, Overflow: QueueOverflow.RejectPublish) });
        yield return new EnsureQueue(BareQueue with { Arguments = new QueueArguments(MaxLength: 3, DeadLetterExchange: "d", Overflow: QueueOverflow.RejectPublishDlx) });
        yield return new QueueReady("q", uint.MaxValue, 3);
        yield return new Enqueue("q", FullAmqp, true);
        yield return new Enqueue("q", BareAmqp, false);
        yield return new Enqueued("q", long.MinValue);
        yield return new QueueMissing("q", 7);
        yield return new EnqueueRejected("q", long.MaxValue);
        yield return new ConsumeOk("q", 65535, "amq.ctag-1");
        yield return new ConsumeRefused("q", 1, "t", 403, "queue 'q' in vhost '/' in exclusive use");
        yield return new CancelOk("q", 2, "t");
        yield return new QueueDelivery("q", 3, "t", 42, true, FullAmqp, 10);
        yield return new QueueDelivery("q", 3, null, 1, false, BareAmqp, 0);
        yield return new GetEmpty("q", 9);
        yield return new PurgeQueue("q");
        yield return new QueuePurged("q", 5);
        yield return new DeleteQueueContent("q", true, false);
        yield return new QueueContentDeleted("q", 0);
        yield return new QueueDeleteRefused("q", "PRECONDITION_FAILED - queue 'q' in vhost '/' not empty");
        yield return new GetQueueStats("q\u00e9");
        yield return new QueueStats("q", int.MaxValue, 0, 3, "node-2");
        yield return new ConsumerCancelled("q", 1, "t");
        yield return new ConsumerMoved("q", 1, "t");
        yield return new QueueUnused("q");
        yield return new QueueInitialized(FullQueue);
        yield return new QueueInitialized(BareQueue);
        yield return new MessagesEnqueued([new MessageEnqueued(5, 1_700_000_000_000, FullAmqp), new MessageEnqueued(6, 1_700_000_000_001, BareAmqp)]);
        yield return new MessagesEnqueued([]);
        yield return new MessagesRemoved([1, 2, 3, 1_000_000, 7, long.MaxValue, 0]);
        yield return new MessagesRemoved([]);
        yield return QueueDestroyed.Instance;
        yield return new QueueSnapshot(FullQueue, 99, [new MessageEnqueued(5, 1, FullAmqp), new MessageEnqueued(98, 2, BareAmqp)], [5, -3, long.MaxValue]);
        yield return new QueueSnapshot(BareQueue, 1, [], []);
    }

    /// <summary>Queue messages that name an actor (a channel's connection, a queue entity): they need an actor system to round-trip.</summary>
    public static IEnumerable<object> ChannelSamples(IActorRef connection)
    {
        var channel = new ChannelRef(connection, 65535);
        yield return new Consume("q", channel, "amq.ctag-\u00e9", true, 100, true, "conn-1");
        yield return new Consume("q", channel with { Channel = 1 }, "", false, 0, false, null);
        yield return new CancelConsumer("q", channel, "t");
        yield return new ConsumerCredit("q", channel, "t", int.MaxValue);
        yield return new SettleMessages("q", channel, [10, 11, 9, 1_000_000_000_000], Settlement.Discard);
        yield return new SettleMessages("q", channel, [], Settlement.Ack);
        yield return new SettleMessages("q", channel, [1], Settlement.Requeue);
        yield return new GetMessage("q", channel, true);
        yield return new ChannelClosed("q", channel);
        yield return new ConnectionDrained("q\u00e9", connection);
        // A basic.get delivery names the queue entity that gave it.
        yield return new QueueDelivery("q", 3, null, 1, false, BareAmqp, 0, connection);
    }

    public static TheoryData<int> ChannelSampleIndexes()
    {
        var data = new TheoryData<int>();
        for (var i = 0; i < ChannelSamples(ActorRefs.Nobody).Count(); i++)
        {
            data.Add(i);
        }
        return data;
    }

    public static TheoryData<int> SampleIndexes()
    {
        var data = new TheoryData<int>();
        for (var i = 0; i < Samples().Count(); i++)
        {
            data.Add(i);
        }
        return data;
    }

    private BrokerSerializer SerializerFor(object message) =>
        Assert.IsType<BrokerSerializer>(Sys.Serialization.FindSerializerFor(message));

    [Theory]
    [MemberData(nameof(SampleIndexes))]
    public void Message_round_trips_through_the_bound_serializer(int index)
    {
        var original = Samples().ElementAt(index);
        var serializer = SerializerFor(original);
        var manifest = serializer.Manifest(original);
        // A short type manifest, plus ".1" (the journal format) on persisted types.
        Assert.InRange(manifest.Length, 1, 6);
        Assert.DoesNotContain(original.GetType().Name, manifest, StringComparison.Ordinal);
        Assert.DoesNotContain("Broker", manifest, StringComparison.Ordinal);

        var bytes = serializer.ToBinary(original);
        var copy = serializer.FromBinary(bytes, manifest);

        Assert.IsType(original.GetType(), copy);
        Structural.Equal(original, copy);
        Assert.Equal(bytes, serializer.ToBinary(copy));
        // No CLR type name (assembly or namespace) leaks into the bytes either.
        Assert.DoesNotContain("Broker.", Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
    }

    [Fact]
    public void Samples_cover_every_serializable_type_of_the_actors_assembly()
    {
        var expected = typeof(IBrokerSerializable).Assembly.GetTypes()
            .Where(t => typeof(IBrokerSerializable).IsAssignableFrom(t) && t is { IsClass: true, IsAbstract: false })
            .Select(t => t.Name)
            .Order(StringComparer.Ordinal)
            .ToArray();
        // Connect and ResumeSession carry an actor reference and have their own test below.
        var covered = Samples().Concat(ChannelSamples(ActorRefs.Nobody)).Select(s => s.GetType().Name)
            .Append(nameof(Connect)).Append(nameof(ResumeSession))
            .Concat(Amqp.Topology.TopologySerializerTests.WithActorReferences).Distinct().Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(expected, covered);
    }

    [Fact]
    public void Every_type_has_its_own_manifest()
    {
        var byType = Samples().Concat(ChannelSamples(ActorRefs.Nobody)).GroupBy(s => s.GetType()).ToDictionary(g => g.Key, g => SerializerFor(g.First()).Manifest(g.First()));
        Assert.Equal(byType.Count, byType.Values.Distinct(StringComparer.Ordinal).Count());
    }

    [Fact]
    public void Connect_round_trips_its_actor_reference_through_the_provider()
    {
        var probe = CreateTestProbe("connection");
        var original = new Connect("c1", "conn-1", Info, probe.Ref);
        var serializer = SerializerFor(original);
        var manifest = serializer.Manifest(original);
        Assert.Equal("C", manifest);

        var copy = Assert.IsType<Connect>(serializer.FromBinary(serializer.ToBinary(original), manifest));

        Assert.Equal(original.ClientId, copy.ClientId);
        Assert.Equal(original.ConnectionId, copy.ConnectionId);
        Structural.Equal(original.Info, copy.Info);
        Assert.Equal(probe.Ref, copy.Connection);
        copy.Connection.Tell("ping");
        probe.ExpectMsg("ping", TimeSpan.FromSeconds(3));
    }

    [Fact]
    public void ResumeSession_round_trips_its_actor_reference_through_the_provider()
    {
        var probe = CreateTestProbe("resuming");
        var original = new ResumeSession("c\u00fc", "conn-7", probe.Ref);
        var serializer = SerializerFor(original);
        var manifest = serializer.Manifest(original);

        var copy = Assert.IsType<ResumeSession>(serializer.FromBinary(serializer.ToBinary(original), manifest));

        Assert.Equal(original, copy);
        copy.Connection.Tell("ping");
        probe.ExpectMsg("ping", TimeSpan.FromSeconds(3));
    }

    [Theory]
    [MemberData(nameof(ChannelSampleIndexes))]
    public void Queue_message_round_trips_with_its_channel_connection(int index)
    {
        var probe = CreateTestProbe("amqp-connection");
        var original = ChannelSamples(probe.Ref).ElementAt(index);
        var serializer = SerializerFor(original);
        var manifest = serializer.Manifest(original);
        Assert.StartsWith("Q:", manifest, StringComparison.Ordinal);

        var bytes = serializer.ToBinary(original);
        var copy = serializer.FromBinary(bytes, manifest);

        Assert.IsType(original.GetType(), copy);
        Assert.Equal(WithRefsAsPaths(original), WithRefsAsPaths(copy));
        Assert.Equal(bytes, serializer.ToBinary(copy));
        var actor = copy switch
        {
            QueueDelivery delivery => delivery.Entity!,
            ConnectionDrained drained => drained.Connection,
            _ => Assert.IsType<ChannelRef>(copy.GetType().GetProperty(nameof(Consume.Channel))!.GetValue(copy)).Connection,
        };
        Assert.Equal(probe.Ref, actor);
        actor.Tell("ping");
        probe.ExpectMsg("ping", TimeSpan.FromSeconds(3));
    }

    [Fact]
    public void Queue_manifests_start_with_Q()
    {
        foreach (var sample in QueueSamples().Concat(ChannelSamples(ActorRefs.Nobody)))
        {
            Assert.StartsWith("Q:", SerializerFor(sample).Manifest(sample), StringComparison.Ordinal);
        }
    }

    private static readonly System.Text.Json.JsonSerializerOptions RefsAsPaths = new() { Converters = { new ActorRefAsPath() } };

    private static string WithRefsAsPaths(object value) => value.GetType().Name + System.Text.Json.JsonSerializer.Serialize(value, value.GetType(), RefsAsPaths);

    private sealed class ActorRefAsPath : System.Text.Json.Serialization.JsonConverter<IActorRef>
    {
        public override IActorRef Read(ref System.Text.Json.Utf8JsonReader reader, Type typeToConvert, System.Text.Json.JsonSerializerOptions options) =>
            throw new NotSupportedException();

        public override void Write(System.Text.Json.Utf8JsonWriter writer, IActorRef value, System.Text.Json.JsonSerializerOptions options) =>
            writer.WriteStringValue(value.Path.ToStringWithUid());
    }

    [Fact]
    public void Unknown_type_and_unknown_manifest_are_refused()
    {
        var serializer = new BrokerSerializer((ExtendedActorSystem)Sys);
        Assert.Throws<ArgumentException>(() => serializer.Manifest("a string"));
        Assert.Throws<ArgumentException>(() => serializer.ToBinary("a string"));
        Assert.Throws<System.Runtime.Serialization.SerializationException>(() => serializer.FromBinary([], "nope"));
    }

    [Fact]
    public void Session_state_restored_from_a_snapshot_continues_like_the_original()
    {
        var original = RichState() with { Connected = false };
        var serializer = SerializerFor(original);
        var copy = (SessionState)serializer.FromBinary(serializer.ToBinary(original), serializer.Manifest(original));
        var limits = new SessionLimits(10, 10, false);
        var info = original.LastConnect! with { CleanStart = false };
        var a = original.OnConnect("c", info, 3600, limits, 1_700_000_002_000);
        var b = copy.OnConnect("c", info, 3600, limits, 1_700_000_002_000);
        Structural.Equal(a.State, b.State);
        Assert.Equal(a.Effects.Select(Structural.Json), b.Effects.Select(Structural.Json));
    }
}
