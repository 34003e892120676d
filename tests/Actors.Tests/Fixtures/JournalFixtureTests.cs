using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.TestKit;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Queues;
using Broker.Actors.Amqp.Topology;
using Broker.Actors.Configuration;
using Broker.Actors.Messages;
using Broker.Actors.Retained;
using Broker.Actors.Routing;
using Broker.Actors.Serialization;
using Broker.Actors.Sessions;

namespace Broker.Actors.Tests.Fixtures;

/// <summary>
/// Journals written by released versions (committed under Fixtures/) still read: every row decodes to the values it
/// was written with, and the real entities recover their state from a copy of the SQLite file. A change that breaks
/// reading existing data fails here.
/// </summary>
public sealed class JournalFixtureTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);
    private readonly SqliteJournalFolder _db = new("journal-fixture");
    private ActorSystem? _system;

    /// <summary>Formats with a committed fixture: 0 is the unversioned format every build before versioning wrote.</summary>
    public static TheoryData<int> Formats() => [0, 1];

    private static string FixturePath(int format, string extension) =>
        Path.Combine(AppContext.BaseDirectory, "Fixtures", $"journal-v{format}.{extension}");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_system is not null)
        {
            await _system.Terminate();
        }
        _db.Dispose();
    }

    /// <summary>An actor system named as the writer's (its actor paths resolve), journaling to a copy of the fixture.</summary>
    private ActorSystem StartOnCopy(int format)
    {
        File.Copy(FixturePath(format, "db"), _db.DbFile);
        var clusterHocon = ConfigurationFactory.ParseString(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "cluster.hocon")));
        _system = ActorSystem.Create(JournalFixture.SystemName, _db.SystemConfig().WithFallback(clusterHocon));
        return _system;
    }

    private TestProbe Probe() => new(_system!, new Akka.TestKit.Xunit2.XunitAssertions());

    private static string Key(bool snapshot, string persistenceId, long seq) => $"{(snapshot ? "snapshot" : "journal")} {persistenceId} {seq}";

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task Every_row_decodes_to_the_values_it_was_written_with(int format)
    {
        var stored = await JournalFixtureWriter.ReadRowsAsync(FixturePath(format, "db"));
        // The text rendering in the repository is the database's content, so a review of the text is a review of the data.
        Assert.Equal(await File.ReadAllLinesAsync(FixturePath(format, "rows.txt")), stored.Select(r => r.ToLine()));

        var system = StartOnCopy(format);
        var owner = system.ActorOf(Props.Empty, JournalFixture.OwnerName);
        var expected = JournalFixture.Rows(owner);
        Assert.Equal(
            expected.Select(r => Key(r.Snapshot, r.PersistenceId, r.Seq)).Order(StringComparer.Ordinal),
            stored.Select(r => Key(r.Snapshot, r.PersistenceId, r.Seq)).Order(StringComparer.Ordinal));
        foreach (var row in expected)
        {
            var key = Key(row.Snapshot, row.PersistenceId, row.Seq);
            var s = stored.Single(x => Key(x.Snapshot, x.PersistenceId, x.Seq) == key);
            var manifest = format == 0 ? row.Manifest : $"{row.Manifest}.{format}";
            Assert.True(manifest == s.Manifest, $"{key}: manifest '{s.Manifest}', expected '{manifest}'");
            Assert.True(s.SerializerId == 7301, $"{key}: serializer {s.SerializerId}");
            var decoded = system.Serialization.Deserialize(s.Bytes, s.SerializerId, s.Manifest);
            Assert.True(Json(row.Value) == Json(decoded), $"{key}: decoded\n{Json(decoded)}\nexpected\n{Json(row.Value)}");
        }
    }

    [Fact]
    public void The_fixture_holds_every_persisted_type_and_the_newest_format_has_one()
    {
        var persisted = typeof(IPersisted).Assembly.GetTypes()
            .Where(t => typeof(IPersisted).IsAssignableFrom(t) && t is { IsClass: true, IsAbstract: false })
            .Select(t => t.Name).Order(StringComparer.Ordinal);
        var inFixture = JournalFixture.Rows(ActorRefs.Nobody).Select(r => r.Value.GetType().Name).Distinct().Order(StringComparer.Ordinal);
        Assert.Equal(persisted, inFixture);
        Assert.Contains(BrokerSerializer.JournalFormat, ((IEnumerable<object[]>)Formats()).Select(f => (int)f[0]));
        Assert.True(File.Exists(FixturePath(BrokerSerializer.JournalFormat, "db")), "the format this build writes has no fixture: run Regenerate_the_journal_fixture");
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task A_persistent_session_recovers_its_subscriptions_and_resends_its_messages_on_reconnect(int format)
    {
        var system = StartOnCopy(format);
        var routes = Probe();
        var index = Probe();
        var services = new BrokerServices(system, BrokerSettings.From(system.Settings.Config), new SubscriptionTrie(), index.Ref, routes.Ref, await CatalogAsync(system));
        var session = system.ActorOf(SessionActor.Props(services), "fix-a");

        // Recovery alone: the session asserts its subscriptions (the shared one as disconnected) and reports its content.
        var asserted = await routes.ExpectMsgAsync<AssertRoutes>(Timeout);
        Assert.Equal("fix-a", asserted.Routes.ClientId);
        Assert.Equal(["$share/g/alerts/#:False", "sensors/+/temp:False"], asserted.Routes.Entries.Select(e => $"{e.Filter}:{e.Connected}"));
        var probe = Probe();
        session.Tell(GetSessionInfo.Instance, probe.Ref);
        var info = await probe.ExpectMsgAsync<SessionInfo>(Timeout);
        Assert.Equal(
            ("fix-a", false, (byte)5, uint.MaxValue, (long?)JournalFixture.DisconnectedAt, false, 2, 1),
            (info.ClientId, info.Connected, info.ProtocolLevel, info.ExpiryInterval, info.DisconnectedAtMs, info.HasWill, info.InflightCount, info.OfflineQueueDepth));
        Assert.Equal(Json(new[] { JournalFixture.SharedSub, JournalFixture.SensorSub }), Json(info.Subscriptions.ToArray()));

        // The client comes back: QoS 1 in flight again with DUP (all its MQTT 5 properties intact), the QoS 2 one past PUBREC
        // as PUBREL, then the queued message.
        var connection = Probe();
        session.Tell(new Connect("fix-a", "conn-2", JournalFixture.ConnectA with { Will = null }, connection.Ref), connection.Ref);
        var reassert = await routes.ExpectMsgAsync<AssertRoutes>(Timeout);
        if (reassert.Token != 0)
        {
            session.Tell(new RoutesAsserted(reassert.Token), routes.Ref);
        }
        var accepted = await connection.ExpectMsgAsync<ConnectAccepted>(Timeout);
        Assert.True(accepted.SessionPresent);
        Assert.Equal([7], accepted.PendingInboundQos2);
        var resent = await connection.ExpectMsgAsync<SendPublish>(Timeout);
        Assert.Equal(Json(new SendPublish(1, 1, false, true, JournalFixture.Mqtt5Message, [7])), Json(resent));
        Assert.Equal(2, (await connection.ExpectMsgAsync<SendPubRel>(Timeout)).PacketId);
        var queued = await connection.ExpectMsgAsync<SendPublish>(Timeout);
        Assert.Equal((false, JournalFixture.LaterMessage.Topic, JournalFixture.LaterMessage.Id), (queued.Dup, queued.Message.Topic, queued.Message.Id));

        // The connection sends its CONNECT again (it had no answer within a second, e.g. the first went to a node that
        // died): the same acceptance, and nothing is connected, resent or written twice.
        session.Tell(new Connect("fix-a", "conn-2", JournalFixture.ConnectA with { Will = null }, connection.Ref), connection.Ref);
        Assert.Equal(Json(accepted), Json(await connection.ExpectMsgAsync<ConnectAccepted>(Timeout)));
        await connection.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(300));
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task A_session_recovers_from_its_snapshot_and_the_events_after_it(int format)
    {
        var system = StartOnCopy(format);
        var routes = Probe();
        var services = new BrokerServices(system, BrokerSettings.From(system.Settings.Config), new SubscriptionTrie(), Probe().Ref, routes.Ref, await CatalogAsync(system));
        var session = system.ActorOf(SessionActor.Props(services), "fix-b");

        Assert.Equal(["b/#"], (await routes.ExpectMsgAsync<AssertRoutes>(Timeout)).Routes.Entries.Select(e => e.Filter));
        var probe = Probe();
        session.Tell(GetSessionInfo.Instance, probe.Ref);
        var info = await probe.ExpectMsgAsync<SessionInfo>(Timeout);
        // The will stored in the snapshot was cleared by the event after it; the queue holds the snapshot's message and the later one.
        Assert.Equal(((byte)4, false, 0, 2, (long?)JournalFixture.DisconnectedAt + 1), (info.ProtocolLevel, info.HasWill, info.InflightCount, info.OfflineQueueDepth, info.DisconnectedAtMs));
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task The_retained_store_recovers_from_its_snapshot_and_the_events_after_it(int format)
    {
        var system = StartOnCopy(format);
        var store = system.ActorOf(Props.Create(() => new RetainedStoreActor(RetainedLimits.None)), "retained");
        var probe = Probe();

        store.Tell(new QueryRetained("#"), probe.Ref);

        var answer = await probe.ExpectMsgAsync<RetainedMessages>(Timeout);
        Assert.True(answer.Last);
        Assert.Equal(Json(new[] { JournalFixture.RetainedGarden, JournalFixture.RetainedKitchen }), Json(answer.Messages.ToArray()));
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task A_durable_queue_recovers_its_definition_and_messages(int format)
    {
        var system = StartOnCopy(format);
        var queue = system.ActorOf(QueueActor.Props(QueueSettings.Default, Probe().Ref, new NoDeadLetters()), "orders-q");
        var channel = Probe();

        queue.Tell(new EnsureQueue(JournalFixture.OrdersQueue), channel.Ref);
        var ready = await channel.ExpectMsgAsync<QueueReady>(Timeout);
        Assert.Equal(2u, ready.MessageCount);
        var got = new List<QueueDelivery>();
        for (var i = 0; i < 2; i++)
        {
            queue.Tell(new GetMessage("orders-q", new ChannelRef(channel.Ref, 1), NoAck: false), channel.Ref);
            got.Add(await channel.ExpectMsgAsync<QueueDelivery>(Timeout));
        }
        queue.Tell(new GetMessage("orders-q", new ChannelRef(channel.Ref, 1), NoAck: false), channel.Ref);
        await channel.ExpectMsgAsync<GetEmpty>(Timeout);

        Assert.Equal([1u, 0u], got.Select(d => d.MessageCount));
        Assert.All(got, d => Assert.True(d.Redelivered));
        Assert.Equal(Json(new[] { JournalFixture.Order3.Message, JournalFixture.Order4.Message }), Json(got.Select(d => d.Message).ToArray()));
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task The_topology_owner_recovers_exchanges_queues_and_bindings(int format)
    {
        var system = StartOnCopy(format);
        // The member the fixture's owner saw is up again: nothing transient is dropped.
        var member = new UniqueAddress(new Address("akka.tcp", JournalFixture.SystemName, "localhost", 2552), (int)JournalFixture.MemberUid);
        var owner = system.ActorOf(TopologyOwner.Props(Probe().Ref, 500, members: [member]), "topology");
        var replica = Probe();

        owner.Tell(new TopologySyncRequest(replica.Ref, -1), replica.Ref);

        var snapshot = await replica.ExpectMsgAsync<TopologySnapshot>(Timeout);
        Assert.Equal(
            Json(new TopologySnapshot(9, [JournalFixture.OrdersExchange], [JournalFixture.OrdersQueue], [JournalFixture.OrdersBinding])),
            Json(snapshot));
    }

    [Fact]
    public async Task An_entity_whose_journal_holds_a_newer_format_refuses_to_recover_and_leaves_it_as_it_is()
    {
        var system = StartOnCopy(BrokerSerializer.JournalFormat);
        var newer = $"E5.{BrokerSerializer.JournalFormat + 1}";
        await SetManifest("session-fix-a", 5, newer);
        var services = new BrokerServices(system, BrokerSettings.From(system.Settings.Config), new SubscriptionTrie(), Probe().Ref, Probe().Ref, await CatalogAsync(system));
        var watcher = Probe();

        var session = system.ActorOf(SessionActor.Props(services), "fix-a");
        watcher.Watch(session);

        await watcher.ExpectTerminatedAsync(session, Timeout);
        var rows = (await JournalFixtureWriter.ReadRowsAsync(_db.DbFile)).Where(r => r is { Snapshot: false, PersistenceId: "session-fix-a" }).ToList();
        Assert.Equal(17, rows.Count);
        Assert.Equal(newer, rows.Single(r => r.Seq == 5).Manifest);
    }

    /// <summary>
    /// The session catalog on the copied fixture: builds before it kept none, so creating it lists the sessions of the
    /// journal (as on the first start of an upgraded node), which is what lets them recover.
    /// </summary>
    private async Task<IActorRef> CatalogAsync(ActorSystem system)
    {
        var store = new SessionCatalogStore("sqlite", _db.ConnectionString);
        Assert.True(await store.InitializeAsync() >= 2);
        return system.ActorOf(SessionCatalog.Props(store, "test-host"), SessionCatalog.Name);
    }

    private async Task SetManifest(string persistenceId, long seq, string manifest)
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection(_db.ConnectionString);
        await connection.OpenAsync();
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "UPDATE event_journal SET manifest = $m WHERE persistence_id = $id AND sequence_nr = $seq";
        cmd.Parameters.AddWithValue("$m", manifest);
        cmd.Parameters.AddWithValue("$id", persistenceId);
        cmd.Parameters.AddWithValue("$seq", seq);
        Assert.Equal(1, await cmd.ExecuteNonQueryAsync());
    }

    /// <summary>Rewrites the fixture of the format this build writes; opt-in (see Fixtures/README.md), never part of a normal run.</summary>
    [RegenerateFixtureFact]
    public async Task Regenerate_the_journal_fixture()
    {
        const int format = BrokerSerializer.JournalFormat;
        var folder = Path.Combine(Repository.Root(), "tests", "Actors.Tests", "Fixtures");
        await JournalFixtureWriter.WriteAsync(_db, ConfigurationFactory.ParseString($"broker.persistence.format-version = {format}"),
            Path.Combine(folder, $"journal-v{format}.db"), Path.Combine(folder, $"journal-v{format}.rows.txt"));
    }

    private sealed class NoDeadLetters : IDeadLetterPublisher
    {
        public void Publish(AmqpMessage original, string queue, string reason, string exchange, string routingKey) =>
            throw new InvalidOperationException("nothing in the fixture is dead-lettered");
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { Converters = { new ActorRefAsPath(), new RuntimeType<TopologyChange>() } };

    /// <summary>Every field of a value, nested ones included (a topology change with its own fields, an actor by its path).</summary>
    private static string Json(object value) => value.GetType().Name + JsonSerializer.Serialize(value, value.GetType(), JsonOptions);

    private sealed class ActorRefAsPath : JsonConverter<IActorRef>
    {
        public override IActorRef Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => throw new NotSupportedException();

        public override void Write(Utf8JsonWriter writer, IActorRef value, JsonSerializerOptions options) =>
            writer.WriteStringValue(value.Path.ToStringWithoutAddress());
    }

    private sealed class RuntimeType<T> : JsonConverter<T>
        where T : class
    {
        public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => throw new NotSupportedException();

        public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options)
        {
            writer.WriteStartObject();
            writer.WriteString("$type", value.GetType().Name);
            writer.WritePropertyName("value");
            JsonSerializer.Serialize(writer, value, value.GetType(), options);
            writer.WriteEndObject();
        }
    }
}

/// <summary>A fact that runs only when BROKER_WRITE_FIXTURES=1: it rewrites files in the repository.</summary>
public sealed class RegenerateFixtureFactAttribute : FactAttribute
{
    public RegenerateFixtureFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("BROKER_WRITE_FIXTURES") != "1")
        {
            Skip = "rewrites tests/Actors.Tests/Fixtures; run with BROKER_WRITE_FIXTURES=1";
        }
    }
}
