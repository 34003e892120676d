using System.Data;
using System.Data.Common;

namespace Broker.Actors.Sessions;

/// <summary>A serialized event or snapshot as the journal tables hold it.</summary>
public sealed record StoredBlob(byte[] Payload, string Manifest, int SerializerId);

/// <summary>A change to one session's journal, applied in the transaction of a <see cref="SessionCatalogStore"/> batch.</summary>
public abstract record JournalChange(string PersistenceId);

/// <summary>Events numbered from <paramref name="FirstSequenceNr"/> on; a number already taken fails the change (a stale writer).</summary>
public sealed record JournalAppend(string PersistenceId, long FirstSequenceNr, IReadOnlyList<StoredBlob> Events) : JournalChange(PersistenceId);

/// <summary>The state as of <paramref name="SequenceNr"/>; events and snapshots before it go.</summary>
public sealed record JournalSnapshotSave(string PersistenceId, long SequenceNr, StoredBlob State) : JournalChange(PersistenceId);

/// <summary>Every event and snapshot up to <paramref name="UpToSequenceNr"/> goes.</summary>
public sealed record JournalErase(string PersistenceId, long UpToSequenceNr) : JournalChange(PersistenceId);

/// <summary>
/// What a session's journal holds: its latest snapshot (if any), the live events after it in order, and the highest
/// sequence number ever written (deleted rows included), from which its next write is numbered.
/// </summary>
public sealed record StoredJournal(StoredBlob? Snapshot, long SnapshotSequenceNr, List<(long SequenceNr, StoredBlob Event)> Events, long HighestSequenceNr)
{
    /// <summary>A journal without rows (a new one each time: its event list is filled while loading).</summary>
    public static StoredJournal Empty => new(null, 0, [], 0);
}

/// <summary>
/// Session journals read and written with plain SQL on the tables of Akka.Persistence.Sql (its SQLite and PostgreSQL
/// layouts, created by it at start-up), row for row as it writes them, so builds that journal sessions through it read
/// what this writes and the other way round. Unlike it, one transaction carries the changes of many sessions and one
/// query loads many journals. Deletion keeps Akka.Persistence.Sql's rule: the highest row stays, marked deleted, so
/// sequence numbers never go back and a stale writer's next number is still refused.
/// </summary>
internal sealed class SessionJournalTables(bool postgres)
{
    private const int MaxParameters = 500;
    private const string Journal = "event_journal";
    private readonly string _snapshots = postgres ? "snapshot_store" : "snapshot";
    private readonly string _time = postgres ? "created_at" : "timestamp";
    private readonly string _true = postgres ? "true" : "1";

