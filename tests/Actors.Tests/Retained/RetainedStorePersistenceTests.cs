using System.Text;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Broker.Actors.Messages;
using Broker.Actors.Retained;
using Broker.Actors.Sessions;
using Microsoft.Data.Sqlite;

namespace Broker.Actors.Tests.Retained;

/// <summary>The retained store journals to a real SQLite file and comes back from it in a new actor system.</summary>
public sealed class RetainedStorePersistenceTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);
    private readonly SqliteJournalFolder _db = new("retained-test");
    private readonly List<ActorSystem> _systems = [];

    private string DbFile => _db.DbFile;

    private string ConnectionString => _db.ConnectionString;

    private Config SystemConfig() => _db.SystemConfig();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var s in _systems)
        {
            await s.Terminate();
        }
        _db.Dispose();
    }

    private (ActorSystem System, IActorRef Store, TestProbe Probe) Start(string name, RetainedLimits? limits = null)
    {
        var system = ActorSystem.Create(name, SystemConfig());
        _systems.Add(system);
        var store = system.ActorOf(Props.Create(() => new RetainedStoreActor(limits ?? RetainedLimits.None)), "retained");
        var probe = new TestProbe(system, new Akka.TestKit.Xunit2.XunitAssertions());
        return (system, store, probe);
    }

    private async Task<long> CountSnapshots()
    {
        await using var db = new SqliteConnection(ConnectionString);
        await db.OpenAsync();
        await using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM snapshot WHERE persistence_id = 'retained'";
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    private static PublishedMessage Msg(string topic, string payload) => new(topic, Encoding.UTF8.GetBytes(payload), 1, true);

    private static async Task Store(IActorRef store, TestProbe probe, PublishedMessage m, long correlation)
    {
        store.Tell(new StoreRetained(m, correlation), probe.Ref);
        var ack = await probe.ExpectMsgAsync<DeliverAck>(Timeout);
        Assert.Equal(correlation, ack.Correlation);
    }

    private static async Task<IReadOnlyList<PublishedMessage>> Query(IActorRef store, TestProbe probe, string filter)
    {
        store.Tell(new QueryRetained(filter), probe.Ref);
        var all = new List<PublishedMessage>();
        RetainedMessages chunk;
        do
        {
            chunk = await probe.ExpectMsgAsync<RetainedMessages>(Timeout);
            Assert.Equal(filter, chunk.Filter);
            all.AddRange(chunk.Messages);
        }
        while (!chunk.Last);
        return all;
    }

    private static string[] Show(IReadOnlyList<PublishedMessage> messages) =>
        [.. messages.Select(m => m.Topic + "=" + Encoding.UTF8.GetString(m.Payload))];

    [Fact]
    public async Task Retained_messages_are_stored_replaced_deleted_queried_and_recovered_after_restart()
    {
        var (system, store, probe) = Start("retained-first");
        var rich = new PublishedMessage("home/kitchen/temp", Encoding.UTF8.GetBytes("21.5"), 2, true, "text/plain", "reply/here",
            [1, 2, 3], 1, DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeMilliseconds(), [new UserProperty("unit", "C")], "sensor-1");

        await Store(store, probe, rich, 1);
        await Store(store, probe, Msg("home/hall/temp", "19"), 2);
        await Store(store, probe, Msg("home/hall/light", "on"), 3);
        await Store(store, probe, Msg("garden/temp", "8"), 4);
        await Store(store, probe, Msg("home/hall/temp", "20"), 5);                 // replace
        await Store(store, probe, Msg("home/hall/light", ""), 6);                  // empty payload deletes
        await Store(store, probe, Msg("never/there", ""), 7);                      // deleting an unknown topic is fine
        await Store(store, probe, Msg("old/news", "x") with { ExpiresAtUnixMs = 1 }, 8);

        Assert.Equal(["garden/temp=8", "home/hall/temp=20", "home/kitchen/temp=21.5"], Show(await Query(store, probe, "#")));
        Assert.Equal(["home/hall/temp=20", "home/kitchen/temp=21.5"], Show(await Query(store, probe, "home/+/temp")));
        Assert.Equal(["garden/temp=8"], Show(await Query(store, probe, "+/temp")));
        Assert.Equal(["home/hall/temp=20"], Show(await Query(store, probe, "$share/g/home/hall/#")));
        Assert.Empty(await Query(store, probe, "home/hall/light"));
        Assert.Empty(await Query(store, probe, "old/#"));

        await system.Terminate();

        var (_, store2, probe2) = Start("retained-second");
        var recovered = await Query(store2, probe2, "#");
        Assert.Equal(["garden/temp=8", "home/hall/temp=20", "home/kitchen/temp=21.5"], Show(recovered));
        Structural.Equal(rich, recovered.Single(m => m.Topic == rich.Topic));
        Assert.Empty(await Query(store2, probe2, "home/hall/light"));
    }

    [Fact]
    public async Task Journal_rows_are_written_by_the_broker_serializer_with_short_manifests()
    {
        var (system, store, probe) = Start("retained-journal");
        await Store(store, probe, Msg("a/b", "1"), 1);
        await Store(store, probe, Msg("a/b", ""), 2);
        await system.Terminate();

        await using var db = new SqliteConnection(ConnectionString);
        await db.OpenAsync();
        await using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT serializer_id, manifest FROM event_journal WHERE persistence_id = 'retained' ORDER BY sequence_nr";
        var rows = new List<(long Identifier, string Manifest)>();
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                rows.Add((reader.GetInt64(0), reader.GetString(1)));
            }
        }
        Assert.Equal([(7301L, "R1.1"), (7301L, "R2.1")], rows);
    }

    [Fact]
    public async Task A_query_matching_more_than_a_chunk_is_answered_in_chunks_in_topic_order()
    {
        var (_, store, probe) = Start("retained-chunks");
        for (var i = 0; i < 5; i++)
        {
            await Store(store, probe, new PublishedMessage($"big/{i}", new byte[700 * 1024], 1, true), i + 1);
        }

        store.Tell(new QueryRetained("big/#"), probe.Ref);

        var chunks = new List<RetainedMessages>();
        do
        {
            chunks.Add(await probe.ExpectMsgAsync<RetainedMessages>(Timeout));
        }
        while (!chunks[^1].Last);
        // 700 KiB each: two never share a 1 MiB chunk.
        Assert.Equal(5, chunks.Count);
        Assert.Equal(["big/0", "big/1", "big/2", "big/3", "big/4"], chunks.SelectMany(c => c.Messages).Select(m => m.Topic));
    }

    [Fact]
    public async Task Beyond_the_message_limit_a_new_topic_is_refused_while_replacing_and_deleting_pass()
    {
        var (_, store, probe) = Start("retained-count", new RetainedLimits(2, long.MaxValue));
        await Store(store, probe, Msg("a", "1"), 1);
        await Store(store, probe, Msg("b", "1"), 2);

        store.Tell(new StoreRetained(Msg("c", "1"), 3), probe.Ref);
        Assert.Equal(3, (await probe.ExpectMsgAsync<RetainedRefused>(Timeout)).Correlation);
        await Store(store, probe, Msg("a", "2"), 4);
        await Store(store, probe, Msg("b", ""), 5);
        await Store(store, probe, Msg("c", "1"), 6);

        Assert.Equal(["a=2", "c=1"], Show(await Query(store, probe, "#")));
    }

    [Fact]
    public async Task Beyond_the_byte_limit_a_larger_message_is_refused_and_a_smaller_replacement_passes()
    {
        // Topic and payload bytes: "a" + 10 = 11, "b" + 10 = 11.
        var (_, store, probe) = Start("retained-bytes", new RetainedLimits(int.MaxValue, 25));
        await Store(store, probe, Msg("a", new string('x', 10)), 1);
        await Store(store, probe, Msg("b", new string('x', 10)), 2);

        store.Tell(new StoreRetained(Msg("a", new string('x', 14)), 3), probe.Ref);
        Assert.Equal(3, (await probe.ExpectMsgAsync<RetainedRefused>(Timeout)).Correlation);
        store.Tell(new StoreRetained(Msg("c", "xxxx"), 4), probe.Ref);
        Assert.Equal(4, (await probe.ExpectMsgAsync<RetainedRefused>(Timeout)).Correlation);
        await Store(store, probe, Msg("a", new string('x', 13)), 5);
        await Store(store, probe, Msg("a", "x"), 6);
        await Store(store, probe, Msg("c", "xxxx"), 7);

        Assert.Equal(["a=x", "b=" + new string('x', 10), "c=xxxx"], Show(await Query(store, probe, "#")));
    }

    [Fact]
    public async Task Store_without_correlation_is_not_acknowledged_but_is_kept()
    {
        var (_, store, probe) = Start("retained-silent");
        store.Tell(new StoreRetained(Msg("quiet", "1"), 0), probe.Ref);
        Assert.Equal(["quiet=1"], Show(await Query(store, probe, "quiet")));
        // Write callbacks run in order: the next acknowledgement the probe sees must be this one's.
        await Store(store, probe, Msg("loud", "2"), 5);
    }

    [Fact]
    public async Task Snapshot_after_many_writes_still_recovers_every_topic()
    {
        var (system, store, probe) = Start("retained-snap");
        const int n = 1100;
        for (var i = 0; i < n; i++)
        {
            store.Tell(new StoreRetained(Msg("bulk/" + i, "v" + i), i + 1), probe.Ref);
        }
        for (var i = 0; i < n; i++)
        {
            await probe.ExpectMsgAsync<DeliverAck>(Timeout);
        }
        await Store(store, probe, Msg("bulk/0", ""), n + 1);
        await Store(store, probe, Msg("bulk/1", "changed"), n + 2);
        // The snapshot is saved in the background once 1000 events are durable: wait for its row.
        var deadline = DateTime.UtcNow + Timeout;
        while (await CountSnapshots() == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "no snapshot of the retained store was saved");
            await Task.Delay(50);
        }
        await system.Terminate();

        var (_, store2, probe2) = Start("retained-snap-2");
        var recovered = await Query(store2, probe2, "bulk/#");
        Assert.Equal(n - 1, recovered.Count);
        Assert.DoesNotContain(recovered, m => m.Topic == "bulk/0");
        Assert.Equal("changed", Encoding.UTF8.GetString(recovered.Single(m => m.Topic == "bulk/1").Payload));
        Assert.Equal("v1099", Encoding.UTF8.GetString(recovered.Single(m => m.Topic == "bulk/1099").Payload));
    }
}
