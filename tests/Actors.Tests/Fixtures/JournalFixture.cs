using System.Collections.Immutable;
using System.Text;
using Akka.Actor;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Queues;
using Broker.Actors.Amqp.Topology;
using Broker.Actors.Messages;
using Broker.Actors.Retained;
using Broker.Actors.Sessions;

namespace Broker.Actors.Tests.Fixtures;

/// <summary>One journal or snapshot row of the fixture: where it is stored, the manifest it is stored under (before any version), and its value.</summary>
public sealed record FixtureRow(bool Snapshot, string PersistenceId, long Seq, string Manifest, object Value);

/// <summary>
/// The content of the committed journal fixtures, written here once as literal values: <see cref="JournalFixtureWriter"/>
/// journals exactly these rows, and the fixture tests decode the committed bytes and compare them with these rows.
/// Timestamps are fixed in the past and expiries far in the future, so the recovered actors behave the same on any day
/// (sessions never expire, retained and queued messages expire in 2100).
/// </summary>
public static class JournalFixture
{
    /// <summary>Name of the actor system that wrote the fixture: actor references in it resolve to this system's paths.</summary>
    public const string SystemName = "fixture";

    /// <summary>The connection actor that owns the exclusive queue of the topology rows.</summary>
    public const string OwnerName = "amqp-conn-1";

    public const long ConnectedAt = 1_764_000_000_000;
    public const long DisconnectedAt = 1_764_000_060_000;
    public const long Year2100 = 4_102_444_800_000;
    public const long MemberUid = 101;

    public static readonly PublishedMessage Mqtt5Message = new(
        "sensors/k\u00fcche/temp",
        Encoding.UTF8.GetBytes("{\"c\":21.5}"),
        Qos: 1,
        Retain: false,
        ContentType: "application/json",
        ResponseTopic: "replies/fix-a",
        CorrelationData: [0xC0, 0xFF, 0xEE],
        PayloadFormat: 1,
        ExpiresAtUnixMs: Year2100,
        UserProperties: [new UserProperty("unit", "\u00b0C"), new UserProperty("unit", "K")],
        OriginClientId: "publisher-7",
        Id: 7_000_001);

    public static readonly PublishedMessage Qos2Message = new("sensors/hall/temp", [0x00, 0xFF], 2, false, Id: 7_000_002);

    public static readonly PublishedMessage DroppedMessage = new("sensors/big/temp", new byte[300], 1, false, Id: 7_000_003);

    public static readonly PublishedMessage LaterMessage = new("alerts/fire", Encoding.UTF8.GetBytes("fire"), 1, false, Id: 7_000_004);

    public static readonly WillMessage WillA = new(
        new PublishedMessage("clients/fix-a/status", Encoding.UTF8.GetBytes("gone"), 1, true, ContentType: "text/plain", ExpiresAtUnixMs: Year2100),
        DelaySeconds: 30,
        ExpirySeconds: 600);

    public static readonly ConnectInfo ConnectA = new(5, false, uint.MaxValue, 20, 65536, 16, true, false, WillA, ConnectedAt);

    public static readonly Subscription SensorSub = new("sensors/+/temp", 2, NoLocal: false, RetainAsPublished: true, RetainHandling: 1, SubscriptionId: 7);

    public static readonly Subscription SharedSub = new("$share/g/alerts/#", 1, NoLocal: true);

    public static readonly OutboundEntry EntryA1 = new(1, Mqtt5Message, 1, false, [7]);
    public static readonly OutboundEntry EntryA2 = new(2, Qos2Message, 2, false, [7]);
    public static readonly OutboundEntry EntryA3 = new(3, DroppedMessage, 1, false, null);
    public static readonly OutboundEntry EntryA4 = new(4, LaterMessage, 1, false, []);

    public static readonly WillMessage WillB = new(new PublishedMessage("clients/fix-b/status", [0x01], 0, false), 0);

    public static readonly ConnectInfo ConnectB = new(4, false, 0, 65535, 268435455, 0, false, true, WillB, ConnectedAt + 1);

    public static readonly Subscription SubB = new("b/#", 1);

    public static readonly OutboundEntry EntryB1 = new(1, new PublishedMessage("b/1", Encoding.UTF8.GetBytes("one"), 1, false, Id: 8_000_001), 1, false, null);

    public static readonly OutboundEntry EntryB2 = new(2, new PublishedMessage("b/2", Encoding.UTF8.GetBytes("two"), 1, true, Id: 8_000_002), 1, true, null);