    /// <summary>Adds the statements that apply <paramref name="changes"/>, in order, to <paramref name="statements"/>.</summary>
    public async Task ApplyAsync(SqlStatements statements, IReadOnlyList<JournalChange> changes, CancellationToken ct)
    {
        var now = DateTime.UtcNow.Ticks;
        var insert = $"INSERT INTO {Journal} ({_time}, is_deleted, persistence_id, sequence_nr, payload, manifest, serializer_id) " +
            "VALUES (@time, @deleted, @pid, @seq, @payload, @manifest, @serializer)";
        foreach (var change in changes)
        {
            switch (change)
            {
                case JournalAppend a:
                    for (var i = 0; i < a.Events.Count; i++)
                    {
                        var e = a.Events[i];
                        await statements.AddAsync(insert, ct, ("@time", DbType.Int64, now), ("@deleted", DbType.Boolean, false),
                            ("@pid", DbType.String, a.PersistenceId), ("@seq", DbType.Int64, a.FirstSequenceNr + i), ("@payload", DbType.Binary, e.Payload),
                            ("@manifest", DbType.String, e.Manifest), ("@serializer", DbType.Int32, e.SerializerId)).ConfigureAwait(false);
                    }
                    break;
                case JournalSnapshotSave s:
                    await statements.AddAsync($"DELETE FROM {_snapshots} WHERE persistence_id = @pid AND sequence_nr >= @seq", ct,
                        ("@pid", DbType.String, s.PersistenceId), ("@seq", DbType.Int64, s.SequenceNr)).ConfigureAwait(false);
                    await statements.AddAsync($"INSERT INTO {_snapshots} (persistence_id, sequence_nr, created_at, payload, manifest, serializer_id) " +
                        "VALUES (@pid, @seq, @time, @payload, @manifest, @serializer)", ct,
                        ("@pid", DbType.String, s.PersistenceId), ("@seq", DbType.Int64, s.SequenceNr), ("@time", DbType.Int64, now),
                        ("@payload", DbType.Binary, s.State.Payload), ("@manifest", DbType.String, s.State.Manifest),
                        ("@serializer", DbType.Int32, s.State.SerializerId)).ConfigureAwait(false);
                    await statements.AddAsync($"DELETE FROM {_snapshots} WHERE persistence_id = @pid AND sequence_nr < @seq", ct,
                        ("@pid", DbType.String, s.PersistenceId), ("@seq", DbType.Int64, s.SequenceNr)).ConfigureAwait(false);
                    await DeleteEventsAsync(statements, s.PersistenceId, s.SequenceNr, ct).ConfigureAwait(false);
                    break;
                case JournalErase e:
                    await statements.AddAsync($"DELETE FROM {_snapshots} WHERE persistence_id = @pid AND sequence_nr <= @seq", ct,
                        ("@pid", DbType.String, e.PersistenceId), ("@seq", DbType.Int64, e.UpToSequenceNr)).ConfigureAwait(false);
                    await DeleteEventsAsync(statements, e.PersistenceId, e.UpToSequenceNr, ct).ConfigureAwait(false);
                    break;
            }
        }
    }

    /// <summary>Events up to <paramref name="upTo"/> go; the highest of them stays as a deleted row that keeps the numbering.</summary>
    private async Task DeleteEventsAsync(SqlStatements statements, string pid, long upTo, CancellationToken ct)
    {
        await statements.AddAsync($"UPDATE {Journal} SET is_deleted = {_true} WHERE persistence_id = @pid AND sequence_nr <= @seq", ct,
            ("@pid", DbType.String, pid), ("@seq", DbType.Int64, upTo)).ConfigureAwait(false);
        await statements.AddAsync(
            $"DELETE FROM {Journal} WHERE persistence_id = @pid AND sequence_nr < (SELECT MAX(sequence_nr) FROM {Journal} WHERE persistence_id = @pid AND sequence_nr <= @seq)", ct,
            ("@pid", DbType.String, pid), ("@seq", DbType.Int64, upTo)).ConfigureAwait(false);
    }

    /// <summary>The journals of <paramref name="persistenceIds"/> (an empty one for an ID without rows), in as few queries as the parameter limit allows.</summary>
    public async Task<Dictionary<string, StoredJournal>> LoadAsync(DbConnection connection, IReadOnlyCollection<string> persistenceIds, CancellationToken ct)
    {
        var found = new Dictionary<string, StoredJournal>(StringComparer.Ordinal);
        foreach (var chunk in persistenceIds.Distinct(StringComparer.Ordinal).Chunk(MaxParameters))
        {
            foreach (var id in chunk)
            {
                found[id] = StoredJournal.Empty;
            }
            await using (var cmd = connection.CreateCommand())
            {
                var list = InList(cmd, chunk);
                cmd.CommandText = $"SELECT persistence_id, sequence_nr, payload, manifest, serializer_id FROM {_snapshots} " +
                    $"WHERE persistence_id IN ({list}) ORDER BY persistence_id, sequence_nr";
                await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
                while (await reader.ReadAsync(ct).ConfigureAwait(false))
                {
                    var pid = reader.GetString(0);
                    var seq = reader.GetInt64(1);
                    found[pid] = found[pid] with { Snapshot = Blob(reader, 2), SnapshotSequenceNr = seq, HighestSequenceNr = Math.Max(found[pid].HighestSequenceNr, seq) };
                }
            }
            await using (var cmd = connection.CreateCommand())
            {
                var list = InList(cmd, chunk);
                cmd.CommandText = $"SELECT persistence_id, sequence_nr, is_deleted, payload, manifest, serializer_id FROM {Journal} " +
                    $"WHERE persistence_id IN ({list}) ORDER BY persistence_id, sequence_nr";
                await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
                while (await reader.ReadAsync(ct).ConfigureAwait(false))
                {
                    var pid = reader.GetString(0);
                    var seq = reader.GetInt64(1);
                    var journal = found[pid];
                    if (seq > journal.HighestSequenceNr)
                    {
                        journal = found[pid] = journal with { HighestSequenceNr = seq };
                    }
                    if (!reader.GetBoolean(2) && seq > journal.SnapshotSequenceNr)
                    {
                        journal.Events.Add((seq, Blob(reader, 3)));
                    }
                }
            }
        }
        return found;
    }

