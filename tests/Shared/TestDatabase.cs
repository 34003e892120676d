using Npgsql;

namespace Broker.Tests.Shared;

/// <summary>
/// The storage a test cluster shares: a SQLite file (in the cluster's data folder), or a fresh PostgreSQL
/// database created through the server that <c>BROKER_TEST_PG</c> names and dropped afterwards.
/// </summary>
public sealed class TestDatabase : IAsyncDisposable
{
    public const string PostgresVariable = "BROKER_TEST_PG";

    private readonly string? _adminConnection;
    private readonly string? _database;

    private TestDatabase(string provider, string? connectionString, string? adminConnection, string? database)
    {
        Provider = provider;
        ConnectionString = connectionString;
        _adminConnection = adminConnection;
        _database = database;
    }

    public string Provider { get; }

    /// <summary>Null with SQLite: each node derives the file from its data folder.</summary>
    public string? ConnectionString { get; }

    public override string ToString() => Provider;

    public static Task<TestDatabase> CreateAsync(string provider) =>
        provider == "postgresql" ? PostgresAsync() : Task.FromResult(new TestDatabase("sqlite", null, null, null));

    public static async Task<TestDatabase> PostgresAsync()
    {
        var admin = Environment.GetEnvironmentVariable(PostgresVariable);
        if (string.IsNullOrEmpty(admin))
        {
            throw new InvalidOperationException($"{PostgresVariable} is not set: run scripts/postgres.sh and export the connection string it prints (see README)");
        }
        var name = "broker_test_" + Guid.NewGuid().ToString("N")[..12];
        await using (var connection = new NpgsqlConnection(admin))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await create.ExecuteNonQueryAsync();
        }
        var builder = new NpgsqlConnectionStringBuilder(admin) { Database = name };
        return new TestDatabase("postgresql", builder.ConnectionString, admin, name);
    }

    public async ValueTask DisposeAsync()
    {
        if (_adminConnection is null)
        {
            return;
        }
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(_adminConnection);
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_database} WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
    }
}
