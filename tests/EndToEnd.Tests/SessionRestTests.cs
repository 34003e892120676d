using System.Text.Json;
using Broker.Tests.Shared;
using Microsoft.Data.Sqlite;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Broker.EndToEnd.Tests;

/// <summary>
/// Sessions at rest (`mqtt.session-rest-after = 1s` here): a disconnected persistent session leaves memory and lives on in
/// the journal and the session catalog. Messages still reach it, its will and expiry still fire, the admin API still
/// lists it, and a restarted node routes to it without starting it.
/// </summary>
public sealed class SessionRestTests : IAsyncLifetime
{
    private const string RestQuickly = "broker.mqtt.session-rest-after = 1s";
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "broker-rest-" + Guid.NewGuid().ToString("N"));
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync(RestQuickly, _dataDir);

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    private async Task<string?> HostAsync(string clientId)
    {
        await using var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(_dataDir, "broker.db"), Pooling = false }.ToString());
        await db.OpenAsync();
        await using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT host FROM broker_sessions WHERE client_id = $id";
        cmd.Parameters.AddWithValue("$id", clientId);
        return (string?)await cmd.ExecuteScalarAsync();
    }

    private Task WaitAtRestAsync(string clientId) =>
        Wait.UntilAsync(async () => await HostAsync(clientId) == "", TimeSpan.FromSeconds(15), $"session {clientId} to rest");

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public async Task A_session_at_rest_collects_messages_and_is_listed_and_resumed(MqttProtocolVersion version)
    {
        var id = Ids.New("resting");
        var topic = Ids.New("rest");
        await TestClient.LeaveOfflineSessionAsync(_node.MqttPort, id, topic, version, MqttQualityOfServiceLevel.ExactlyOnce, sessionExpiry: 3600);
        await WaitAtRestAsync(id);

        // Listed while at rest, with its subscription.
        using var http = new HttpClient { BaseAddress = new Uri(_node.AdminUrl) };
        using (var page = JsonDocument.Parse(await http.GetStringAsync("/api/v1/sessions?prefix=" + id)))
        {
            var row = Assert.Single(page.RootElement.GetProperty("sessions").EnumerateArray());
            Assert.Equal((id, false, topic), (row.GetProperty("client_id").GetString(), row.GetProperty("connected").GetBoolean(),
                row.GetProperty("subscriptions")[0].GetProperty("filter").GetString()));
        }
        using (var detail = JsonDocument.Parse(await http.GetStringAsync("/api/v1/sessions/" + id)))
        {
            Assert.Equal(1, detail.RootElement.GetProperty("subscription_count").GetInt32());
        }

        // A message starts it, it queues the message and rests again; its client gets it on return.
        await using (var pub = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("pub")))
        {
            await pub.PublishAsync(topic, "while resting", MqttQualityOfServiceLevel.AtLeastOnce);
        }
        await WaitAtRestAsync(id);
        await using var back = await TestClient.ConnectAsync(_node.MqttPort, id, version, clean: false, sessionExpiry: 3600);
        Assert.True(back.LastConnect!.IsSessionPresent);
        Assert.Equal("while resting", back.NextText());
        // The row names this node again once the woken session's write is durable (it does not hold up the CONNACK).
        await Wait.UntilAsync(async () => await HostAsync(id) is { Length: > 0 }, TimeSpan.FromSeconds(10), "the row to name the node again");
    }

    [Fact]
    public async Task A_clean_start_over_a_session_at_rest_discards_it_its_will_its_routes_and_its_row()
    {
        // The CONNACK of a clean start that keeps nothing goes out before the session knows of the one at rest; the
        // CONNECT is still acted on against it before anything else.
        var id = Ids.New("clean-over-rest");
        var topic = Ids.New("old");
        var willTopic = Ids.New("will");
        await using var watcher = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("watcher"));
        await watcher.SubscribeAsync(willTopic);
        var old = await TestClient.ConnectAsync(_node.MqttPort, id, clean: false, sessionExpiry: 3600,
            configure: b => b.WithWillTopic(willTopic).WithWillPayload("old session ended").WithWillDelayInterval(600));
        await old.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        old.Client.Dispose(); // dropped without DISCONNECT: the will waits for its delay
        await WaitAtRestAsync(id);

        await using var fresh = await TestClient.ConnectAsync(_node.MqttPort, id, clean: true, sessionExpiry: 0);
        Assert.False(fresh.LastConnect!.IsSessionPresent);
        Assert.Equal("old session ended", watcher.NextText(TimeSpan.FromSeconds(10)));
        await Wait.UntilAsync(async () => await HostAsync(id) is null, TimeSpan.FromSeconds(10), "the discarded session's row to go");
        await using (var pub = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("pub")))
        {
            await pub.PublishAsync(topic, "to the old subscription", MqttQualityOfServiceLevel.AtLeastOnce);
        }
        fresh.ExpectNothing(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task The_will_delay_and_the_expiry_of_a_session_at_rest_still_fire()
    {
        var id = Ids.New("due");
        var willTopic = Ids.New("will");
        await using var watcher = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("watcher"));
        await watcher.SubscribeAsync(willTopic);
        // Will after 3 s, session over after 5 s: the session rests after 1 s; the durable schedule starts it for both.
        var c = await TestClient.ConnectAsync(_node.MqttPort, id, clean: false, sessionExpiry: 5,
            configure: b => b.WithWillTopic(willTopic).WithWillPayload("delayed will").WithWillDelayInterval(3));
        await c.SubscribeAsync(Ids.New("t"));
        c.Client.Dispose(); // dropped without DISCONNECT
        await WaitAtRestAsync(id);
        Assert.Equal("delayed will", watcher.NextText(TimeSpan.FromSeconds(10)));
        await Wait.UntilAsync(async () => await HostAsync(id) is null, TimeSpan.FromSeconds(15), "the expired session's row to go");
        await using var back = await TestClient.ConnectAsync(_node.MqttPort, id, clean: false, sessionExpiry: 60);
        Assert.False(back.LastConnect!.IsSessionPresent);
    }

    [Fact]
    public async Task A_restarted_node_routes_to_sessions_at_rest_without_starting_them()
    {
        var ids = Enumerable.Range(0, 5).Select(i => Ids.New("restart-" + i)).ToList();
        var topic = Ids.New("after-restart");
        foreach (var id in ids)
        {
            await TestClient.LeaveOfflineSessionAsync(_node.MqttPort, id, topic, sessionExpiry: 3600);
        }
        foreach (var id in ids)
        {
            await WaitAtRestAsync(id);
        }
        await _node.DisposeAsync();
        _node = await TestNode.StartAsync(RestQuickly, _dataDir);

        // Still at rest after the start-up: nothing was recovered.
        foreach (var id in ids)
        {
            Assert.Equal("", await HostAsync(id));
        }
        await using (var pub = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("pub")))
        {
            await pub.PublishAsync(topic, "routed from the catalog", MqttQualityOfServiceLevel.AtLeastOnce);
        }
        foreach (var id in ids)
        {
            await using var back = await TestClient.ConnectAsync(_node.MqttPort, id, clean: false, sessionExpiry: 3600);
            Assert.True(back.LastConnect!.IsSessionPresent);
            Assert.Equal("routed from the catalog", back.NextText());
        }
    }
}
