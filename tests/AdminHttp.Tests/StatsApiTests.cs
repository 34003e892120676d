using System.Net;
using System.Text.Json;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Protocol;

namespace Broker.AdminHttp.Tests;

/// <summary>Stats, cluster, overview and cluster status of a one-node cluster, moved by real clients.</summary>
public sealed class StatsApiTests(AdminFixture fixture) : IClassFixture<AdminFixture>
{
    private async Task<JsonElement> Get(string path, HttpStatusCode expected = HttpStatusCode.OK)
    {
        var response = await fixture.Http.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"{path}: {(int)response.StatusCode} {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static long At(JsonElement e, string path) =>
        path.Split('.').Aggregate(e, (x, name) => x.GetProperty(name)).GetInt64();

    [Fact]
    public async Task Stats_count_what_real_clients_do()
    {
        var before = await Get("/api/v1/stats");
        var topic = "stats/" + Ids.New("t");
        await using (var client = await TestClient.ConnectAsync(fixture.Node.MqttPort, Ids.New("stats")))
        {
            await client.Client.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
            var got = 0;
            client.Client.ApplicationMessageReceivedAsync += _ =>
            {
                Interlocked.Increment(ref got);
                return Task.CompletedTask;
            };
            for (var i = 0; i < 5; i++)
            {
                await client.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("x")
                    .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            }
            await Wait.UntilAsync(() => Volatile.Read(ref got) == 5, TimeSpan.FromSeconds(10), "the five messages back");

            var during = await Get("/api/v1/stats");
            Assert.True(At(during, "connections.current") >= 1);
            Assert.True(At(during, "sessions.connected") >= 1);
            Assert.True(At(during, "by_protocol.mqtt.messages.received_by_qos.qos1") - At(before, "by_protocol.mqtt.messages.received_by_qos.qos1") >= 5);
            Assert.True(At(during, "by_protocol.mqtt.messages.sent_by_qos.qos1") - At(before, "by_protocol.mqtt.messages.sent_by_qos.qos1") >= 5);
            Assert.True(At(during, "messages.received") - At(before, "messages.received") >= 5);
            Assert.True(At(during, "bytes.received") - At(before, "bytes.received") >= 5 * (topic.Length + 1));
            Assert.True(At(during, "bytes.sent") > At(before, "bytes.sent"));
            Assert.True(At(during, "connections.total") > At(before, "connections.total"));
            Assert.Equal(At(during, "connections.current"), At(during, "by_protocol.mqtt.connections.current") + At(during, "by_protocol.amqp.connections.current"));

            // Each member's own counts; the sum over one member is that member's.
            var node = Assert.Single(during.GetProperty("nodes").EnumerateObject());
            Assert.Equal(fixture.Node.Name, node.Name);
            var one = await Get("/api/v1/stats?node=" + Uri.EscapeDataString(fixture.Node.Name));
            Assert.False(one.TryGetProperty("nodes", out _));
            Assert.True(At(one, "messages.received") >= At(during, "messages.received"));
        }
        await Wait.UntilAsync(async () => At(await Get("/api/v1/stats"), "connections.disconnections") > At(before, "connections.disconnections"),
            TimeSpan.FromSeconds(10), "the disconnection counted");
        Assert.Equal("node not found", (await Get("/api/v1/stats?node=nobody", HttpStatusCode.NotFound)).GetProperty("error").GetString());
    }

    [Fact]
    public async Task Cluster_overview_and_status_describe_the_members()
    {
        await using var client = await TestClient.ConnectAsync(fixture.Node.MqttPort, Ids.New("overview"));
        var cluster = await Get("/api/v1/cluster");
        Assert.Equal(fixture.Node.Name, cluster.GetProperty("node_id").GetString());
        Assert.True(cluster.GetProperty("is_leader").GetBoolean());
        var member = Assert.Single(cluster.GetProperty("nodes").EnumerateArray());
        Assert.Equal(fixture.Node.Name, member.GetProperty("id").GetString());
        Assert.True(member.GetProperty("healthy").GetBoolean());
        Assert.True(member.GetProperty("leader").GetBoolean());
        Assert.Equal("up", member.GetProperty("status").GetString());
        Assert.StartsWith("akka.tcp://broker@127.0.0.1:", member.GetProperty("address").GetString(), StringComparison.Ordinal);
        Assert.True(member.GetProperty("uptime_seconds").GetInt64() >= 0);

        var overview = await Get("/api/v1/overview");
        Assert.Equal(fixture.Node.Name, overview.GetProperty("node_id").GetString());
        Assert.True(At(overview, "sessions.connected") >= 1);
        Assert.True(At(overview, "sessions.total") >= At(overview, "sessions.connected"));
        Assert.True(At(overview, "stats.connections.current") >= 1);
        Assert.Single(overview.GetProperty("cluster").GetProperty("nodes").EnumerateArray());

        var status = await Get("/cluster/status");
        Assert.Equal(1, status.GetProperty("node_count").GetInt32());
        Assert.True(status.GetProperty("is_leader").GetBoolean());
        Assert.True(At(status, "sessions.connected") >= 1);
    }
}
