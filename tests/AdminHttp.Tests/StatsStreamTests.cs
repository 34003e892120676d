using System.Net;
using System.Text.Json;
using Broker.Tests.Shared;

namespace Broker.AdminHttp.Tests;

/// <summary>GET /api/v1/stats/stream read as a browser's EventSource would: data lines of stats JSON, about one a second.</summary>
public sealed class StatsStreamTests
{
    private static async Task<JsonElement> NextEvent(StreamReader reader, CancellationToken ct)
    {
        while (true)
        {
            var line = await reader.ReadLineAsync(ct) ?? throw new EndOfStreamException("the stream ended");
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                Assert.Equal("", await reader.ReadLineAsync(ct));   // an event ends with a blank line
                return JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone();
            }
        }
    }

    [Fact]
    public async Task Viewers_get_stats_every_second_and_one_too_many_gets_503()
    {
        await using var node = await TestNode.StartAsync("broker.admin.max-stat-streams = 1");
        using var http = new HttpClient { BaseAddress = new Uri(node.AdminUrl), Timeout = Timeout.InfiniteTimeSpan };
        try
        {
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            using (var response = await http.GetAsync("/api/v1/stats/stream", HttpCompletionOption.ResponseHeadersRead, deadline.Token))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(deadline.Token));
                var first = await NextEvent(reader, deadline.Token);
                Assert.Equal(node.Name, Assert.Single(first.GetProperty("nodes").EnumerateObject()).Name);

                // A client's connection shows in the next events.
                await using var client = await TestClient.ConnectAsync(node.MqttPort, Ids.New("sse"));
                var sw = System.Diagnostics.Stopwatch.StartNew();
                JsonElement seen;
                do
                {
                    seen = await NextEvent(reader, deadline.Token);
                }
                while (seen.GetProperty("connections").GetProperty("current").GetInt64() < 1);
                Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"the connection showed after {sw.Elapsed}");

                // The bound: a second viewer is refused while the first watches.
                using var second = await http.GetAsync("/api/v1/stats/stream", HttpCompletionOption.ResponseHeadersRead, deadline.Token);
                Assert.Equal(HttpStatusCode.ServiceUnavailable, second.StatusCode);
                Assert.Equal("too many stats streams", JsonDocument.Parse(await second.Content.ReadAsStringAsync(deadline.Token)).RootElement.GetProperty("error").GetString());
            }

            // The first went away: its place is free again.
            await Wait.UntilAsync(async () =>
            {
                using var again = await http.GetAsync("/api/v1/stats/stream", HttpCompletionOption.ResponseHeadersRead, deadline.Token);
                if (again.StatusCode != HttpStatusCode.OK)
                {
                    return false;
                }
                using var reader = new StreamReader(await again.Content.ReadAsStreamAsync(deadline.Token));
                return (await NextEvent(reader, deadline.Token)).TryGetProperty("uptime_seconds", out _);
            }, TimeSpan.FromSeconds(10), "a new viewer after the first left");
        }
        finally
        {
            node.DeleteData();
        }
    }
}
