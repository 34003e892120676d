using System.Text.Json;
using Broker.Tests.Shared;

namespace Broker.AdminHttp.Tests;

/// <summary>A node whose admin API serves at most three sessions a page.</summary>
public sealed class PageSizeLimitTests : IAsyncLifetime
{
    private TestNode _node = null!;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };

    public async Task InitializeAsync() => _node = await TestNode.StartAsync("broker.admin.max-page-size = 3");

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    private async Task<(List<string> Ids, string Next)> Page(string query)
    {
        var body = JsonDocument.Parse(await _http.GetStringAsync($"{_node.AdminUrl}/api/v1/sessions?{query}")).RootElement;
        return ([.. body.GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("client_id").GetString()!)],
            body.GetProperty("next_page_token").GetString()!);
    }

    [Fact]
    public async Task No_limit_or_a_larger_one_gets_pages_of_the_maximum_size_that_still_cover_every_session()
    {
        var prefix = Ids.New("page");
        var clients = new List<TestClient>();
        try
        {
            for (var i = 0; i < 5; i++)
            {
                clients.Add(await TestClient.ConnectAsync(_node.MqttPort, $"{prefix}-{i}"));
            }

            foreach (var limit in new[] { "0", "100" })
            {
                var (first, next) = await Page($"prefix={prefix}&limit={limit}");
                Assert.Equal([$"{prefix}-0", $"{prefix}-1", $"{prefix}-2"], first);
                Assert.NotEmpty(next);
                var (second, last) = await Page($"prefix={prefix}&limit={limit}&page_token={Uri.EscapeDataString(next)}");
                Assert.Equal([$"{prefix}-3", $"{prefix}-4"], second);
                Assert.Empty(last);
            }
            var (two, _) = await Page($"prefix={prefix}&limit=2");
            Assert.Equal(2, two.Count);
        }
        finally
        {
            foreach (var c in clients)
            {
                await c.DisposeAsync();
            }
        }
    }
}
