using Broker.Tests.Shared;
using Microsoft.Data.Sqlite;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Broker.EndToEnd.Tests;

/// <summary>
/// What the session lifecycle costs in the journal, read straight from the node's SQLite file: a clean session costs
/// no journal row at all (no session events, no remembered entity); a persistent session is listed in the catalog while
/// it exists, and its rows go when it ends.
/// </summary>
public sealed class SessionCatalogTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync();

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    private string Db => new SqliteConnectionStringBuilder { DataSource = Path.Combine(_node.DataDir, "broker.db"), Pooling = false }.ToString();

    private async Task<long> CountAsync(string sql, string? id = null)
    {
        await using var db = new SqliteConnection(Db);
        await db.OpenAsync();
        await using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        if (id is not null)
        {
            cmd.Parameters.AddWithValue("$id", id);
        }
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    private Task<long> JournalRowsAsync() => CountAsync("SELECT (SELECT count(*) FROM event_journal) + (SELECT count(*) FROM snapshot)");

    private Task<long> CatalogRowsAsync(string clientId) => CountAsync("SELECT count(*) FROM broker_sessions WHERE client_id = $id", clientId);

    private Task<long> SessionEventsAsync(string clientId) =>
        CountAsync("SELECT count(*) FROM event_journal WHERE persistence_id = 'session-' || $id AND is_deleted = 0", clientId);

    [Fact]
    public async Task Clean_sessions_write_nothing_to_the_journal_or_the_catalog()
    {
        // One persistent session first, so the journal tables exist and a write would be seen.
        var persistent = Ids.New("persistent");
        await TestClient.LeaveOfflineSessionAsync(_node.MqttPort, persistent, Ids.New("t"), sessionExpiry: 3600);
        // Connected, subscribed, disconnected (the last is written after the client has gone).
        await Wait.UntilAsync(async () => await SessionEventsAsync(persistent) == 3, TimeSpan.FromSeconds(10), "the persistent session's three events");
        var before = await JournalRowsAsync();
        var ids = new List<string>();
        for (var i = 0; i < 20; i++)
        {
            var id = Ids.New("clean");
            ids.Add(id);
            var version = i % 2 == 0 ? MqttProtocolVersion.V311 : MqttProtocolVersion.V500;
            await using var c = await TestClient.ConnectAsync(_node.MqttPort, id, version, clean: true, sessionExpiry: 0);
            await c.SubscribeAsync(Ids.New("t"), MqttQualityOfServiceLevel.ExactlyOnce);
            await c.PublishAsync(Ids.New("t"), "x");
        }
        // Twenty sessions started, subscribed, published and ended: not one row more (no session events, no remembered entity).
        Assert.Equal(before, await JournalRowsAsync());
        foreach (var id in ids)
        {
            Assert.Equal(0, await CatalogRowsAsync(id));
        }

        // A session that was persistent and comes back clean: its rows go.
        var was = Ids.New("was-persistent");
        await TestClient.LeaveOfflineSessionAsync(_node.MqttPort, was, Ids.New("t"), sessionExpiry: 3600);
        Assert.Equal(1, await CatalogRowsAsync(was));
        Assert.True(await SessionEventsAsync(was) > 0);
        await using (await TestClient.ConnectAsync(_node.MqttPort, was, clean: true, sessionExpiry: 0))
        {
            await Wait.UntilAsync(async () => await SessionEventsAsync(was) == 0 && await CatalogRowsAsync(was) == 0, TimeSpan.FromSeconds(10),
                "the journal and catalog rows of a session that restarted clean to go");
        }
    }

    [Fact]
    public async Task A_persistent_session_is_in_the_catalog_until_it_expires()
    {
        var id = Ids.New("expiring");
        var c = await TestClient.ConnectAsync(_node.MqttPort, id, clean: false, sessionExpiry: 1);
        Assert.Equal(1, await CatalogRowsAsync(id));
        await c.SubscribeAsync(Ids.New("t"));
        await c.DisposeAsync();
        await Wait.UntilAsync(async () => await CatalogRowsAsync(id) == 0 && await SessionEventsAsync(id) == 0, TimeSpan.FromSeconds(10),
            "the expired session's catalog row and events to go");
        await using var back = await TestClient.ConnectAsync(_node.MqttPort, id, clean: false, sessionExpiry: 60);
        Assert.False(back.LastConnect!.IsSessionPresent);
    }
}
