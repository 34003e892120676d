using Broker.Actors.Messages;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Broker.Actors.Sessions;

/// <summary>
/// A session's catalog row. <paramref name="Host"/>: the node incarnation hosting it, "" while it is at rest (no actor
/// anywhere). <paramref name="DueAtMs"/>: its next will-delay or expiry deadline while disconnected. <paramref name="Routes"/>:
/// its subscription filters (<see cref="Routing.RouteCodec"/>). <paramref name="Info"/>: what the admin API shows of it while at rest.
/// </summary>
public sealed record CatalogEntry(string Host, long? DueAtMs, byte[]? Routes, byte[]? Info);

/// <summary>A write to the catalog: the session's row, or its removal (<c>Entry</c> null).</summary>
public readonly record struct CatalogChange(string ClientId, CatalogEntry? Entry);

/// <summary>
/// The durable list of sessions that have (or may have) a journal: one row per client ID with the node incarnation
/// that last hosted it. A row is written before the session's first journal write and removed only after its journal
/// is deleted, so a client ID without a row has nothing to recover and its session starts without touching the journal.
/// The row also carries what the cluster needs of a session that is not running: its filters (loaded into every
/// node's routes at start-up), its next deadline (the durable schedule of wills and expiries) and, at rest, its
/// admin summary. Client IDs sort by their UTF-8 bytes (SQLite's BINARY, PostgreSQL's "C" collation), as the admin
/// API pages them.
/// Plain ADO.NET on the journal's database (SQLite or PostgreSQL); every batch of changes is one transaction.
/// </summary>
public sealed class SessionCatalogStore
{
    public const string Table = "broker_sessions";

    /// <summary>Host of rows listed from the journal of a build before the catalog: started at the next start-up.</summary>
    public const string ImportedHost = "imported";
    private const int MaxParameters = 500;
    private const string PersistencePrefix = "session-";

    private readonly DbProviderFactory _factory;
    private readonly string _connectionString;
    private readonly string? _sqliteSynchronous;
    private readonly bool _postgres;
    private readonly SessionJournalTables _journal;

    /// <param name="provider">sqlite or postgresql.</param>
    /// <param name="sqliteSynchronous">The SQLite durability pragma (normal or full), as the journal uses it.</param>
    public SessionCatalogStore(string provider, string connectionString, string sqliteSynchronous = "normal")
    {
        _postgres = provider is "postgresql" or "postgres";
        _factory = _postgres ? NpgsqlFactory.Instance : SqliteFactory.Instance;
        _connectionString = connectionString;
        _sqliteSynchronous = _postgres ? null : sqliteSynchronous;
        _journal = new SessionJournalTables(_postgres);
    }