    /// <summary>Session fix-b as its four events leave it (journaled as the snapshot at sequence 4).</summary>
    public static readonly SessionState SnapshotB = new()
    {
        ClientId = "fix-b",
        Exists = true,
        Connected = false,
        LastConnect = ConnectB,
        Will = WillB,
        EffectiveExpiry = uint.MaxValue,
        DisconnectedAtMs = DisconnectedAt + 1,
        Subscriptions = ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, [KeyValuePair.Create(SubB.Filter, SubB)]),
        Queue = ImmutableQueue.Create(EntryB1),
        QueueCount = 1,
        NextSeq = 2,
    };

    /// <summary>A non-persistent session (expiry 0) handed off while connected, with messages in every stage.</summary>
    public static readonly SessionState HandedOffC = new()
    {
        ClientId = "fix-c",
        Exists = true,
        Connected = true,
        LastConnect = ConnectA with { SessionExpiry = 0, Will = null },
        EffectiveExpiry = 0,
        Subscriptions = ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, [KeyValuePair.Create(SensorSub.Filter, SensorSub)]),
        Queue = ImmutableQueue.Create(EntryA4 with { Seq = 12 }),
        QueueCount = 1,
        Inflight = ImmutableDictionary.CreateRange([
            KeyValuePair.Create((ushort)65535, new InflightEntry(65535, EntryA1 with { Seq = 10 }, InflightStage.AwaitPubAck)),
            KeyValuePair.Create((ushort)1, new InflightEntry(1, EntryA2 with { Seq = 11 }, InflightStage.AwaitPubComp)),
        ]),
        InboundQos2 = [3, 4],
        NextSeq = 13,
        LastPacketId = 1,
    };

    public static readonly PublishedMessage RetainedKitchen = Mqtt5Message with { Topic = "home/kitchen/temp", Retain = true, Id = 0 };

    public static readonly PublishedMessage RetainedHall = new("home/hall/light", Encoding.UTF8.GetBytes("on"), 0, true);

    public static readonly PublishedMessage RetainedGarden = new("garden/rain", Encoding.UTF8.GetBytes("0.2mm"), 1, true, PayloadFormat: 1);

    // Content header properties as a client sends them: flags 0x9000 (content-type, delivery-mode), "text/plain", mode 2.
    private static readonly byte[] TextPersistentProperties = [0x90, 0x00, 0x0A, .. "text/plain"u8, 0x02];

    public static readonly QueueDefinition OrdersQueue = new("orders-q", true, false, null,
        new QueueArguments(MaxLength: 1000, DeadLetterExchange: "dlx", DeadLetterRoutingKey: "dead", Overflow: QueueOverflow.RejectPublish));

    public static readonly QueueDefinition GoneQueue = new("gone-q", false, true, "conn-9",
        new QueueArguments(60_000, 3_600_000, 5, "", null, QueueOverflow.RejectPublishDlx));

    public static readonly MessageEnqueued Order1 = new(1, ConnectedAt, new AmqpMessage("orders", "order.created", TextPersistentProperties, Encoding.UTF8.GetBytes("order 1"), true, 0, 9_000_001));
    public static readonly MessageEnqueued Order2 = new(2, ConnectedAt + 1, new AmqpMessage("orders", "order.paid", TextPersistentProperties, Encoding.UTF8.GetBytes("order 2"), true, Year2100, 9_000_002));
    public static readonly MessageEnqueued Order3 = new(3, ConnectedAt + 2, new AmqpMessage("", "orders-q", [0x10, 0x00, 0x02], [0x00, 0xFF], true, 0, 9_000_003));
    public static readonly MessageEnqueued Order4 = new(4, ConnectedAt + 3, new AmqpMessage("amq.topic", "sensors.k\u00fcche.temp", [0x10, 0x00, 0x02], Encoding.UTF8.GetBytes("mqtt"), true, Year2100, 9_000_004));

    public static readonly ExchangeDefinition OrdersExchange = new("orders", ExchangeKind.Topic, true, false, false);

    public static readonly ExchangeDefinition TempExchange = new("tmp", ExchangeKind.Fanout, false, true, true);

    public static readonly QueueDefinition ExclusiveQueue = new("excl-q", false, false, "amqp-conn-1", QueueArguments.None);

    public static readonly BindingDefinition OrdersBinding = new("orders", "orders-q", false, "order.#", []);

    public static readonly BindingDefinition TopicBinding = new("amq.topic", "orders-q", false, "sensors.*.temp", []);

    /// <param name="owner">the connection actor that owns <see cref="ExclusiveQueue"/> (<see cref="OwnerName"/> in the writing system).</param>
    public static IReadOnlyList<FixtureRow> Rows(IActorRef owner)
    {
        const string a = "session-fix-a", b = "session-fix-b", c = "session-fix-c", r = "retained", q = "amqp-queue-orders-q", g = "amqp-queue-gone-q", t = "amqp-topology";
        var ownerRecorded = new QueueOwnerRecorded(ExclusiveQueue.Name, owner);
        return
        [
            // Session fix-a: connected with a will, subscribed, three messages in flight or queued, one dropped, disconnected.
            new(false, a, 1, "E1", new SessionConnected(ConnectA, uint.MaxValue)),
            new(false, a, 2, "E4", new SubscriptionAdded(SensorSub)),
            new(false, a, 3, "E4", new SubscriptionAdded(SharedSub)),
            new(false, a, 4, "E4", new SubscriptionAdded(new Subscription("old/#", 0))),
            new(false, a, 5, "E5", new SubscriptionRemoved("old/#")),
            new(false, a, 6, "E6", new MessageQueued(EntryA1)),
            new(false, a, 7, "E6", new MessageQueued(EntryA2)),
            new(false, a, 8, "E6", new MessageQueued(EntryA3)),
            new(false, a, 9, "E7", new MessageSent(1, 1)),
            new(false, a, 10, "E7", new MessageSent(2, 2)),
            new(false, a, 11, "E9", new ClientAcked(AckKind.PubRec, 2)),
            new(false, a, 12, "E10", new InboundQos2Changed(7, false)),
            new(false, a, 13, "E10", new InboundQos2Changed(8, false)),
            new(false, a, 14, "E10", new InboundQos2Changed(8, true)),
            new(false, a, 15, "E6", new MessageQueued(EntryA4)),
            new(false, a, 16, "E8", new MessageDropped(3)),
            new(false, a, 17, "E2", new SessionDisconnected(DisconnectedAt, uint.MaxValue, KeepWill: false)),

            // Session fix-b (MQTT 3.1.1): a snapshot after four events, then the will cleared and one more message.
            new(false, b, 1, "E1", new SessionConnected(ConnectB, uint.MaxValue)),
            new(false, b, 2, "E4", new SubscriptionAdded(SubB)),
            new(false, b, 3, "E6", new MessageQueued(EntryB1)),
            new(false, b, 4, "E2", new SessionDisconnected(DisconnectedAt + 1, uint.MaxValue, KeepWill: true)),
            new(true, b, 4, "SS", SnapshotB),
            new(false, b, 5, "E3", WillCleared.Instance),
            new(false, b, 6, "E6", new MessageQueued(EntryB2)),

            new(false, c, 1, "E11", new SessionHandedOff(HandedOffC)),

            // Retained store: two set, one removed, snapshot, one more set.
            new(false, r, 1, "R1", new RetainedSet(RetainedKitchen)),
            new(false, r, 2, "R1", new RetainedSet(RetainedHall)),
            new(false, r, 3, "R2", new RetainedRemoved(RetainedHall.Topic)),
            new(true, r, 3, "R3", new RetainedSnapshot([RetainedKitchen])),
            new(false, r, 4, "R1", new RetainedSet(RetainedGarden)),

            // A durable queue: declared, messages in and out, snapshot, more in and out.
            new(false, q, 1, "Q:1", new QueueInitialized(OrdersQueue)),
            new(false, q, 2, "Q:2", new MessagesEnqueued([Order1, Order2])),
            new(false, q, 3, "Q:3", new MessagesRemoved([1])),
            new(false, q, 4, "Q:2", new MessagesEnqueued([Order3])),
            new(true, q, 4, "Q:5", new QueueSnapshot(OrdersQueue, 4, [Order2, Order3], [9_000_001, 9_000_002, 9_000_003])),
            new(false, q, 5, "Q:2", new MessagesEnqueued([Order4])),
            new(false, q, 6, "Q:3", new MessagesRemoved([2])),

            // A deleted queue.
            new(false, g, 1, "Q:1", new QueueInitialized(GoneQueue)),
            new(false, g, 2, "Q:4", QueueDestroyed.Instance),

            // Topology owner: members, an exchange, a queue and a binding, an exclusive queue with its owner, snapshot, then
            // the exclusive queue removed, a transient exchange added and removed, a binding added and removed.
            new(false, t, 1, "T:MS", new MembersSeen([MemberUid])),
            new(false, t, 2, "T:C", new TopologyChanged(1, new ExchangeAdded(OrdersExchange))),
            new(false, t, 3, "T:C", new TopologyChanged(2, new QueueAdded(OrdersQueue))),
            new(false, t, 4, "T:C", new TopologyChanged(3, new BindingAdded(OrdersBinding))),
            new(false, t, 5, "T:QO", ownerRecorded),
            new(false, t, 6, "T:C", new TopologyChanged(4, new QueueAdded(ExclusiveQueue))),
            new(true, t, 6, "T:OS", new TopologyOwnerSnapshot(new TopologySnapshot(4, [OrdersExchange], [OrdersQueue, ExclusiveQueue], [OrdersBinding]), [ownerRecorded], [MemberUid])),
            new(false, t, 7, "T:C", new TopologyChanged(5, new QueueRemoved(ExclusiveQueue.Name))),
            new(false, t, 8, "T:C", new TopologyChanged(6, new ExchangeAdded(TempExchange))),
            new(false, t, 9, "T:C", new TopologyChanged(7, new ExchangeRemoved(TempExchange.Name))),
            new(false, t, 10, "T:C", new TopologyChanged(8, new BindingAdded(TopicBinding))),
            new(false, t, 11, "T:C", new TopologyChanged(9, new BindingRemoved(TopicBinding))),
        ];
    }
}