    private static StoredBlob Blob(DbDataReader reader, int first) => new(
        (byte[])reader.GetValue(first),
        reader.IsDBNull(first + 1) ? "" : reader.GetString(first + 1),
        reader.IsDBNull(first + 2) ? 0 : reader.GetInt32(first + 2));

    private static string InList(DbCommand cmd, string[] ids)
    {
        var names = new string[ids.Length];
        for (var i = 0; i < ids.Length; i++)
        {
            names[i] = "@p" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Parameter(cmd, names[i], DbType.String).Value = ids[i];
        }
        return string.Join(",", names);
    }

    private static DbParameter Parameter(DbCommand cmd, string name, DbType type)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.DbType = type;
        cmd.Parameters.Add(p);
        return p;
    }
}

/// <summary>
/// The statements of one transaction. On PostgreSQL they are gathered into one batch and sent in one round trip by
/// <see cref="FlushAsync"/>; SQLite runs in the process, so each runs at once, through one prepared command per SQL text.
/// </summary>
internal sealed class SqlStatements(DbConnection connection, DbTransaction tx, bool batch) : IAsyncDisposable
{
    private readonly DbBatch? _batch = batch ? CreateBatch(connection, tx) : null;
    private readonly Dictionary<string, DbCommand> _commands = new(StringComparer.Ordinal);

    private static DbBatch CreateBatch(DbConnection connection, DbTransaction tx)
    {
        var b = connection.CreateBatch();
        b.Transaction = tx;
        return b;
    }

    public async Task AddAsync(string sql, CancellationToken ct, params (string Name, DbType Type, object? Value)[] parameters)
    {
        if (_batch is not null)
        {
            var command = _batch.CreateBatchCommand();
            command.CommandText = sql;
            foreach (var (name, type, value) in parameters)
            {
                var p = command.CreateParameter();
                p.ParameterName = name;
                p.DbType = type;
                p.Value = value ?? DBNull.Value;
                command.Parameters.Add(p);
            }
            _batch.BatchCommands.Add(command);
            return;
        }
        if (!_commands.TryGetValue(sql, out var cmd))
        {
            cmd = connection.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = sql;
            foreach (var (name, type, _) in parameters)
            {
                var p = cmd.CreateParameter();
                p.ParameterName = name;
                p.DbType = type;
                cmd.Parameters.Add(p);
            }
            _commands[sql] = cmd;
        }
        for (var i = 0; i < parameters.Length; i++)
        {
            cmd.Parameters[i].Value = parameters[i].Value ?? DBNull.Value;
        }
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Sends what is gathered (PostgreSQL); a failed statement fails the call, and the transaction with it.</summary>
    public async Task FlushAsync(CancellationToken ct)
    {
        if (_batch is { BatchCommands.Count: > 0 })
        {
            await _batch.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            _batch.BatchCommands.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var cmd in _commands.Values)
        {
            await cmd.DisposeAsync().ConfigureAwait(false);
        }
        if (_batch is not null)
        {
            await _batch.DisposeAsync().ConfigureAwait(false);
        }
    }
}
