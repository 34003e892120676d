using Broker.Actors.Routing;
using Broker.Actors.Sessions;
using Broker.Tests.Shared;
using Microsoft.Data.Sqlite;

namespace Broker.EndToEnd.Tests;

/// <summary>The session catalog's SQL on both backends, against a real SQLite file and a real PostgreSQL database.</summary>
public sealed class SessionCatalogStoreTests
{
    private static async Task<(SessionCatalogStore Store, Func<Task> Cleanup)> StoreAsync(string provider)
    {
        if (provider == "postgresql")
        {
            var db = await TestDatabase.PostgresAsync();
            return (new SessionCatalogStore("postgresql", db.ConnectionString!), async () => await db.DisposeAsync());
        }
        var dir = Path.Combine(Path.GetTempPath(), "catalog-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var cs = new SqliteConnectionStringBuilder { DataSource = Path.Combine(dir, "broker.db"), Pooling = false }.ToString();
        return (new SessionCatalogStore("sqlite", cs), () =>
        {
            Directory.Delete(dir, recursive: true);
            return Task.CompletedTask;
        });
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task A_catalog_of_an_earlier_build_gets_its_host_index_on_host_and_client_id(string provider)
    {
        // Earlier builds indexed host alone, and a page of sessions at rest then sorted all of them.
        TestDatabase? pg = null;
        string? dir = null;
        System.Data.Common.DbConnection connection;
        if (provider == "postgresql")
        {
            pg = await TestDatabase.PostgresAsync();
            connection = new Npgsql.NpgsqlConnection(pg.ConnectionString);
        }
        else
        {
            dir = Path.Combine(Path.GetTempPath(), "catalog-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(dir, "broker.db"), Pooling = false }.ToString());
        }
        try
        {
            await connection.OpenAsync();
            async Task Run(string sql)
            {
                await using var cmd = connection.CreateCommand();
                cmd.CommandText = sql;
                await cmd.ExecuteNonQueryAsync();
            }
            async Task<List<string>> Indexes()
            {
                await using var cmd = connection.CreateCommand();
                cmd.CommandText = provider == "postgresql"
                    ? "SELECT indexname FROM pg_indexes WHERE tablename = 'broker_sessions' ORDER BY 1"
                    : "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'broker_sessions' AND sql IS NOT NULL ORDER BY 1";
                var names = new List<string>();
                await using var reader = await cmd.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    names.Add(reader.GetString(0));
                }
                return names;
            }
            var blob = provider == "postgresql" ? "BYTEA" : "BLOB";
            await Run($"CREATE TABLE broker_sessions (client_id VARCHAR(65535) NOT NULL PRIMARY KEY, host VARCHAR(512) NOT NULL, due_at BIGINT NULL, routes {blob} NULL, info {blob} NULL)");
            await Run("CREATE INDEX broker_sessions_host ON broker_sessions (host)");
            await Run("CREATE INDEX broker_sessions_due ON broker_sessions (due_at)");
            await Run("INSERT INTO broker_sessions (client_id, host) VALUES ('b', ''), ('a', ''), ('c', 'n1#1')");

            var store = new SessionCatalogStore(provider, provider == "postgresql" ? pg!.ConnectionString! : connection.ConnectionString);
            await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => store.InitializeAsync()));
            Assert.Contains("broker_sessions_host_id", await Indexes());
            Assert.DoesNotContain("broker_sessions_host", await Indexes());
            var (rows, more) = await store.ListRestingAsync(null, "", 10);
            Assert.Equal(["a", "b"], rows.Select(r => r.ClientId));
            Assert.False(more);
            Assert.Equal(["c"], await store.HostedOnAsync("n1#1"));
        }
        finally
        {
            await connection.DisposeAsync();
            if (pg is not null)
            {
                await pg.DisposeAsync();
            }
            if (dir is not null)
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Rows_are_written_in_order_and_found_by_id_and_by_host(string provider)
    {
        var (store, cleanup) = await StoreAsync(provider);
        try
        {
            // Several nodes initialising at once: one creates the table, the others find it.
            await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => store.InitializeAsync()));
            Assert.Equal(0, await store.InitializeAsync());

            static CatalogEntry On(string host, long? due = null, string[]? filters = null, byte[]? info = null) =>
                new(host, due, filters is null ? null : RouteCodec.Encode(filters), info);
            await store.WriteAsync([
                new("a", On("n1#1")), new("b", On("n1#1")), new("c", On("n2#7")), new("b", null), new("d", On("n1#1")), new("d", On("n2#7")),
                new("r1", On("", due: 1000, filters: ["x/#", "$share/g/y"], info: [1, 2, 3])), new("r2", On("", due: 5000)),
                new("r\u00e9", On("", filters: ["z"])), new("imp", On(SessionCatalogStore.ImportedHost))]);

            Assert.Equal(["a", "c", "d"], (await store.ExistingAsync(["a", "b", "c", "d", "e"])).Order(StringComparer.Ordinal));
            Assert.Equal(["a"], await store.HostedOnAsync("n1#1"));
            Assert.Equal(["c", "d"], (await store.HostedOnAsync("n2#7")).Order(StringComparer.Ordinal));
            // Running on a gone incarnation (or imported from an older journal); sessions at rest ("") are not.
            Assert.Equal(["c", "d", "imp"], (await store.HostedElsewhereAsync(new HashSet<string> { "n1#1" })).Order(StringComparer.Ordinal));

            // The durable schedule: sessions at rest whose deadline has come, earliest first.
            Assert.Equal(["r1"], await store.DueAsync(4999, 10));
            Assert.Equal(["r1", "r2"], await store.DueAsync(5000, 10));

            var routes = new Dictionary<string, List<string>>();
            Assert.Equal(2, await store.ReadRoutesAsync((id, data) => routes[id] = RouteCodec.Decode(data)));
            Assert.Equal(["x/#", "$share/g/y"], routes["r1"]);
            Assert.Equal(["z"], routes["r\u00e9"]);

            // Sessions at rest page in UTF-8 byte order, by prefix, with their summary.
            var (page, more) = await store.ListRestingAsync(null, "r", 2);
            Assert.Equal(["r1", "r2"], page.Select(r => r.ClientId));
            Assert.True(more);
            Assert.Equal([1, 2, 3], page[0].Info);
            (page, more) = await store.ListRestingAsync("r2", "r", 2);
            Assert.Equal(["r\u00e9"], page.Select(r => r.ClientId));
            Assert.False(more);
            var found = await store.FindRestingAsync("r1");
            Assert.True(found.Resting);
            Assert.Equal([1, 2, 3], found.Info);
            Assert.False((await store.FindRestingAsync("a")).Resting);

            // More IDs than one query takes.
            var many = Enumerable.Range(0, 1200).Select(i => "id-" + i).ToList();
            await store.WriteAsync(many.Select(id => new CatalogChange(id, On("n3#1"))).ToList());
            Assert.Equal(1200, (await store.ExistingAsync([.. many, "absent"])).Count);
            Assert.Empty(await store.ExistingAsync([]));
        }
        finally
        {
            await cleanup();
        }
    }
}
