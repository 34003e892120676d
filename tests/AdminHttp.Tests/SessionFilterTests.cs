using System.Net;
using System.Text.Json;
using Broker.Tests.Shared;
using MQTTnet.Formatter;

namespace Broker.AdminHttp.Tests;

/// <summary>GET /api/v1/sessions filtered by node, protocol and user name, still ordered by client ID with exact cursors.</summary>
public sealed class SessionFilterTests(AdminFixture fixture) : IClassFixture<AdminFixture>
{
    private async Task<List<string>> Walk(string query, int limit)
    {
        var ids = new List<string>();
        var token = "";
        do
        {
            var response = await fixture.Http.GetAsync($"/api/v1/sessions?{query}&limit={limit}&page_token={Uri.EscapeDataString(token)}");
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, text);
            var page = JsonDocument.Parse(text).RootElement;
            ids.AddRange(page.GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("client_id").GetString()!));
            token = page.GetProperty("next_page_token").GetString()!;
        }
        while (token.Length > 0);
        return ids;
    }

    [Fact]
    public async Task Filters_keep_the_order_and_the_cursor()
    {
        var run = Ids.New("flt");
        var clients = new List<TestClient>();
        try
        {
            clients.Add(await TestClient.ConnectAsync(fixture.Node.MqttPort, run + "-a5", MqttProtocolVersion.V500, configure: b => b.WithCredentials("alice-" + run, "x")));
            clients.Add(await TestClient.ConnectAsync(fixture.Node.MqttPort, run + "-b4", MqttProtocolVersion.V311, configure: b => b.WithCredentials("bob-" + run, "x")));
            clients.Add(await TestClient.ConnectAsync(fixture.Node.MqttPort, run + "-c3", MqttProtocolVersion.V310, configure: b => b.WithCredentials("alice-" + run, "x")));
            clients.Add(await TestClient.ConnectAsync(fixture.Node.MqttPort, run + "-d5", MqttProtocolVersion.V500));
            var p = "prefix=" + Uri.EscapeDataString(run);
            await Wait.UntilAsync(async () => (await Walk(p, 0)).Count == 4, TimeSpan.FromSeconds(10), "the four sessions listed");

            foreach (var limit in new[] { 1, 2, 0 })
            {
                Assert.Equal([run + "-a5", run + "-d5"], await Walk(p + "&protocol=mqtt5", limit));
                Assert.Equal([run + "-b4"], await Walk(p + "&protocol=mqtt3.1.1", limit));
                Assert.Equal([run + "-c3"], await Walk(p + "&protocol=mqtt3.1", limit));
                Assert.Equal([run + "-a5", run + "-c3"], await Walk(p + "&username=" + Uri.EscapeDataString("alice-" + run), limit));
                Assert.Equal([run + "-a5", run + "-b4", run + "-c3", run + "-d5"], await Walk(p + "&node=" + Uri.EscapeDataString(fixture.Node.Name), limit));
                Assert.Empty(await Walk(p + "&protocol=amqp0.9.1", limit));
            }
            // An empty filter is no filter.
            Assert.Equal([run + "-a5", run + "-d5"], await Walk(p + "&protocol=mqtt5&state=connected&username=", 1));

            await using (var amqp = await new RabbitMQ.Client.ConnectionFactory
            {
                HostName = "127.0.0.1", Port = fixture.Node.AmqpPort, ClientProvidedName = run, AutomaticRecoveryEnabled = false,
            }.CreateConnectionAsync())
            {
                await Wait.UntilAsync(async () => (await Walk("prefix=amqp091:&protocol=amqp0.9.1&username=guest", 1)).Count > 0,
                    TimeSpan.FromSeconds(10), "the AMQP connection by protocol and user");
                Assert.Empty(await Walk("prefix=amqp091:&protocol=mqtt5", 1));
            }

            var unknownNode = await fixture.Http.GetAsync("/api/v1/sessions?node=nobody");
            Assert.Equal(HttpStatusCode.NotFound, unknownNode.StatusCode);
            var badProtocol = await fixture.Http.GetAsync("/api/v1/sessions?protocol=mqtt4");
            Assert.Equal(HttpStatusCode.BadRequest, badProtocol.StatusCode);
            Assert.Equal("protocol must be one of: mqtt3.1, mqtt3.1.1, mqtt5, amqp0.9.1",
                JsonDocument.Parse(await badProtocol.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
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