    private async Task<DbConnection> OpenAsync(CancellationToken ct)
    {
        var connection = _factory.CreateConnection()!;
        connection.ConnectionString = _connectionString;
        await connection.OpenAsync(ct).ConfigureAwait(false);
        if (_sqliteSynchronous is not null)
        {
            await using var cmd = connection.CreateCommand();
            cmd.CommandText = $"PRAGMA synchronous={_sqliteSynchronous}; PRAGMA busy_timeout=30000;";
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        return connection;
    }

    /// <summary>
    /// Creates the table when it does not exist and, in the same transaction, lists every session the journal of an
    /// earlier build holds (that build kept no catalog), so an upgraded node still finds them. Returns the rows imported.
    /// </summary>
    public async Task<int> InitializeAsync(CancellationToken ct = default)
    {
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        if (await TableExistsAsync(connection, Table, ct).ConfigureAwait(false))
        {
            await UpgradeIndexesAsync(connection, ct).ConfigureAwait(false);
            return 0;
        }
        try
        {
            await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
            var blob = _postgres ? "BYTEA" : "BLOB";
            var collate = _postgres ? " COLLATE \"C\"" : "";
            await ExecuteAsync(connection, tx,
                $"CREATE TABLE {Table} (client_id VARCHAR(65535){collate} NOT NULL PRIMARY KEY, host VARCHAR(512) NOT NULL, due_at BIGINT NULL, routes {blob} NULL, info {blob} NULL)",
                ct).ConfigureAwait(false);
            // (host, client_id): the sessions of a host, and the admin API's pages of sessions at rest (host '') in client ID
            // order straight from the index. On host alone, SQLite sorted every session at rest for each page.
            await ExecuteAsync(connection, tx, $"CREATE INDEX {Table}_host_id ON {Table} (host, client_id)", ct).ConfigureAwait(false);
            await ExecuteAsync(connection, tx, $"CREATE INDEX {Table}_due ON {Table} (due_at)", ct).ConfigureAwait(false);
            var imported = 0;
            var offset = PersistencePrefix.Length + 1;
            var sources = new List<string>();
            if (await TableExistsAsync(connection, "event_journal", ct, tx).ConfigureAwait(false))
            {
                sources.Add($"SELECT persistence_id FROM event_journal WHERE persistence_id LIKE '{PersistencePrefix}%' AND is_deleted = {(_postgres ? "false" : "0")}");
            }
            var snapshots = _postgres ? "snapshot_store" : "snapshot";
            if (await TableExistsAsync(connection, snapshots, ct, tx).ConfigureAwait(false))
            {
                sources.Add($"SELECT persistence_id FROM {snapshots} WHERE persistence_id LIKE '{PersistencePrefix}%'");
            }
            if (sources.Count > 0)
            {
                imported = await ExecuteAsync(connection, tx,
                    $"INSERT INTO {Table} (client_id, host) SELECT DISTINCT substr(persistence_id, {offset}), '{ImportedHost}' FROM ({string.Join(" UNION ", sources)}) ids", ct).ConfigureAwait(false);
            }
            await tx.CommitAsync(ct).ConfigureAwait(false);
            return imported;
        }
        catch (DbException)
        {
            if (await TableExistsAsync(connection, Table, ct).ConfigureAwait(false))
            {
                return 0; // another node created it at the same time
            }
            throw;
        }
    }

    /// <summary>
    /// A table of an earlier build has its host index on host alone: with a million sessions at rest, a page of 100 of
    /// them took 0.3 s on SQLite (every one sorted). Replaced once, by whichever node starts first.
    /// </summary>
    private async Task UpgradeIndexesAsync(DbConnection connection, CancellationToken ct)
    {
        try
        {
            await ExecuteAsync(connection, null, $"CREATE INDEX IF NOT EXISTS {Table}_host_id ON {Table} (host, client_id)", ct).ConfigureAwait(false);
            await ExecuteAsync(connection, null, $"DROP INDEX IF EXISTS {Table}_host", ct).ConfigureAwait(false);
        }
        catch (DbException) when (!ct.IsCancellationRequested)
        {
            // Another node is creating the same index at this moment; it finishes the upgrade.
        }
    }

    private async Task<bool> TableExistsAsync(DbConnection connection, string table, CancellationToken ct, DbTransaction? tx = null)
    {
        await using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = _postgres
            ? "SELECT to_regclass(@t) IS NOT NULL"
            : "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = @t";
        Add(cmd, "@t", table);
        var result = await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
        return Convert.ToBoolean(result, System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<int> ExecuteAsync(DbConnection connection, DbTransaction? tx, string sql, CancellationToken ct)
    {
        await using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    private static void Add(DbCommand cmd, string name, object value)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.Value = value;
        cmd.Parameters.Add(p);
    }

    /// <summary>Which of <paramref name="clientIds"/> have a row, in as few queries as the parameter limit allows.</summary>
    public async Task<HashSet<string>> ExistingAsync(IReadOnlyCollection<string> clientIds, CancellationToken ct = default)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        if (clientIds.Count == 0)
        {
            return found;
        }
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        foreach (var chunk in clientIds.Chunk(MaxParameters))
        {
            await using var cmd = connection.CreateCommand();
            var names = new string[chunk.Length];
            for (var i = 0; i < chunk.Length; i++)
            {
                names[i] = "@p" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                Add(cmd, names[i], chunk[i]);
            }
            cmd.CommandText = $"SELECT client_id FROM {Table} WHERE client_id IN ({string.Join(",", names)})";
            await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                found.Add(reader.GetString(0));
            }
        }
        return found;
    }

    /// <summary>Applies <paramref name="changes"/> in order, in one transaction.</summary>
    public Task WriteAsync(IReadOnlyList<CatalogChange> changes, CancellationToken ct = default) => WriteAsync(changes, [], ct);

    /// <summary>Applies the catalog <paramref name="changes"/>, then the <paramref name="journal"/> changes, each in order, in one transaction.</summary>
    public async Task WriteAsync(IReadOnlyList<CatalogChange> changes, IReadOnlyList<JournalChange> journal, CancellationToken ct = default)
    {
        if (changes.Count == 0 && journal.Count == 0)
        {
            return;
        }
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using (var statements = new SqlStatements(connection, tx, batch: _postgres))
        {
            await WriteCatalogAsync(statements, changes, ct).ConfigureAwait(false);
            await _journal.ApplyAsync(statements, journal, ct).ConfigureAwait(false);
            await statements.FlushAsync(ct).ConfigureAwait(false);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        if (journal.Count > 0)
        {
            BrokerCounters.ObserveJournalWrite(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    /// <summary>The journals of the sessions <paramref name="clientIds"/>, by client ID.</summary>
    public async Task<Dictionary<string, StoredJournal>> LoadJournalsAsync(IReadOnlyCollection<string> clientIds, CancellationToken ct = default)
    {
        if (clientIds.Count == 0)
        {
            return new Dictionary<string, StoredJournal>(StringComparer.Ordinal);
        }
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        var loaded = await _journal.LoadAsync(connection, clientIds.Select(SessionJournal.PersistenceIdOf).ToList(), ct).ConfigureAwait(false);
        return loaded.ToDictionary(kv => kv.Key[PersistencePrefix.Length..], kv => kv.Value, StringComparer.Ordinal);
    }

    private static async Task WriteCatalogAsync(SqlStatements statements, IReadOnlyList<CatalogChange> changes, CancellationToken ct)
    {
        var upsert = $"INSERT INTO {Table} (client_id, host, due_at, routes, info) VALUES (@id, @host, @due, @routes, @info) " +
            "ON CONFLICT (client_id) DO UPDATE SET host = excluded.host, due_at = excluded.due_at, routes = excluded.routes, info = excluded.info";
        var delete = $"DELETE FROM {Table} WHERE client_id = @id";
        foreach (var change in changes)
        {
            if (change.Entry is not { } e)
            {
                await statements.AddAsync(delete, ct, ("@id", System.Data.DbType.String, change.ClientId)).ConfigureAwait(false);
            }
            else
            {
                await statements.AddAsync(upsert, ct, ("@id", System.Data.DbType.String, change.ClientId), ("@host", System.Data.DbType.String, e.Host),
                    ("@due", System.Data.DbType.Int64, e.DueAtMs), ("@routes", System.Data.DbType.Binary, e.Routes),
                    ("@info", System.Data.DbType.Binary, e.Info)).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Client IDs of sessions that were running on a node incarnation not in <paramref name="liveHosts"/> (their node is gone).</summary>
    public async Task<List<string>> HostedElsewhereAsync(IReadOnlySet<string> liveHosts, CancellationToken ct = default)
    {
        var ids = new List<string>();
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        var hosts = new List<string>();
        await using (var cmd = connection.CreateCommand())
        {
            cmd.CommandText = $"SELECT DISTINCT host FROM {Table} WHERE host <> ''";
            await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                hosts.Add(reader.GetString(0));
            }
        }
        foreach (var host in hosts.Where(h => !liveHosts.Contains(h)))
        {
            ids.AddRange(await HostedOnAsync(connection, host, ct).ConfigureAwait(false));
        }
        return ids;
    }

    /// <summary>Up to <paramref name="limit"/> sessions at rest whose will or expiry deadline has come.</summary>
    public async Task<List<string>> DueAsync(long nowMs, int limit, CancellationToken ct = default)
    {
        var ids = new List<string>();
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = $"SELECT client_id FROM {Table} WHERE due_at <= @now AND host = '' ORDER BY due_at LIMIT {limit}";
        Add(cmd, "@now", nowMs);
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            ids.Add(reader.GetString(0));
        }
        return ids;
    }

    /// <summary>Calls <paramref name="each"/> with the filters of every session that has some; returns how many.</summary>
    public async Task<int> ReadRoutesAsync(Action<string, byte[]> each, CancellationToken ct = default)
    {
        var count = 0;
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = $"SELECT client_id, routes FROM {Table} WHERE routes IS NOT NULL";
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            each(reader.GetString(0), (byte[])reader.GetValue(1));
            count++;
        }
        return count;
    }

    /// <summary>
    /// Sessions at rest in client ID order: up to <paramref name="limit"/> rows after <paramref name="after"/> (null: from the
    /// start) whose ID starts with <paramref name="prefix"/>, with their admin summary; <c>HasMore</c> when more follow.
    /// </summary>
    public async Task<(List<(string ClientId, byte[]? Info)> Rows, bool HasMore)> ListRestingAsync(string? after, string prefix, int limit, CancellationToken ct = default)
    {
        var rows = new List<(string, byte[]?)>();
        var lower = after;
        var inclusive = false;
        if (prefix.Length > 0 && (lower is null || Utf8Ordinal.Instance.Compare(prefix, lower) > 0))
        {
            lower = prefix;
            inclusive = true;
        }
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = connection.CreateCommand();
        var where = lower is null ? "" : inclusive ? "AND client_id >= @lower" : "AND client_id > @lower";
        cmd.CommandText = $"SELECT client_id, info FROM {Table} WHERE host = '' {where} ORDER BY client_id LIMIT {limit + 1}";
        if (lower is not null)
        {
            Add(cmd, "@lower", lower);
        }
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            var id = reader.GetString(0);
            if (!Utf8Ordinal.StartsWith(id, prefix))
            {
                return (rows, false);
            }
            if (rows.Count == limit)
            {
                return (rows, true);
            }
            rows.Add((id, reader.IsDBNull(1) ? null : (byte[])reader.GetValue(1)));
        }
        return (rows, false);
    }

    /// <summary>How many sessions are at rest (no node runs them).</summary>
    public async Task<long> CountRestingAsync(CancellationToken ct = default)
    {
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = $"SELECT COUNT(*) FROM {Table} WHERE host = ''";
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The admin summary of a session at rest; (false, null) when the client ID has no session at rest.</summary>
    public async Task<(bool Resting, byte[]? Info)> FindRestingAsync(string clientId, CancellationToken ct = default)
    {
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = $"SELECT info FROM {Table} WHERE client_id = @id AND host = ''";
        Add(cmd, "@id", clientId);
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        if (!await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            return (false, null);
        }
        return (true, reader.IsDBNull(0) ? null : (byte[])reader.GetValue(0));
    }

    /// <summary>Client IDs of sessions running on <paramref name="host"/> when last written.</summary>
    public async Task<List<string>> HostedOnAsync(string host, CancellationToken ct = default)
    {
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        return await HostedOnAsync(connection, host, ct).ConfigureAwait(false);
    }

    private static async Task<List<string>> HostedOnAsync(DbConnection connection, string host, CancellationToken ct)
    {
        var ids = new List<string>();
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = $"SELECT client_id FROM {Table} WHERE host = @h";
        Add(cmd, "@h", host);
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            ids.Add(reader.GetString(0));
        }
        return ids;
    }
}
