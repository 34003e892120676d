using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Broker.Actors.Sessions;

/// <summary>A write to the catalog: the session's row (with the node incarnation hosting it) or its removal (<c>Host</c> null).</summary>
public readonly record struct CatalogChange(string ClientId, string? Host);

/// <summary>
/// The durable list of sessions that have (or may have) a journal: one row per client ID with the node incarnation
/// that last hosted it. A row is written before the session's first journal write and removed only after its journal
/// is deleted, so a client ID without a row has nothing to recover and its session starts without touching the journal.
/// Plain ADO.NET on the journal's database (SQLite or PostgreSQL); every batch of changes is one transaction.
/// </summary>
public sealed class SessionCatalogStore
{
    public const string Table = "broker_sessions";
    private const int MaxParameters = 500;
    private const string PersistencePrefix = "session-";

    private readonly DbProviderFactory _factory;
    private readonly string _connectionString;
    private readonly string? _sqliteSynchronous;
    private readonly bool _postgres;

    /// <param name="provider">sqlite or postgresql.</param>
    /// <param name="sqliteSynchronous">The SQLite durability pragma (normal or full), as the journal uses it.</param>
    public SessionCatalogStore(string provider, string connectionString, string sqliteSynchronous = "normal")
    {
        _postgres = provider is "postgresql" or "postgres";
        _factory = _postgres ? NpgsqlFactory.Instance : SqliteFactory.Instance;
        _connectionString = connectionString;
        _sqliteSynchronous = _postgres ? null : sqliteSynchronous;
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
            return 0;
        }
        try
        {
            await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
            await ExecuteAsync(connection, tx, $"CREATE TABLE {Table} (client_id VARCHAR(65535) NOT NULL PRIMARY KEY, host VARCHAR(512) NOT NULL)", ct).ConfigureAwait(false);
            var imported = 0;
            var offset = PersistencePrefix.Length + 1;
            var sources = new List<string>();
            if (await TableExistsAsync(connection, "event_journal", ct, tx).ConfigureAwait(false))
            {
                sources.Add($"SELECT persistence_id FROM event_journal WHERE persistence_id LIKE '{PersistencePrefix}%' AND is_deleted = {(_postgres ? "false" : "0")}");
            }
            if (await TableExistsAsync(connection, "snapshot", ct, tx).ConfigureAwait(false))
            {
                sources.Add($"SELECT persistence_id FROM snapshot WHERE persistence_id LIKE '{PersistencePrefix}%'");
            }
            if (sources.Count > 0)
            {
                imported = await ExecuteAsync(connection, tx,
                    $"INSERT INTO {Table} (client_id, host) SELECT DISTINCT substr(persistence_id, {offset}), '' FROM ({string.Join(" UNION ", sources)}) ids", ct).ConfigureAwait(false);
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
    public async Task WriteAsync(IReadOnlyList<CatalogChange> changes, CancellationToken ct = default)
    {
        if (changes.Count == 0)
        {
            return;
        }
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using var upsert = connection.CreateCommand();
        upsert.Transaction = tx;
        upsert.CommandText = $"INSERT INTO {Table} (client_id, host) VALUES (@id, @host) ON CONFLICT (client_id) DO UPDATE SET host = excluded.host";
        var upsertId = upsert.CreateParameter();
        upsertId.ParameterName = "@id";
        var upsertHost = upsert.CreateParameter();
        upsertHost.ParameterName = "@host";
        upsert.Parameters.Add(upsertId);
        upsert.Parameters.Add(upsertHost);
        await using var delete = connection.CreateCommand();
        delete.Transaction = tx;
        delete.CommandText = $"DELETE FROM {Table} WHERE client_id = @id";
        var deleteId = delete.CreateParameter();
        deleteId.ParameterName = "@id";
        delete.Parameters.Add(deleteId);
        foreach (var change in changes)
        {
            if (change.Host is null)
            {
                deleteId.Value = change.ClientId;
                await delete.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
            else
            {
                upsertId.Value = change.ClientId;
                upsertHost.Value = change.Host;
                await upsert.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Client IDs whose host is not one of <paramref name="liveHosts"/> (their node is gone), or only those of <paramref name="host"/>.</summary>
    public async Task<List<string>> HostedElsewhereAsync(IReadOnlySet<string> liveHosts, CancellationToken ct = default)
    {
        var ids = new List<string>();
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = $"SELECT client_id, host FROM {Table}";
        await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            if (!liveHosts.Contains(reader.GetString(1)))
            {
                ids.Add(reader.GetString(0));
            }
        }
        return ids;
    }

    /// <summary>Client IDs last hosted by <paramref name="host"/>.</summary>
    public async Task<List<string>> HostedOnAsync(string host, CancellationToken ct = default)
    {
        var ids = new List<string>();
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
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
