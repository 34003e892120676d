using System.Net;
using System.Text.Json;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Broker.AdminHttp.Tests;

public sealed class SessionsApiTests(AdminFixture fixture) : IClassFixture<AdminFixture>
{
    /// <summary>The Session object's fields as the contract lists them (also what the OpenAPI schema must hold).</summary>
    internal static readonly string[] SessionFields =
    [
        "client_id", "connection_name", "state", "connected", "protocol", "version", "clean_start", "expiry_interval",
        "connected_at", "disconnected_at", "receive_maximum", "max_packet_size", "topic_alias_max", "request_response",
        "request_problem", "has_will", "subscription_count", "inflight_count", "offline_queue_depth", "subscriptions",
    ];

    internal static readonly string[] SubscriptionFields =
        ["filter", "qos", "no_local", "retain_as_published", "retain_handling", "consumer_group", "subscription_id"];


    private int Port => fixture.Node.MqttPort;

    private async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> Get(string path)
    {
        var response = await fixture.Http.GetAsync(path);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
        return (response.StatusCode, body, response);
    }

    private async Task<JsonElement> Detail(string clientId)
    {
        var (status, body, _) = await Get("/api/v1/sessions/" + Uri.EscapeDataString(clientId));
        Assert.Equal(HttpStatusCode.OK, status);
        return body;
    }

