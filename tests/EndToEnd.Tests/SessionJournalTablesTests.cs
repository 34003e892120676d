using Akka.Actor;
using Akka.Persistence;
using Broker.Actors.Sessions;
using Broker.Tests.Shared;
using Microsoft.Data.Sqlite;

namespace Broker.EndToEnd.Tests;

/// <summary>
/// Session journals written with plain SQL (<see cref="SessionJournalTables"/> through <see cref="SessionCatalogStore"/>)
/// on the tables a real node's Akka.Persistence.Sql created, on a real SQLite file and a real PostgreSQL database; and
/// read back by Akka.Persistence.Sql itself, as a build that journals sessions through it would.
/// </summary>
public sealed class SessionJournalTablesTests
{
    private static async Task<(TestNode Node, SessionCatalogStore Store, Func<Task> Cleanup)> StartAsync(string provider)
    {
        var db = await TestDatabase.CreateAsync(provider);
        var node = await TestNode.StartAsync(database: db);
        var connection = provider == "postgresql"
            ? db.ConnectionString!
            : new SqliteConnectionStringBuilder { DataSource = Path.Combine(node.DataDir, "broker.db"), Pooling = false }.ToString();
        return (node, new SessionCatalogStore(provider, connection), async () =>
        {
            await node.DisposeAsync();
            node.DeleteData();
            await db.DisposeAsync();
        });
    }

    private static StoredBlob Blob(ActorSystem system, object value)
    {
        var serializer = system.Serialization.FindSerializerFor(value);
        return new StoredBlob(serializer.ToBinary(value), Akka.Serialization.Serialization.ManifestFor(serializer, value), serializer.Identifier);
    }

