using System.Net;
using System.Text.Json;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Protocol;

namespace Broker.AdminHttp.Tests;

/// <summary>GET /api/v1/subscriptions and /api/v1/subscriptions/{filter}/clients against real subscribers.</summary>
public sealed class SubscriptionsApiTests(AdminFixture fixture) : IClassFixture<AdminFixture>
{
    private async Task<JsonElement> Get(string path)
    {
        var response = await fixture.Http.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private async Task<List<JsonElement>> Walk(string path, string rows, int limit)
    {
        var all = new List<JsonElement>();
        var token = "";
        do
        {
            var page = await Get($"{path}{(path.Contains('?') ? '&' : '?')}limit={limit}&page_token={Uri.EscapeDataString(token)}");
            all.AddRange(page.GetProperty(rows).EnumerateArray());
            token = page.GetProperty("next_page_token").GetString()!;
        }
        while (token.Length > 0);
        return all;
    }

    private static async Task Subscribe(TestClient c, string filter, MqttQualityOfServiceLevel qos) =>
        await c.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter(f => f.WithTopic(filter).WithQualityOfServiceLevel(qos)).Build());

    [Fact]
    public async Task Filters_are_counted_over_subscribers_and_each_filter_lists_its_clients()
    {
        var run = Ids.New("subs");
        var a = await TestClient.ConnectAsync(fixture.Node.MqttPort, run + "-a");
        var b = await TestClient.ConnectAsync(fixture.Node.MqttPort, run + "-b");
        var gone = await TestClient.ConnectAsync(fixture.Node.MqttPort, run + "-gone", clean: false, sessionExpiry: 600);
        try
        {
            await Subscribe(a, run + "/dev/+/events/#", MqttQualityOfServiceLevel.AtMostOnce);
            await Subscribe(b, run + "/dev/+/events/#", MqttQualityOfServiceLevel.ExactlyOnce);
            await Subscribe(b, run + "/status", MqttQualityOfServiceLevel.AtLeastOnce);
            await Subscribe(a, "$share/g/" + run + "/jobs", MqttQualityOfServiceLevel.AtLeastOnce);
            await Subscribe(gone, run + "/status", MqttQualityOfServiceLevel.AtMostOnce);
            await Subscribe(gone, run + "/offline", MqttQualityOfServiceLevel.AtLeastOnce);
            await gone.Client.DisconnectAsync();

            var connected = $"/api/v1/subscriptions?prefix={Uri.EscapeDataString(run)}";
            await Wait.UntilAsync(async () => (await Walk(connected, "subscriptions", 0)).Count == 2, TimeSpan.FromSeconds(10),
                "the connected subscribers' filters");
            foreach (var limit in new[] { 1, 2, 0 })
            {
                var rows = await Walk(connected, "subscriptions", limit);
                Assert.Equal([(run + "/dev/+/events/#", 2, 2), (run + "/status", 1, 1)],
                    rows.Select(r => (r.GetProperty("filter").GetString(), r.GetProperty("subscriber_count").GetInt32(), r.GetProperty("max_qos").GetInt32())));
                var all = await Walk(connected + "&state=all", "subscriptions", limit);
                Assert.Equal([(run + "/dev/+/events/#", 2), (run + "/offline", 1), (run + "/status", 2)],
                    all.Select(r => (r.GetProperty("filter").GetString(), r.GetProperty("subscriber_count").GetInt32())));
                var disconnected = await Walk(connected + "&state=disconnected", "subscriptions", limit);
                Assert.Equal([run + "/offline", run + "/status"], disconnected.Select(r => r.GetProperty("filter").GetString()));
            }
            var shared = await Get("/api/v1/subscriptions?prefix=" + Uri.EscapeDataString("$share/g/" + run));
            Assert.Equal("$share/g/" + run + "/jobs", Assert.Single(shared.GetProperty("subscriptions").EnumerateArray()).GetProperty("filter").GetString());

            var clients = $"/api/v1/subscriptions/{Uri.EscapeDataString(run + "/dev/+/events/#")}/clients";
            foreach (var limit in new[] { 1, 0 })
            {
                var page = await Walk(clients, "clients", limit);
                Assert.Equal([(run + "-a", 0), (run + "-b", 2)], page.Select(r => (r.GetProperty("client_id").GetString(), r.GetProperty("qos").GetInt32())));
            }
            var status = await Get($"/api/v1/subscriptions/{Uri.EscapeDataString(run + "/status")}/clients?state=all");
            Assert.Equal(run + "/status", status.GetProperty("filter").GetString());
            Assert.Equal([run + "-b", run + "-gone"], status.GetProperty("clients").EnumerateArray().Select(r => r.GetProperty("client_id").GetString()));

            var bad = await fixture.Http.GetAsync("/api/v1/subscriptions?state=asleep");
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }
        finally
        {
            await a.DisposeAsync();
            await b.DisposeAsync();
            await gone.DisposeAsync();
        }
    }

    [Fact]
    public async Task Subscriptions_of_sessions_at_rest_come_from_the_catalog()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "broker-subs-rest-" + Guid.NewGuid().ToString("N"));
        await using var node = await TestNode.StartAsync("broker.mqtt.session-rest-after = 1s", dataDir);
        using var http = new HttpClient { BaseAddress = new Uri(node.AdminUrl) };
        try
        {
            var run = Ids.New("rest");
            await using (var client = await TestClient.ConnectAsync(node.MqttPort, run, clean: false, sessionExpiry: 600))
            {
                await Subscribe(client, run + "/sleepy/#", MqttQualityOfServiceLevel.AtLeastOnce);
                await client.Client.DisconnectAsync();
            }
            // At rest: the catalog names no host for it. (Read from the file: asking the API would keep the session awake.)
            await Wait.UntilAsync(async () =>
            {
                await using var db = new Microsoft.Data.Sqlite.SqliteConnection(new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder
                {
                    DataSource = Path.Combine(dataDir, "broker.db"), Pooling = false,
                }.ToString());
                await db.OpenAsync();
                await using var cmd = db.CreateCommand();
                cmd.CommandText = "SELECT host FROM broker_sessions WHERE client_id = $id";
                cmd.Parameters.AddWithValue("$id", run);
                return (string?)await cmd.ExecuteScalarAsync() == "";
            }, TimeSpan.FromSeconds(20), "the session to rest");

            var filters = JsonDocument.Parse(await http.GetStringAsync($"/api/v1/subscriptions?state=disconnected&prefix={Uri.EscapeDataString(run)}")).RootElement;
            var row = Assert.Single(filters.GetProperty("subscriptions").EnumerateArray());
            Assert.Equal((run + "/sleepy/#", 1, 1), (row.GetProperty("filter").GetString(), row.GetProperty("subscriber_count").GetInt32(), row.GetProperty("max_qos").GetInt32()));
            var connected = JsonDocument.Parse(await http.GetStringAsync($"/api/v1/subscriptions?prefix={Uri.EscapeDataString(run)}")).RootElement;
            Assert.Empty(connected.GetProperty("subscriptions").EnumerateArray());
            var clients = JsonDocument.Parse(await http.GetStringAsync(
                $"/api/v1/subscriptions/{Uri.EscapeDataString(run + "/sleepy/#")}/clients?state=all")).RootElement;
            Assert.Equal(run, Assert.Single(clients.GetProperty("clients").EnumerateArray()).GetProperty("client_id").GetString());
        }
        finally
        {
            node.DeleteData();
        }
    }
}
