using System.Globalization;
using System.Text;
using Akka;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Microsoft.Data.Sqlite;

namespace Broker.Actors.Tests.Fixtures;

/// <summary>One stored row as the SQL plugins keep it: which table, the entity, its sequence number, our manifest and serializer, the bytes.</summary>
public sealed record StoredRow(bool Snapshot, string PersistenceId, long Seq, string Manifest, int SerializerId, byte[] Bytes)
{
    /// <summary>The row as a line of the committed text fixture: table, entity, sequence number, serializer, manifest, bytes in hex.</summary>
    public string ToLine() => string.Join('\t', Snapshot ? "snapshot" : "journal", PersistenceId, Seq.ToString(CultureInfo.InvariantCulture),
        SerializerId.ToString(CultureInfo.InvariantCulture), Manifest, Convert.ToHexString(Bytes));
}

/// <summary>
/// Writes <see cref="JournalFixture.Rows"/> through the real SQL journal and snapshot store and the broker's serializer,
/// exactly as the entities journal them, then copies the database and a text rendering of its rows into the fixture folder.
/// </summary>
public static class JournalFixtureWriter
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>Journals the fixture into <paramref name="db"/> (a fresh database) with the given configuration on top.</summary>
    public static async Task WriteAsync(SqliteJournalFolder db, Config overrides, string targetDb, string targetRows)
    {
        var system = ActorSystem.Create(JournalFixture.SystemName, overrides.WithFallback(db.SystemConfig()));
        try
        {
            var owner = system.ActorOf(Props.Empty, JournalFixture.OwnerName);
            foreach (var entity in JournalFixture.Rows(owner).GroupBy(r => r.PersistenceId))
            {
                var writer = system.ActorOf(Props.Create(() => new RowWriter(entity.Key, entity.ToList())));
                await writer.Ask<Done>(RowWriter.Start.Instance, Timeout);
            }
        }
        finally
        {
            await system.Terminate();
            SqliteConnection.ClearAllPools();
        }

        File.Delete(targetDb);
        await using (var source = new SqliteConnection(db.ConnectionString))
        {
            await source.OpenAsync();
            await using var vacuum = source.CreateCommand();
            // A compact copy in rollback-journal mode: one self-contained file, whatever mode the writer used.
            vacuum.CommandText = "VACUUM INTO $target";
            vacuum.Parameters.AddWithValue("$target", targetDb);
            await vacuum.ExecuteNonQueryAsync();
        }
        SqliteConnection.ClearAllPools();
        var lines = (await ReadRowsAsync(targetDb)).Select(r => r.ToLine());
        await File.WriteAllTextAsync(targetRows, string.Join('\n', lines) + "\n", Encoding.ASCII);
    }

    /// <summary>Every row of the journal and snapshot tables of the SQLite file at <paramref name="dbFile"/>, in (table, entity, sequence) order.</summary>
    public static async Task<IReadOnlyList<StoredRow>> ReadRowsAsync(string dbFile)
    {
        var rows = new List<StoredRow>();
        var cs = new SqliteConnectionStringBuilder { DataSource = dbFile, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString();
        await using var connection = new SqliteConnection(cs);
        await connection.OpenAsync();
        foreach (var (snapshot, sql) in new[]
        {
            (false, "SELECT persistence_id, sequence_nr, manifest, serializer_id, payload FROM event_journal ORDER BY persistence_id, sequence_nr"),
            (true, "SELECT persistence_id, sequence_nr, manifest, serializer_id, payload FROM snapshot ORDER BY persistence_id, sequence_nr"),
        })
        {
            await using var cmd = connection.CreateCommand();
            cmd.CommandText = sql;
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                rows.Add(new StoredRow(snapshot, reader.GetString(0), reader.GetInt64(1), reader.GetString(2), reader.GetInt32(3), (byte[])reader.GetValue(4)));
            }
        }
        return rows;
    }

    /// <summary>Journals one entity's rows in order: events with Persist, snapshots with SaveSnapshot at the sequence number they name.</summary>
    private sealed class RowWriter(string persistenceId, IReadOnlyList<FixtureRow> rows) : UntypedPersistentActor
    {
        public sealed record Start
        {
            public static readonly Start Instance = new();
        }

        private readonly Queue<FixtureRow> _rows = new(rows);
        private IActorRef _replyTo = ActorRefs.Nobody;

        public override string PersistenceId { get; } = persistenceId;

        protected override void OnRecover(object message)
        {
            if (message is not RecoveryCompleted)
            {
                throw new InvalidOperationException($"{PersistenceId}: the fixture is written into an empty journal");
            }
        }

        protected override void OnCommand(object message)
        {
            switch (message)
            {
                case Start:
                    _replyTo = Sender;
                    Next();
                    break;
                case SaveSnapshotSuccess:
                    Next();
                    break;
                case SaveSnapshotFailure f:
                    _replyTo.Tell(new Status.Failure(f.Cause));
                    break;
            }
        }

        private void Next()
        {
            if (!_rows.TryDequeue(out var row))
            {
                _replyTo.Tell(Done.Instance);
                return;
            }
            if (row.Snapshot)
            {
                Check(row);
                SaveSnapshot(row.Value);
                return;
            }
            Persist(row.Value, _ =>
            {
                Check(row);
                Next();
            });
        }

        private void Check(FixtureRow row)
        {
            if (row.Seq != LastSequenceNr)
            {
                throw new InvalidOperationException($"{PersistenceId}: row {row.Manifest} names sequence {row.Seq}, the journal is at {LastSequenceNr}");
            }
        }
    }
}
