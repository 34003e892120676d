using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Content;
using Broker.Actors.Amqp.Topology;
using Microsoft.Data.Sqlite;

namespace Broker.Actors.Tests.Amqp.Topology;

/// <summary>
/// The topology owner journaling to a real SQLite file. A probe plays the queue region, another this node's
/// replica (at /user/amqp-topology), and the member set is given, so a restart of the whole cluster is a new
/// actor system with other member uids.
/// </summary>
public sealed class TopologyOwnerTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);
    private readonly SqliteJournalFolder _db = new("topology-test");
    private readonly List<ActorSystem> _systems = [];

    private string ConnectionString => _db.ConnectionString;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var s in _systems)
        {
            await s.Terminate();
        }
        _db.Dispose();
    }

    /// <summary>Plays this node's replica: passes everything to a probe and, unless told not to, confirms each change as a replica does.</summary>
    private sealed class ForwardTo : ReceiveActor
    {
        public ForwardTo(IActorRef target, bool confirm) => ReceiveAny(m =>
        {
            target.Forward(m);
            if (confirm && m is TopologyChanged c)
            {
                Sender.Tell(new TopologyApplied(c.Version));
            }
        });
    }

    private sealed record Node(ActorSystem System, IActorRef Owner, TestProbe Queues, TestProbe Replica, TestProbe Client)
    {
        public TestProbe Probe(string? name = null) => new(System, new XunitAssertions(), name);

        public async Task<T> Ask<T>(object command, TestProbe? from = null)
        {
            var client = from ?? Client;
            Owner.Tell(command, client.Ref);
            return await client.ExpectMsgAsync<T>(Timeout);
        }

        public async Task<TopologyRefused> Refused(object command, ushort code)
        {
            var refused = await Ask<TopologyRefused>(command);
            Assert.Equal(code, refused.ReplyCode);
            return refused;
        }

        public Task<TopologySnapshot> Snapshot() => Ask<TopologySnapshot>(new TopologySyncRequest(Client.Ref, -1));

        public async Task<TopologyChanged> Changed(long version)
        {
            var changed = await Replica.ExpectMsgAsync<TopologyChanged>(Timeout);
            Assert.Equal(version, changed.Version);
            return changed;
        }
    }

    /// <param name="uids">uids of the members up when the owner starts; the first is this system.</param>
    /// <param name="confirm">whether this node's replica confirms changes (the other members' never do).</param>
    /// <param name="replicaTimeout">how long answers wait for replicas; by default short when other members never confirm.</param>
    private Node Start(string name, int[]? uids = null, int snapshotEvery = 1000, TimeSpan? deleteTimeout = null, bool confirm = true, TimeSpan? replicaTimeout = null)
    {
        var system = ActorSystem.Create(name, _db.SystemConfig());
        _systems.Add(system);
        var replica = new TestProbe(system, new XunitAssertions(), "replica");
        system.ActorOf(Props.Create(() => new ForwardTo(replica.Ref, confirm)), TopologyReplica.Name);
        var self = ((ExtendedActorSystem)system).Provider.DefaultAddress;
        var members = (uids ?? [1]).Select((uid, i) => new UniqueAddress(i == 0 ? self : new Address("akka", "other-" + i), uid)).ToList();
        var queues = new TestProbe(system, new XunitAssertions(), "queues");
        replicaTimeout ??= members.Count > 1 ? TimeSpan.FromMilliseconds(200) : TopologyOwner.DefaultReplicaTimeout;
        var owner = system.ActorOf(TopologyOwner.Props(queues.Ref, snapshotEvery, deleteTimeout, members, replicaTimeout), "owner");
        return new Node(system, owner, queues, replica, new TestProbe(system, new XunitAssertions(), "client"));
    }

    private static ExchangeDefinition Exchange(string name, ExchangeKind kind = ExchangeKind.Direct, bool durable = true, bool autoDelete = false, bool isInternal = false) =>
        new(name, kind, durable, autoDelete, isInternal);

    private static QueueDefinition Queue(string name, bool durable = true, bool autoDelete = false, string? exclusiveOwner = null, QueueArguments? arguments = null) =>
        new(name, durable, autoDelete, exclusiveOwner, arguments ?? QueueArguments.None);

    private static BindingDefinition ToQueue(string exchange, string queue, string key = "", byte[]? arguments = null) => new(exchange, queue, false, key, arguments ?? []);

    private static BindingDefinition ToExchange(string source, string destination, string key = "") => new(source, destination, true, key, []);

    private static string[] Names(IEnumerable<ExchangeDefinition> exchanges) => [.. exchanges.Select(x => x.Name).Order(StringComparer.Ordinal)];

    private static string[] Names(IEnumerable<QueueDefinition> queues) => [.. queues.Select(q => q.Name).Order(StringComparer.Ordinal)];

    private static async Task CompleteDelete(Node node, string queue, uint messages = 0, bool ifUnused = false, bool ifEmpty = false)
    {
        var delete = await node.Queues.ExpectMsgAsync<DeleteQueueContent>(Timeout);
        Assert.Equal(new DeleteQueueContent(queue, ifUnused, ifEmpty), delete);
        node.Queues.Reply(new QueueContentDeleted(queue, messages));
    }

    [Fact]
    public async Task An_answer_waits_until_the_replicas_have_the_change()
    {
        var node = Start("replicas-confirm", confirm: false, replicaTimeout: TimeSpan.FromSeconds(30));
        node.Owner.Tell(new DeclareExchange(Exchange("x"), false), node.Client.Ref);
        await node.Changed(1);
        await node.Client.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(300));
        // This node's replica confirms (any local sender stands for it).
        node.Owner.Tell(new TopologyApplied(1), node.Probe().Ref);
        Assert.Equal(1, (await node.Client.ExpectMsgAsync<TopologyOk>(Timeout)).Version);

        // A redeclare changes nothing but still names version 2 once that is out: it waits for it too, in order.
        node.Owner.Tell(new DeclareExchange(Exchange("y"), false), node.Client.Ref);
        node.Owner.Tell(new DeclareExchange(Exchange("y"), false), node.Client.Ref);
        await node.Changed(2);
        await node.Client.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(300));
        node.Owner.Tell(new TopologyApplied(2), node.Probe().Ref);
        Assert.Equal(2, (await node.Client.ExpectMsgAsync<TopologyOk>(Timeout)).Version);
        Assert.Equal(2, (await node.Client.ExpectMsgAsync<TopologyOk>(Timeout)).Version);
    }

    [Fact]
    public async Task A_member_whose_replica_never_confirms_delays_answers_only_until_the_timeout()
    {
        // The second member's replica never answers (as when its node died and is not yet removed).
        var node = Start("replicas-late", [1, 2], replicaTimeout: TimeSpan.FromMilliseconds(800));
        node.Owner.Tell(new DeclareExchange(Exchange("x"), false), node.Client.Ref);
        await node.Client.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(400));
        Assert.Equal(1, (await node.Client.ExpectMsgAsync<TopologyOk>(Timeout)).Version);
    }

    [Fact]
    public async Task Exchange_declare_answers_and_refuses_as_RabbitMQ_does()
    {
        var node = Start("declare-exchange");
        Assert.Equal(1, (await node.Ask<TopologyOk>(new DeclareExchange(Exchange("x"), false))).Version);
        Assert.Equal(1, (await node.Ask<TopologyOk>(new DeclareExchange(Exchange("x"), false))).Version);
        Assert.Equal(1, (await node.Ask<TopologyOk>(new DeclareExchange(Exchange("x", ExchangeKind.Fanout), true))).Version);
        await node.Ask<TopologyOk>(new DeclareExchange(Exchange("amq.direct"), false));
        await node.Ask<TopologyOk>(new DeclareExchange(Exchange("amq.fanout", ExchangeKind.Fanout), true));

        Assert.Equal("PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': received 'fanout' but current is 'direct'",
            (await node.Refused(new DeclareExchange(Exchange("x", ExchangeKind.Fanout), false), 406)).ReplyText);
        Assert.Equal("PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'x' in vhost '/': received 'false' but current is 'true'",
            (await node.Refused(new DeclareExchange(Exchange("x", durable: false), false), 406)).ReplyText);
        Assert.Equal("PRECONDITION_FAILED - inequivalent arg 'auto_delete' for exchange 'x' in vhost '/': received 'true' but current is 'false'",
            (await node.Refused(new DeclareExchange(Exchange("x", autoDelete: true), false), 406)).ReplyText);
        Assert.Equal("PRECONDITION_FAILED - inequivalent arg 'internal' for exchange 'x' in vhost '/': received 'true' but current is 'false'",
            (await node.Refused(new DeclareExchange(Exchange("x", isInternal: true), false), 406)).ReplyText);
        Assert.Equal("PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' in vhost '/': received 'topic' but current is 'direct'",
            (await node.Refused(new DeclareExchange(Exchange("amq.direct", ExchangeKind.Topic), false), 406)).ReplyText);
        Assert.Equal("NOT_FOUND - no exchange 'nope' in vhost '/'",
            (await node.Refused(new DeclareExchange(Exchange("nope"), true), 404)).ReplyText);
        Assert.Equal("ACCESS_REFUSED - exchange name 'amq.mine' contains reserved prefix 'amq.*'",
            (await node.Refused(new DeclareExchange(Exchange("amq.mine"), false), 403)).ReplyText);
        Assert.Equal("ACCESS_REFUSED - operation not permitted on the default exchange",
            (await node.Refused(new DeclareExchange(Exchange(""), false), 403)).ReplyText);
        await node.Refused(new DeclareExchange(Exchange(""), true), 403);

        Assert.Equal(new ExchangeAdded(Exchange("x")), (await node.Changed(1)).Change);
        await node.Replica.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public async Task Exchange_delete_refuses_system_exchanges_and_used_ones_and_takes_every_binding_along()
    {
        var node = Start("delete-exchange");
        await node.Ask<TopologyOk>(new DeleteExchange("never-declared", false));
        Assert.Equal("ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed",
            (await node.Refused(new DeleteExchange("amq.direct", false), 403)).ReplyText);
        await node.Refused(new DeleteExchange("amq.whatever", false), 403);
        Assert.Equal("ACCESS_REFUSED - operation not permitted on the default exchange", (await node.Refused(new DeleteExchange("", false), 403)).ReplyText);

        await node.Ask<TopologyOk>(new DeclareExchange(Exchange("a", ExchangeKind.Fanout), false));
        await node.Ask<TopologyOk>(new DeclareExchange(Exchange("b", ExchangeKind.Topic), false));
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("q"), false, null));
        await node.Ask<TopologyOk>(new Bind(ToExchange("a", "b")));
        await node.Ask<TopologyOk>(new Bind(ToQueue("b", "q", "#")));
        await node.Ask<TopologyOk>(new Bind(ToQueue("amq.fanout", "q")));

        Assert.Equal("PRECONDITION_FAILED - exchange 'b' in vhost '/' in use", (await node.Refused(new DeleteExchange("b", true), 406)).ReplyText);
        // Only bindings from an exchange make it used.
        await node.Ask<TopologyOk>(new DeclareExchange(Exchange("c", ExchangeKind.Fanout), false));
        await node.Ask<TopologyOk>(new Bind(ToExchange("a", "c")));
        await node.Ask<TopologyOk>(new DeleteExchange("c", true));

        var ok = await node.Ask<TopologyOk>(new DeleteExchange("b", false));
        var snapshot = await node.Snapshot();
        Assert.Equal(ok.Version, snapshot.Version);
        Assert.Equal(["a"], Names(snapshot.Exchanges));
        Assert.Equal([ToQueue("amq.fanout", "q")], snapshot.Bindings);
    }

    [Fact]
    public async Task Bind_checks_both_ends_is_idempotent_and_unbind_of_a_missing_binding_is_fine()
    {
        var node = Start("bind");
        await node.Ask<TopologyOk>(new DeclareExchange(Exchange("x"), false));
        await node.Ask<TopologyOk>(new DeclareExchange(Exchange("h", ExchangeKind.Headers), false));
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("q"), false, null));

        Assert.Equal("NOT_FOUND - no exchange 'nope' in vhost '/'", (await node.Refused(new Bind(ToQueue("nope", "q")), 404)).ReplyText);
        Assert.Equal("NOT_FOUND - no queue 'nq' in vhost '/'", (await node.Refused(new Bind(ToQueue("x", "nq")), 404)).ReplyText);
        Assert.Equal("NOT_FOUND - no exchange 'nope' in vhost '/'", (await node.Refused(new Bind(ToQueue("nope", "nq")), 404)).ReplyText);
        Assert.Equal("NOT_FOUND - no exchange 'nx' in vhost '/'", (await node.Refused(new Bind(ToExchange("x", "nx")), 404)).ReplyText);
        Assert.Equal("ACCESS_REFUSED - operation not permitted on the default exchange", (await node.Refused(new Bind(ToQueue("", "q", "q")), 403)).ReplyText);
        await node.Refused(new Bind(ToExchange("x", "")), 403);
        await node.Refused(new Unbind(ToQueue("", "q", "q")), 403);
        Assert.Equal("PRECONDITION_FAILED - Invalid x-match field value <<\"foo\">>; expected all, any, all-with-x, or any-with-x",
            (await node.Refused(new Bind(ToQueue("h", "q", "", FieldTableCodec.Write([new("x-match", "foo")]))), 406)).ReplyText);
        Assert.Equal("PRECONDITION_FAILED - Invalid x-match field type signedint (value 5); expected longstr",
            (await node.Refused(new Bind(ToQueue("h", "q", "", FieldTableCodec.Write([new("x-match", 5)]))), 406)).ReplyText);

        var first = await node.Ask<TopologyOk>(new Bind(ToQueue("x", "q", "k")));
        var again = await node.Ask<TopologyOk>(new Bind(ToQueue("x", "q", "k")));
        Assert.Equal(first.Version, again.Version);
        await node.Ask<TopologyOk>(new Bind(ToQueue("h", "q", "", FieldTableCodec.Write([new("x-match", "any-with-x"), new("a", 1)]))));

        var unbound = await node.Ask<TopologyOk>(new Unbind(ToQueue("h", "q", "", FieldTableCodec.Write([new("x-match", "any-with-x"), new("a", 1)]))));
        Assert.Equal(first.Version + 2, unbound.Version);
        var unchanged = await node.Ask<TopologyOk>(new Unbind(ToQueue("x", "q", "other")));
        await node.Ask<TopologyOk>(new Unbind(ToQueue("missing", "gone")));
        Assert.Equal(first.Version + 2, unchanged.Version);
        Assert.Equal([ToQueue("x", "q", "k")], (await node.Snapshot()).Bindings);
    }

    [Fact]
    public async Task An_auto_delete_exchange_goes_with_its_last_binding_whatever_removes_it()
    {
        var node = Start("auto-delete");
        await node.Ask<TopologyOk>(new DeclareExchange(Exchange("ad", ExchangeKind.Fanout, autoDelete: true), false));
        await node.Ask<TopologyOk>(new DeclareExchange(Exchange("ad2", ExchangeKind.Fanout, autoDelete: true), false));
        await node.Ask<TopologyOk>(new DeclareExchange(Exchange("target", ExchangeKind.Fanout), false));
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("q1"), false, null));
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("q2"), false, null));
        await node.Ask<TopologyOk>(new Bind(ToQueue("ad", "q1")));
        await node.Ask<TopologyOk>(new Bind(ToQueue("ad", "q2")));
        await node.Ask<TopologyOk>(new Bind(ToExchange("ad2", "target")));

        await node.Ask<TopologyOk>(new Unbind(ToQueue("ad", "q1")));
        await node.Ask<TopologyOk>(new DeclareExchange(Exchange("ad", ExchangeKind.Fanout), true));
        await node.Ask<TopologyOk>(new Unbind(ToQueue("ad", "q2")));
        await node.Refused(new DeclareExchange(Exchange("ad", ExchangeKind.Fanout), true), 404);

        // The destination exchange's delete removes the last binding of ad2.
        await node.Ask<TopologyOk>(new DeleteExchange("target", false));
        Assert.Empty((await node.Snapshot()).Exchanges);
        await node.Refused(new DeclareExchange(Exchange("ad2", ExchangeKind.Fanout), true), 404);
    }

    [Fact]
    public async Task Changes_get_consecutive_versions_and_reach_the_replica_in_order_before_the_answer()
    {
        var node = Start("versions");
        var declared = await node.Ask<TopologyOk>(new DeclareExchange(Exchange("x", ExchangeKind.Topic), false));
        var queue = await node.Ask<QueueDeclared>(new DeclareQueue(Queue("q"), false, null));
        var bound = await node.Ask<TopologyOk>(new Bind(ToQueue("x", "q", "a.#")));
        Assert.Equal([1L, 2L, 3L], [declared.Version, queue.Version, bound.Version]);

        Assert.Equal(new ExchangeAdded(Exchange("x", ExchangeKind.Topic)), (await node.Changed(1)).Change);
        Assert.Equal(new QueueAdded(Queue("q")), (await node.Changed(2)).Change);
        Assert.Equal(new BindingAdded(ToQueue("x", "q", "a.#")), (await node.Changed(3)).Change);

        // A replica at the owner's version is not sent a snapshot.
        node.Owner.Tell(new TopologySyncRequest(node.Client.Ref, 3));
        await node.Client.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(200));
        Assert.Equal(3, (await node.Snapshot()).Version);
    }

    [Fact]
    public async Task Queue_declare_answers_and_refuses_as_RabbitMQ_does()
    {
        var node = Start("declare-queue");
        var ttl = new QueueArguments(MessageTtlMs: 1000);
        var declared = await node.Ask<QueueDeclared>(new DeclareQueue(Queue("q", arguments: ttl), false, null));
        Assert.Equal(Queue("q", arguments: ttl), declared.Definition);
        Assert.Equal(declared, await node.Ask<QueueDeclared>(new DeclareQueue(Queue("q", arguments: ttl), false, null)));
        Assert.Equal(declared, await node.Ask<QueueDeclared>(new DeclareQueue(Queue("q", durable: false), true, null)));

        Assert.Equal("NOT_FOUND - no queue 'nq' in vhost '/'", (await node.Refused(new DeclareQueue(Queue("nq"), true, null), 404)).ReplyText);
        Assert.Equal("PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': received 'false' but current is 'true'",
            (await node.Refused(new DeclareQueue(Queue("q", durable: false, arguments: ttl), false, null), 406)).ReplyText);
        Assert.Equal("PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue 'q' in vhost '/': received 'true' but current is 'false'",
            (await node.Refused(new DeclareQueue(Queue("q", autoDelete: true, arguments: ttl), false, null), 406)).ReplyText);
        Assert.Equal("PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received '2000' but current is '1000'",
            (await node.Refused(new DeclareQueue(Queue("q", arguments: new QueueArguments(MessageTtlMs: 2000)), false, null), 406)).ReplyText);
        Assert.Equal("PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received none but current is the value '1000' of type 'signedint'",
            (await node.Refused(new DeclareQueue(Queue("q"), false, null), 406)).ReplyText);
        Assert.Equal("PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'q' in vhost '/': received the value 'dlx' of type 'longstr' but current is none",
            (await node.Refused(new DeclareQueue(Queue("q", arguments: ttl with { DeadLetterExchange = "dlx" }), false, null), 406)).ReplyText);
        Assert.Equal("ACCESS_REFUSED - queue name 'amq.q' contains reserved prefix 'amq.*'",
            (await node.Refused(new DeclareQueue(Queue("amq.q"), false, null), 403)).ReplyText);

        var named = await node.Ask<QueueDeclared>(new DeclareQueue(Queue("", durable: false, exclusiveOwner: "conn-1"), false, null));
        Assert.Matches("^amq\\.gen-[A-Za-z0-9_-]{22}$", named.Definition.Name);
        Assert.Equal(named.Definition, (await node.Ask<QueueDeclared>(new DeclareQueue(Queue(named.Definition.Name), true, null))).Definition);
        // Server-named queues are still reserved names for a non-passive declare.
        await node.Refused(new DeclareQueue(Queue(named.Definition.Name, durable: false, exclusiveOwner: "conn-1"), false, null), 403);
    }

    [Fact]
    public async Task An_exclusive_queue_is_locked_for_other_connections()
    {
        var node = Start("exclusive");
        var connection = node.Probe("connection-1");
        var other = node.Probe("connection-2");
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("ex", durable: false, exclusiveOwner: "conn-1"), false, connection.Ref));
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("ex", durable: false, exclusiveOwner: "conn-1"), false, connection.Ref));
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("ex"), true, connection.Ref));
        await node.Ask<TopologyOk>(new Bind(ToQueue("amq.direct", "ex", "k"), "conn-1"));

        Assert.Equal("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'ex' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
            (await node.Refused(new DeclareQueue(Queue("ex", durable: false, exclusiveOwner: "conn-2"), false, other.Ref), 405)).ReplyText);
        // Also the owning connection when the exclusive flag differs.
        await node.Refused(new DeclareQueue(Queue("ex", durable: false), false, connection.Ref), 405);
        await node.Refused(new DeclareQueue(Queue("ex"), true, other.Ref), 405);
        await node.Refused(new DeclareQueue(Queue("ex", exclusiveOwner: "conn-2"), true, null), 405);
        await node.Refused(new Bind(ToQueue("amq.direct", "ex", "k2"), "conn-2"), 405);
        await node.Refused(new DeleteQueue("ex", false, false, "conn-2"), 405);

        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("shared"), false, null));
        await node.Refused(new DeclareQueue(Queue("shared", exclusiveOwner: "conn-1"), false, connection.Ref), 405);
    }

    [Fact]
    public async Task An_exclusive_queue_is_deleted_when_its_connection_actor_stops()
    {
        var node = Start("exclusive-stop");
        var connection = node.Probe("connection");
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("ex", durable: false, exclusiveOwner: "conn-1"), false, connection.Ref));
        await node.Ask<TopologyOk>(new Bind(ToQueue("amq.fanout", "ex")));
        await node.Changed(1);
        await node.Changed(2);

        node.System.Stop(connection.Ref);

        await CompleteDelete(node, "ex", 3);
        Assert.Equal(new QueueRemoved("ex"), (await node.Changed(3)).Change);
        var snapshot = await node.Snapshot();
        Assert.Empty(snapshot.Queues);
        Assert.Empty(snapshot.Bindings);
    }

    [Fact]
    public async Task Connection_gone_deletes_exactly_that_connections_exclusive_queues()
    {
        var node = Start("connection-gone");
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("a1", durable: false, exclusiveOwner: "conn-a"), false, null));
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("b1", durable: false, exclusiveOwner: "conn-b"), false, null));
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("plain"), false, null));

        node.Owner.Tell(new ConnectionGone("conn-a"));

        await CompleteDelete(node, "a1");
        await node.Queues.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(200));
        await AwaitQueues(node, "b1", "plain");
    }

    private static async Task AwaitQueues(Node node, params string[] expected)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            var names = Names((await node.Snapshot()).Queues);
            if (names.SequenceEqual(expected))
            {
                return;
            }
            Assert.True(DateTime.UtcNow < deadline, $"queues are [{string.Join(", ", names)}], expected [{string.Join(", ", expected)}]");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Queue_delete_asks_the_queue_then_drops_it_with_its_bindings()
    {
        var node = Start("delete-queue");
        Assert.Equal(new QueueDeleted("never", 0, 0), await node.Ask<QueueDeleted>(new DeleteQueue("never", true, true)));
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("q"), false, null));
        await node.Ask<TopologyOk>(new DeclareExchange(Exchange("ad", ExchangeKind.Fanout, autoDelete: true), false));
        await node.Ask<TopologyOk>(new Bind(ToQueue("ad", "q")));
        await node.Ask<TopologyOk>(new Bind(ToQueue("amq.topic", "q", "#")));

        node.Owner.Tell(new DeleteQueue("q", IfUnused: true, IfEmpty: true), node.Client.Ref);
        await CompleteDelete(node, "q", 12, ifUnused: true, ifEmpty: true);

        var deleted = await node.Client.ExpectMsgAsync<QueueDeleted>(Timeout);
        Assert.Equal(("q", 12u, 6L), (deleted.Name, deleted.MessageCount, deleted.Version));
        var snapshot = await node.Snapshot();
        Assert.Empty(snapshot.Queues);
        Assert.Empty(snapshot.Bindings);
        Assert.Empty(snapshot.Exchanges);
    }

    [Fact]
    public async Task Queue_delete_refused_by_the_queue_is_a_precondition_failure_and_keeps_the_queue()
    {
        var node = Start("delete-refused");
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("busy"), false, null));

        node.Owner.Tell(new DeleteQueue("busy", IfUnused: true, IfEmpty: false), node.Client.Ref);
        Assert.Equal(new DeleteQueueContent("busy", true, false), await node.Queues.ExpectMsgAsync<DeleteQueueContent>(Timeout));
        node.Queues.Reply(new QueueDeleteRefused("busy", "PRECONDITION_FAILED - queue 'busy' in vhost '/' in use"));

        var refused = await node.Client.ExpectMsgAsync<TopologyRefused>(Timeout);
        Assert.Equal(new TopologyRefused(406, "PRECONDITION_FAILED - queue 'busy' in vhost '/' in use"), refused);
        Assert.Equal(["busy"], Names((await node.Snapshot()).Queues));
    }

    [Fact]
    public async Task A_queue_that_never_answers_its_delete_is_reported_not_found_and_kept()
    {
        var node = Start("delete-timeout", deleteTimeout: TimeSpan.FromMilliseconds(300));
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("slow"), false, null));
        var refused = await node.Refused(new DeleteQueue("slow", false, false), 404);
        Assert.Equal("NOT_FOUND - home node of queue 'slow' in vhost '/' is down or inaccessible", refused.ReplyText);
        Assert.Equal(["slow"], Names((await node.Snapshot()).Queues));
    }

    [Fact]
    public async Task Commands_about_a_queue_being_deleted_wait_for_the_delete_while_others_are_served()
    {
        var node = Start("delete-serialized");
        var second = node.Probe("second-client");
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("q"), false, null));
        node.Owner.Tell(new DeleteQueue("q", false, false), node.Client.Ref);
        var delete = await node.Queues.ExpectMsgAsync<DeleteQueueContent>(Timeout);

        node.Owner.Tell(new Bind(ToQueue("amq.direct", "q", "k")), second.Ref);
        node.Owner.Tell(new DeclareExchange(Exchange("other"), false), second.Ref);
        // Answered while the bind before it still waits.
        Assert.Equal(2, (await second.ExpectMsgAsync<TopologyOk>(Timeout)).Version);

        node.Queues.Reply(new QueueContentDeleted(delete.Queue, 0));
        Assert.Equal(3, (await node.Client.ExpectMsgAsync<QueueDeleted>(Timeout)).Version);
        // Decided after the delete: the queue is gone.
        Assert.Equal("NOT_FOUND - no queue 'q' in vhost '/'", (await second.ExpectMsgAsync<TopologyRefused>(Timeout)).ReplyText);
    }

    [Fact]
    public async Task An_unused_queue_is_deleted_only_if_still_unused()
    {
        var node = Start("unused");
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("auto", autoDelete: true), false, null));
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("again", autoDelete: true), false, null));

        node.Owner.Tell(new QueueUnused("again"));
        Assert.Equal(new DeleteQueueContent("again", true, false), await node.Queues.ExpectMsgAsync<DeleteQueueContent>(Timeout));
        node.Queues.Reply(new QueueDeleteRefused("again", "PRECONDITION_FAILED - queue 'again' in vhost '/' in use"));

        node.Owner.Tell(new QueueUnused("auto"));
        await CompleteDelete(node, "auto", ifUnused: true);
        await AwaitQueues(node, "again");
        node.Owner.Tell(new QueueUnused("gone-already"));
        await node.Queues.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public async Task A_restarted_owner_keeps_everything_and_continues_the_versions_when_a_member_lived_on()
    {
        var first = Start("recover-1", [1, 2]);
        await first.Ask<TopologyOk>(new DeclareExchange(Exchange("durable-x", ExchangeKind.Topic), false));
        await first.Ask<TopologyOk>(new DeclareExchange(Exchange("transient-x", ExchangeKind.Fanout, durable: false), false));
        await first.Ask<QueueDeclared>(new DeclareQueue(Queue("durable-q", arguments: new QueueArguments(MaxLength: 10, DeadLetterExchange: "dlx")), false, null));
        await first.Ask<QueueDeclared>(new DeclareQueue(Queue("transient-q", durable: false), false, null));
        await first.Ask<TopologyOk>(new Bind(ToQueue("durable-x", "durable-q", "a.*")));
        await first.Ask<TopologyOk>(new Bind(ToQueue("transient-x", "transient-q")));
        var before = await first.Snapshot();
        await first.System.Terminate();

        // Member 2 was up before and still is: the owner merely moved.
        var second = Start("recover-2", [3, 2]);
        var after = await second.Snapshot();
        Structural.Equal(Sorted(before), Sorted(after));
        Assert.Equal(7, (await second.Ask<TopologyOk>(new DeclareExchange(Exchange("next"), false))).Version);
        await second.Queues.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(200));
    }

    private static TopologySnapshot Sorted(TopologySnapshot s) => s with
    {
        Exchanges = [.. s.Exchanges.OrderBy(x => x.Name, StringComparer.Ordinal)],
        Queues = [.. s.Queues.OrderBy(q => q.Name, StringComparer.Ordinal)],
        Bindings = [.. s.Bindings.OrderBy(b => b.Source + "|" + b.Destination + "|" + b.RoutingKey, StringComparer.Ordinal)],
    };

    [Fact]
    public async Task After_a_restart_of_the_whole_cluster_only_durable_definitions_remain()
    {
        var first = Start("restart-1", [1, 2]);
        await first.Ask<TopologyOk>(new DeclareExchange(Exchange("durable-x", ExchangeKind.Topic), false));
        await first.Ask<TopologyOk>(new DeclareExchange(Exchange("transient-x", ExchangeKind.Fanout, durable: false), false));
        await first.Ask<QueueDeclared>(new DeclareQueue(Queue("durable-q"), false, null));
        await first.Ask<QueueDeclared>(new DeclareQueue(Queue("transient-q", durable: false), false, null));
        await first.Ask<QueueDeclared>(new DeclareQueue(Queue("exclusive-q", exclusiveOwner: "conn-1"), false, null));
        await first.Ask<TopologyOk>(new Bind(ToQueue("durable-x", "durable-q", "a.*")));
        await first.Ask<TopologyOk>(new Bind(ToQueue("durable-x", "transient-q", "#")));
        await first.Ask<TopologyOk>(new Bind(ToQueue("transient-x", "durable-q")));
        await first.Ask<TopologyOk>(new Bind(ToExchange("durable-x", "transient-x")));
        await first.System.Terminate();

        var second = Start("restart-2", [5, 6]);
        // The queue entities are told to drop their content; the definitions are gone already.
        var deletes = new[]
        {
            await second.Queues.ExpectMsgAsync<DeleteQueueContent>(Timeout),
            await second.Queues.ExpectMsgAsync<DeleteQueueContent>(Timeout),
        };
        Assert.Equal(["exclusive-q", "transient-q"], deletes.Select(d => d.Queue).Order(StringComparer.Ordinal));
        Assert.All(deletes, d => Assert.False(d.IfUnused || d.IfEmpty));

        var snapshot = await second.Snapshot();
        Assert.Equal(["durable-x"], Names(snapshot.Exchanges));
        Assert.Equal(["durable-q"], Names(snapshot.Queues));
        Assert.Equal([ToQueue("durable-x", "durable-q", "a.*")], snapshot.Bindings);
        // 9 changes, then 3 removals (transient-x, transient-q, exclusive-q).
        Assert.Equal(12, snapshot.Version);
        await second.System.Terminate();

        // Members 5 and 6 are now the ones seen: a third start with 6 up is not a restart of the cluster.
        var third = Start("restart-3", [6]);
        Assert.Equal(12, (await third.Snapshot()).Version);
    }

    [Fact]
    public async Task The_connection_of_an_exclusive_queue_is_watched_again_after_recovery()
    {
        // One system name for both, so the recorded path resolves in the second system (to nothing), as a
        // connection's path on a node that restarted does.
        var first = Start("rewatch", [1]);
        var connection = first.Probe("connection");
        await first.Ask<QueueDeclared>(new DeclareQueue(Queue("ex", durable: false, exclusiveOwner: "conn-1"), false, connection.Ref));
        await first.System.Terminate();

        // Same member: the transient queue stays, but its connection died with the first system.
        var second = Start("rewatch", [1]);
        await CompleteDelete(second, "ex");
        await AwaitQueues(second);
    }

    [Fact]
    public async Task Snapshots_cover_the_journal_and_recovery_from_them_continues_the_versions()
    {
        var first = Start("snapshots", snapshotEvery: 4);
        for (var i = 0; i < 10; i++)
        {
            await first.Ask<QueueDeclared>(new DeclareQueue(Queue("q" + i), false, null));
        }
        await first.Ask<TopologyOk>(new Bind(ToQueue("amq.direct", "q3", "k")));
        var deadline = DateTime.UtcNow + Timeout;
        while (await CountRows("snapshot") == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "no topology snapshot was saved");
            await Task.Delay(50);
        }
        var before = await first.Snapshot();
        await first.System.Terminate();

        var second = Start("snapshots-2", snapshotEvery: 4);
        Structural.Equal(Sorted(before), Sorted(await second.Snapshot()));
        Assert.Equal(12, (await second.Ask<TopologyOk>(new Unbind(ToQueue("amq.direct", "q3", "k")))).Version);
    }

    [Fact]
    public async Task Journal_rows_are_written_by_the_broker_serializer_with_topology_manifests()
    {
        var node = Start("journal");
        var connection = node.Probe("connection");
        await node.Ask<QueueDeclared>(new DeclareQueue(Queue("ex", exclusiveOwner: "c"), false, connection.Ref));
        await node.System.Terminate();

        await using var db = new SqliteConnection(ConnectionString);
        await db.OpenAsync();
        await using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT serializer_id, manifest FROM event_journal WHERE persistence_id = 'amqp-topology' ORDER BY sequence_nr";
        var rows = new List<(long, string)>();
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                rows.Add((reader.GetInt64(0), reader.GetString(1)));
            }
        }
        Assert.Equal([(7301L, "T:MS.1"), (7301L, "T:QO.1"), (7301L, "T:C.1")], rows);
    }

    private async Task<long> CountRows(string table)
    {
        await using var db = new SqliteConnection(ConnectionString);
        await db.OpenAsync();
        await using var cmd = db.CreateCommand();
        cmd.CommandText = $"SELECT COUNT(*) FROM {table} WHERE persistence_id = 'amqp-topology'";
        return (long)(await cmd.ExecuteScalarAsync())!;
    }
}
