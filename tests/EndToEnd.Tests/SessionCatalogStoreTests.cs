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
    public async Task Rows_are_written_in_order_and_found_by_id_and_by_host(string provider)
    {
        var (store, cleanup) = await StoreAsync(provider);
        try
        {
            // Several nodes initialising at once: one creates the table, the others find it.
            await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => store.InitializeAsync()));
            Assert.Equal(0, await store.InitializeAsync());

            await store.WriteAsync([new("a", "n1#1"), new("b", "n1#1"), new("c", "n2#7"), new("b", null), new("d", "n1#1"), new("d", "n2#7")]);

            Assert.Equal(["a", "c", "d"], (await store.ExistingAsync(["a", "b", "c", "d", "e"])).Order(StringComparer.Ordinal));
            Assert.Equal(["a"], await store.HostedOnAsync("n1#1"));
            Assert.Equal(["c", "d"], (await store.HostedOnAsync("n2#7")).Order(StringComparer.Ordinal));
            Assert.Equal(["c", "d"], (await store.HostedElsewhereAsync(new HashSet<string> { "n1#1" })).Order(StringComparer.Ordinal));

            // More IDs than one query takes.
            var many = Enumerable.Range(0, 1200).Select(i => "id-" + i).ToList();
            await store.WriteAsync(many.Select(id => new CatalogChange(id, "n3#1")).ToList());
            Assert.Equal(1200, (await store.ExistingAsync([.. many, "absent"])).Count);
            Assert.Empty(await store.ExistingAsync([]));
        }
        finally
        {
            await cleanup();
        }
    }
}
