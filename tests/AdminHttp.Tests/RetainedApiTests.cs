using System.Net;
using System.Text.Json;
using Broker.Tests.Shared;
using MQTTnet.Protocol;

namespace Broker.AdminHttp.Tests;

/// <summary>GET and DELETE /api/v1/retained against messages real clients retained.</summary>
public sealed class RetainedApiTests(AdminFixture fixture) : IClassFixture<AdminFixture>
{
    private async Task<(HttpStatusCode Status, JsonElement Body)> Get(string path)
    {
        var response = await fixture.Http.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    [Fact]
    public async Task Retained_messages_are_listed_in_pages_and_removed_by_topic()
    {
        var prefix = Ids.New("ret") + "/";
        // In UTF-8 byte order, as the API lists them.
        var topics = new[] { prefix + "a", prefix + "b/c", prefix + "b/ü%", prefix + "d e", prefix + "z" };
        await using (var client = await TestClient.ConnectAsync(fixture.Node.MqttPort, Ids.New("retainer")))
        {
            foreach (var (topic, i) in topics.Select((t, i) => (t, i)))
            {
                await client.PublishAsync(topic, new string('p', i + 1), MqttQualityOfServiceLevel.AtLeastOnce, retain: true);
            }
        }

        foreach (var limit in new[] { 1, 2, 5, 0 })
        {
            var seen = new List<JsonElement>();
            var token = "";
            do
            {
                var (status, page) = await Get($"/api/v1/retained?prefix={Uri.EscapeDataString(prefix)}&limit={limit}&page_token={Uri.EscapeDataString(token)}");
                Assert.Equal(HttpStatusCode.OK, status);
                seen.AddRange(page.GetProperty("retained").EnumerateArray());
                token = page.GetProperty("next_page_token").GetString()!;
            }
            while (token.Length > 0);
            Assert.Equal(topics, seen.Select(r => r.GetProperty("topic").GetString()!).ToArray());
            Assert.Equal([1, 2, 3, 4, 5], seen.Select(r => r.GetProperty("payload_bytes").GetInt32()).ToArray());
            Assert.All(seen, r => Assert.Equal(1, r.GetProperty("qos").GetInt32()));
            Assert.All(seen, r => Assert.EndsWith("Z", r.GetProperty("updated_at").GetString(), StringComparison.Ordinal));
        }

        var delete = await fixture.Http.DeleteAsync("/api/v1/retained/" + Uri.EscapeDataString(prefix + "b/ü%"));
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        var (_, after) = await Get($"/api/v1/retained?prefix={Uri.EscapeDataString(prefix)}");
        Assert.Equal(topics.Where(t => t != prefix + "b/ü%"), after.GetProperty("retained").EnumerateArray().Select(r => r.GetProperty("topic").GetString()));

        // A new subscriber no longer gets the removed one, and still gets the others.
        await using var late = await TestClient.ConnectAsync(fixture.Node.MqttPort, Ids.New("late"));
        await late.SubscribeAsync(prefix + "b/#");
        Assert.Equal(prefix + "b/c", late.Next().Topic);
        Assert.Throws<TimeoutException>(() => late.Next(TimeSpan.FromMilliseconds(500)));

        var again = await fixture.Http.DeleteAsync("/api/v1/retained/" + Uri.EscapeDataString(prefix + "b/ü%"));
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        Assert.Equal("retained message not found", JsonDocument.Parse(await again.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
        var (badStatus, bad) = await Get("/api/v1/retained?page_token=nope");
        Assert.Equal(HttpStatusCode.BadRequest, badStatus);
        Assert.Equal("invalid page_token", bad.GetProperty("error").GetString());
    }
}