    private static object Read(ActorSystem system, StoredBlob blob) => system.Serialization.Deserialize(blob.Payload, blob.SerializerId, blob.Manifest);

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Journals_are_written_in_batches_loaded_together_and_keep_their_numbering_after_deletion(string provider)
    {
        var (node, store, cleanup) = await StartAsync(provider);
        try
        {
            var system = node.Node.System;
            var a = "tables-a-" + Guid.NewGuid().ToString("N")[..8];
            var b = "tables-b-" + Guid.NewGuid().ToString("N")[..8];
            string Pid(string id) => SessionJournal.PersistenceIdOf(id);
            StoredBlob Sub(string filter) => Blob(system, new SubscriptionAdded(new Subscription(filter, 1)));

            // Two sessions' events in one transaction, loaded in one go; an unknown ID loads empty.
            await store.WriteAsync([], [new JournalAppend(Pid(a), 1, [Sub("a/1"), Sub("a/2")]), new JournalAppend(Pid(b), 1, [Sub("b/1")]),
                new JournalAppend(Pid(a), 3, [Sub("a/3")])]);
            var loaded = await store.LoadJournalsAsync([a, b, "tables-none"]);
            Assert.Equal([1L, 2, 3], loaded[a].Events.Select(e => e.SequenceNr));
            Assert.Equal(["a/1", "a/2", "a/3"], loaded[a].Events.Select(e => ((SubscriptionAdded)Read(system, e.Event)).Subscription.Filter));
            Assert.Equal(3, loaded[a].HighestSequenceNr);
            Assert.Equal(1, loaded[b].HighestSequenceNr);
            Assert.Empty(loaded["tables-none"].Events);
            Assert.Equal(0, loaded["tables-none"].HighestSequenceNr);

            // A number already taken (a stale copy of the session) fails the whole transaction: b's event is not written either.
            await Assert.ThrowsAnyAsync<Exception>(() => store.WriteAsync([], [new JournalAppend(Pid(b), 2, [Sub("b/2")]), new JournalAppend(Pid(a), 3, [Sub("stale")])]));
            loaded = await store.LoadJournalsAsync([a, b]);
            Assert.Equal(3, loaded[a].Events.Count);
            Assert.Equal(1, loaded[b].HighestSequenceNr);

            // A snapshot replaces what came before it; later events follow it.
            var state = SessionState.Empty(a).Apply(new SubscriptionAdded(new Subscription("snap", 1)));
            await store.WriteAsync([], [new JournalSnapshotSave(Pid(a), 3, Blob(system, state)), new JournalAppend(Pid(a), 4, [Sub("a/4")])]);
            loaded = await store.LoadJournalsAsync([a]);
            Assert.Equal(3, loaded[a].SnapshotSequenceNr);
            Assert.Contains("snap", ((SessionState)Read(system, loaded[a].Snapshot!)).Subscriptions.Keys);
            Assert.Equal([4L], loaded[a].Events.Select(e => e.SequenceNr));
            Assert.Equal(4, loaded[a].HighestSequenceNr);

            // Erasing leaves no event and no snapshot, but the numbering goes on: the old highest number stays taken.
            await store.WriteAsync([], [new JournalErase(Pid(a), 4)]);
            loaded = await store.LoadJournalsAsync([a]);
            Assert.Null(loaded[a].Snapshot);
            Assert.Empty(loaded[a].Events);
            Assert.Equal(4, loaded[a].HighestSequenceNr);
            await Assert.ThrowsAnyAsync<Exception>(() => store.WriteAsync([], [new JournalAppend(Pid(a), 4, [Sub("stale")])]));
            await store.WriteAsync([], [new JournalAppend(Pid(a), 5, [Sub("again")])]);

            // What this wrote, Akka.Persistence.Sql reads: the plugin's own recovery of b and a.
            Assert.Equal(["b/1"], await RecoverAsync(system, Pid(b)));
            Assert.Equal(["again"], await RecoverAsync(system, Pid(a)));
        }
        finally
        {
            await cleanup();
        }
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task A_refused_write_fails_only_its_own_session_and_its_later_writes_in_the_batch(string provider)
    {
        var (node, store, cleanup) = await StartAsync(provider);
        try
        {
            var system = node.Node.System;
            var catalog = system.ActorOf(SessionCatalog.Props(store, "test-host"));
            var a = "refused-a-" + Guid.NewGuid().ToString("N")[..8];
            var b = "refused-b-" + Guid.NewGuid().ToString("N")[..8];
            StoredBlob Sub(string filter) => Blob(system, new SubscriptionAdded(new Subscription(filter, 1)));
            // Another copy of session a already wrote its sequence number 2.
            await store.WriteAsync([], [new JournalAppend(SessionJournal.PersistenceIdOf(a), 1, [Sub("a/1"), Sub("a/2 elsewhere")])]);

            // A load starts a round trip; the three writes sent meanwhile go together in the next transaction.
            var timeout = TimeSpan.FromSeconds(30);
            var load = catalog.Ask<JournalLoaded>(new JournalLoad("refused-none"), timeout);
            var writeB = catalog.Ask<JournalStored>(new JournalStore(new JournalAppend(SessionJournal.PersistenceIdOf(b), 1, [Sub("b/1")]), 1), timeout);
            var staleA = catalog.Ask<JournalStored>(new JournalStore(new JournalAppend(SessionJournal.PersistenceIdOf(a), 2, [Sub("a/2 stale")]), 2), timeout);
            var laterA = catalog.Ask<JournalStored>(new JournalStore(new JournalAppend(SessionJournal.PersistenceIdOf(a), 3, [Sub("a/3 stale")]), 3), timeout);
            Assert.NotNull((await load).Journal);

            Assert.True((await writeB).Ok);
            Assert.False((await staleA).Ok);
            Assert.False((await laterA).Ok); // would fit on its own, but follows a refused write of the same session

            var loaded = await store.LoadJournalsAsync([a, b]);
            Assert.Equal(["a/1", "a/2 elsewhere"], loaded[a].Events.Select(e => ((SubscriptionAdded)Read(system, e.Event)).Subscription.Filter));
            Assert.Equal(["b/1"], loaded[b].Events.Select(e => ((SubscriptionAdded)Read(system, e.Event)).Subscription.Filter));
            system.Stop(catalog);
        }
        finally
        {
            await cleanup();
        }
    }

    /// <summary>The filters of the <see cref="SubscriptionAdded"/> events Akka.Persistence.Sql replays for <paramref name="pid"/>.</summary>
    private static async Task<List<string>> RecoverAsync(ActorSystem system, string pid)
    {
        var done = new TaskCompletionSource<List<string>>(TaskCreationOptions.RunContinuationsAsynchronously);
        var reader = system.ActorOf(Props.Create(() => new Reader(pid, done)));
        try
        {
            return await done.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            system.Stop(reader);
        }
    }

    private sealed class Reader(string pid, TaskCompletionSource<List<string>> done) : UntypedPersistentActor
    {
        private readonly List<string> _filters = [];

        public override string PersistenceId => pid;

        protected override void OnRecover(object message)
        {
            switch (message)
            {
                case SubscriptionAdded s:
                    _filters.Add(s.Subscription.Filter);
                    break;
                case RecoveryCompleted:
                    done.TrySetResult(_filters);
                    break;
            }
        }

        protected override void OnRecoveryFailure(Exception reason, object? message = null)
        {
            done.TrySetException(reason);
            base.OnRecoveryFailure(reason, message);
        }

        protected override void OnCommand(object message) => Unhandled(message);
    }
}