    /// <summary>Every session of a prefix, walking pages of <paramref name="limit"/>.</summary>
    private async Task<List<string>> Walk(string prefix, int limit, Func<int, Task>? betweenPages = null)
    {
        var ids = new List<string>();
        var token = "";
        var page = 0;
        do
        {
            var (status, body, _) = await Get($"/api/v1/sessions?prefix={Uri.EscapeDataString(prefix)}&limit={limit}&page_token={Uri.EscapeDataString(token)}");
            Assert.Equal(HttpStatusCode.OK, status);
            var rows = body.GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("client_id").GetString()!).ToList();
            Assert.True(rows.Count <= limit);
            ids.AddRange(rows);
            token = body.GetProperty("next_page_token").GetString()!;
            if (betweenPages is not null)
            {
                await betweenPages(page);
            }
            page++;
        }
        while (token.Length > 0);
        return ids;
    }

    [Fact]
    public async Task Connected_mqtt5_session_has_every_field_of_the_contract()
    {
        var id = Ids.New("fields");
        await using var c = await TestClient.ConnectAsync(Port, id, MqttProtocolVersion.V500, clean: true, sessionExpiry: 120,
            configure: b => b.WithReceiveMaximum(10).WithMaximumPacketSize(4096).WithTopicAliasMaximum(5)
                .WithRequestProblemInformation(true).WithRequestResponseInformation(true).WithWillTopic("wills/" + id).WithWillPayload("bye"));
        await c.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic("devices/+/events").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
                .WithNoLocal(true).WithRetainAsPublished(true).WithRetainHandling(MqttRetainHandling.DoNotSendOnSubscribe))
            .WithSubscriptionIdentifier(42).Build());
        await c.SubscribeAsync("$share/workers/jobs/#", MqttQualityOfServiceLevel.ExactlyOnce);

        var s = await Detail(id);
        Assert.Equal(SessionFields.Order(), s.EnumerateObject().Select(p => p.Name).Where(n => n != "node").Order());
        Assert.Equal(id, s.GetProperty("client_id").GetString());
        Assert.Equal("", s.GetProperty("connection_name").GetString());
        Assert.Equal("connected", s.GetProperty("state").GetString());
        Assert.True(s.GetProperty("connected").GetBoolean());
        Assert.Equal("mqtt5", s.GetProperty("protocol").GetString());
        Assert.Equal(5, s.GetProperty("version").GetInt32());
        Assert.True(s.GetProperty("clean_start").GetBoolean());
        Assert.Equal(120u, s.GetProperty("expiry_interval").GetUInt32());
        Assert.True(DateTimeOffset.TryParse(s.GetProperty("connected_at").GetString(), out var connectedAt));
        Assert.True(DateTimeOffset.UtcNow - connectedAt < TimeSpan.FromMinutes(1));
        Assert.EndsWith("Z", s.GetProperty("connected_at").GetString(), StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Null, s.GetProperty("disconnected_at").ValueKind);
        Assert.Equal(10, s.GetProperty("receive_maximum").GetInt32());
        Assert.Equal(4096u, s.GetProperty("max_packet_size").GetUInt32());
        Assert.Equal(5, s.GetProperty("topic_alias_max").GetInt32());
        Assert.True(s.GetProperty("request_response").GetBoolean());
        Assert.True(s.GetProperty("request_problem").GetBoolean());
        Assert.True(s.GetProperty("has_will").GetBoolean());
        Assert.Equal(2, s.GetProperty("subscription_count").GetInt32());
        Assert.Equal(0, s.GetProperty("inflight_count").GetInt32());
        Assert.Equal(0, s.GetProperty("offline_queue_depth").GetInt32());
        Assert.Equal("test-node", s.GetProperty("node").GetString());

        var subs = s.GetProperty("subscriptions").EnumerateArray().ToList();
        Assert.All(subs, sub => Assert.Equal(SubscriptionFields.Order(), sub.EnumerateObject().Select(p => p.Name).Order()));
        var shared = subs.Single(x => x.GetProperty("filter").GetString() == "$share/workers/jobs/#");
        Assert.Equal("workers", shared.GetProperty("consumer_group").GetString());
        Assert.Equal(2, shared.GetProperty("qos").GetInt32());
        var plain = subs.Single(x => x.GetProperty("filter").GetString() == "devices/+/events");
        Assert.Equal("", plain.GetProperty("consumer_group").GetString());
        Assert.Equal(1, plain.GetProperty("qos").GetInt32());
        Assert.True(plain.GetProperty("no_local").GetBoolean());
        Assert.True(plain.GetProperty("retain_as_published").GetBoolean());
        Assert.Equal(2, plain.GetProperty("retain_handling").GetInt32());
        Assert.Equal(42u, plain.GetProperty("subscription_id").GetUInt32());
    }

    [Fact]
    public async Task Disconnected_persistent_311_session_is_listed_with_its_offline_queue()
    {
        var id = Ids.New("offline");
        var topic = Ids.New("q");
        var c = await TestClient.ConnectAsync(Port, id, MqttProtocolVersion.V311, clean: false);
        await c.SubscribeAsync(topic);
        await c.DisposeAsync();
        await using var pub = await TestClient.ConnectAsync(Port, Ids.New("pub"));
        await Wait.UntilAsync(async () => (await Detail(id)).GetProperty("state").GetString() == "disconnected", TimeSpan.FromSeconds(10), "disconnect seen");
        for (var i = 0; i < 4; i++)
        {
            await pub.PublishAsync(topic, "m" + i);
        }
        var s = await Detail(id);
        Assert.Equal("disconnected", s.GetProperty("state").GetString());
        Assert.False(s.GetProperty("connected").GetBoolean());
        Assert.Equal("mqtt3.1.1", s.GetProperty("protocol").GetString());
        Assert.Equal(4, s.GetProperty("version").GetInt32());
        Assert.False(s.GetProperty("clean_start").GetBoolean());
        Assert.Equal(86400u, s.GetProperty("expiry_interval").GetUInt32());
        Assert.False(s.GetProperty("request_problem").GetBoolean()); // an MQTT 5 flag: false for 3.1.1
        Assert.Equal(JsonValueKind.String, s.GetProperty("disconnected_at").ValueKind);
        Assert.Equal(4, s.GetProperty("offline_queue_depth").GetInt32());
        Assert.Equal(1, s.GetProperty("subscription_count").GetInt32());

        var (_, list, _) = await Get("/api/v1/sessions?state=DISCONNECTED&prefix=" + id);
        Assert.Equal(id, list.GetProperty("sessions").EnumerateArray().Single().GetProperty("client_id").GetString());
        var (_, connected, _) = await Get("/api/v1/sessions?state=connected&prefix=" + id);
        Assert.Empty(connected.GetProperty("sessions").EnumerateArray());
    }

    [Fact]
    public async Task Inflight_and_queue_counts_follow_the_client_receive_maximum()
    {
        var id = Ids.New("window");
        var topic = Ids.New("w");
        var factory = new MqttClientFactory();
        using var slow = factory.CreateMqttClient();
        slow.ApplicationMessageReceivedAsync += e =>
        {
            e.AutoAcknowledge = false;
            return Task.CompletedTask;
        };
        await slow.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", Port).WithClientId(id)
            .WithProtocolVersion(MqttProtocolVersion.V500).WithReceiveMaximum(2).Build());
        await slow.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        await using var pub = await TestClient.ConnectAsync(Port, Ids.New("pub"));
        for (var i = 0; i < 5; i++)
        {
            await pub.PublishAsync(topic, "m" + i);
        }
        var s = await Detail(id);
        Assert.Equal(2, s.GetProperty("inflight_count").GetInt32());
        Assert.Equal(3, s.GetProperty("offline_queue_depth").GetInt32());
        await slow.DisconnectAsync();
    }

    [Fact]
    public async Task Paging_returns_every_session_once_in_client_id_order()
    {
        var prefix = Ids.New("page") + "-";
        var clients = new List<TestClient>();
        for (var i = 0; i < 23; i++)
        {
            clients.Add(await TestClient.ConnectAsync(Port, prefix + i.ToString("D2", System.Globalization.CultureInfo.InvariantCulture)));
        }
        try
        {
            var expected = clients.Select(c => c.ClientId).Order(StringComparer.Ordinal).ToList();
            foreach (var limit in new[] { 1, 5, 7, 23, 50 })
            {
                Assert.Equal(expected, await Walk(prefix, limit));
            }
            var (_, all, _) = await Get("/api/v1/sessions?limit=0&prefix=" + prefix);
            Assert.Equal(23, all.GetProperty("sessions").GetArrayLength());
            Assert.Equal("", all.GetProperty("next_page_token").GetString());
        }
        finally
        {
            foreach (var c in clients)
            {
                await c.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Paging_while_sessions_come_and_go_returns_each_stable_session_exactly_once()
    {
        var prefix = Ids.New("churn") + "-";
        var stable = new List<TestClient>();
        for (var i = 0; i < 20; i += 2)
        {
            stable.Add(await TestClient.ConnectAsync(Port, prefix + i.ToString("D2", System.Globalization.CultureInfo.InvariantCulture)));
        }
        var churn = new List<TestClient>();
        try
        {
            var seen = await Walk(prefix, 3, async page =>
            {
                // Sessions appear before and after the cursor, and earlier churn sessions end.
                churn.Add(await TestClient.ConnectAsync(Port, prefix + (page * 2 + 1).ToString("D2", System.Globalization.CultureInfo.InvariantCulture)));
                churn.Add(await TestClient.ConnectAsync(Port, prefix + "00-" + page.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                if (churn.Count > 2)
                {
                    await churn[0].DisposeAsync();
                    churn.RemoveAt(0);
                }
            });
            Assert.Equal(seen.Count, seen.Distinct().Count());
            Assert.Equal(seen, seen.Order(StringComparer.Ordinal));
            foreach (var c in stable)
            {
                Assert.Single(seen, c.ClientId);
            }
        }
        finally
        {
            foreach (var c in stable.Concat(churn))
            {
                await c.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Client_id_with_a_slash_is_found_url_encoded()
    {
        var id = Ids.New("site") + "/device/7";
        await using var c = await TestClient.ConnectAsync(Port, id);
        var s = await Detail(id);
        Assert.Equal(id, s.GetProperty("client_id").GetString());
    }

    [Theory]
    [InlineData("/api/v1/sessions?state=sleeping", 400, "state must be one of: all, connected, disconnected")]
    [InlineData("/api/v1/sessions?limit=-1", 400, "limit must be a non-negative integer")]
    [InlineData("/api/v1/sessions?limit=ten", 400, "limit must be a non-negative integer")]
    [InlineData("/api/v1/sessions?page_token=not-a-token", 400, "invalid page_token")]
    [InlineData("/api/v1/sessions?page_token=s1.%25%25", 400, "invalid page_token")]
    [InlineData("/api/v1/sessions/no-such-client-xyz", 404, "session not found")]
    [InlineData("/api/v1/nothing-here", 404, "not found")]
    public async Task Bad_requests_get_a_json_error(string path, int status, string message)
    {
        var (code, body, _) = await Get(path);
        Assert.Equal(status, (int)code);
        Assert.Equal(message, body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Unsupported_method_gets_405_with_allow_header()
    {
        var response = await fixture.Http.PostAsync("/api/v1/sessions", new StringContent("{}"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Contains("GET", response.Content.Headers.Allow);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("method not allowed", body.GetProperty("error").GetString());
        var delete = await fixture.Http.DeleteAsync("/api/v1/sessions");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, delete.StatusCode);
    }

    [Fact]
    public async Task Health_and_ready_answer()
    {
        var (status, body, _) = await Get("/health");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("ok", body.GetProperty("status").GetString());
        (status, body, _) = await Get("/ready");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("ready", body.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Clean_session_disappears_after_disconnect()
    {
        var id = Ids.New("gone");
        var c = await TestClient.ConnectAsync(Port, id);
        await Detail(id);
        await c.DisposeAsync();
        await Wait.UntilAsync(async () => (await fixture.Http.GetAsync("/api/v1/sessions/" + id)).StatusCode == HttpStatusCode.NotFound,
            TimeSpan.FromSeconds(10), "session to end");
    }

    [Fact]
    public async Task Topic_characters_stay_readable_in_the_json()
    {
        var id = Ids.New("raw") + "/+x";
        await using var c = await TestClient.ConnectAsync(Port, id);
        await c.Client.SubscribeAsync("devices/+/events/#");
        var raw = await fixture.Http.GetStringAsync("/api/v1/sessions/" + Uri.EscapeDataString(id));
        Assert.Contains("\"filter\":\"devices/+/events/#\"", raw, StringComparison.Ordinal);
        Assert.Contains($"\"client_id\":\"{id}\"", raw, StringComparison.Ordinal);
    }
}
