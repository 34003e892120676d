using System.Net;
using System.Text.Json;
using Broker.Tests.Shared;
using MQTTnet;
using OpenQA.Selenium;
using RabbitMQ.Client;
using static Broker.Tests.Shared.DashboardPage;

namespace Broker.Cluster.Tests;

/// <summary>
/// The admin API of three node processes: every node answers for the whole cluster (stats, members, sessions,
/// subscriptions, retained messages, AMQP queues), a client is kicked from another node, and a node killed mid-query is
/// named in <c>unreachable_nodes</c> instead of failing the answer.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class AdminClusterTests
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    private static async Task<JsonElement> Get(NodeProcess node, string path)
    {
        using var response = await Http.GetAsync(node.AdminUrl + path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{node.Name} {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static string[] Names(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetString()!)];

    [Fact]
    public async Task Every_node_answers_for_the_cluster_kicks_anywhere_and_names_a_killed_node()
    {
        await using var db = await TestDatabase.CreateAsync("sqlite");
        await using var cluster = await ProcessCluster.StartAsync(db, 3);
        var nodes = cluster.Nodes.Select(n => n!).ToArray();
        var run = Ids.New("adm");
        var clients = new List<TestClient>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                clients.Add(await TestClient.ConnectAsync(nodes[i].MqttPort, $"{run}-{i}", clean: false, sessionExpiry: 600));
            }
            await clients[2].SubscribeAsync(run + "/t");
            await Wait.UntilAsync(async () => (await clients[0].PublishAsync(run + "/t", "across")).IsSuccess && clients[2].ReceivedCount > 0,
                TimeSpan.FromSeconds(15), "a message across the nodes");

            // Each node sums all three and lists each member.
            foreach (var node in nodes)
            {
                await Wait.UntilAsync(async () =>
                {
                    var stats = await Get(node, "/api/v1/stats");
                    return stats.GetProperty("nodes").EnumerateObject().Count() == 3
                        && stats.GetProperty("sessions").GetProperty("connected").GetInt64() >= 3;
                }, TimeSpan.FromSeconds(15), $"{node.Name} to sum three members");
                var members = (await Get(node, "/api/v1/cluster")).GetProperty("nodes").EnumerateArray().ToList();
                Assert.Equal(["node-1", "node-2", "node-3"], members.Select(m => m.GetProperty("id").GetString()!).ToArray());
                Assert.All(members, m => Assert.True(m.GetProperty("healthy").GetBoolean()));
                Assert.Equal(3, (await Get(node, "/cluster/status")).GetProperty("node_count").GetInt32());
                var sessions = await Get(node, $"/api/v1/sessions?prefix={run}");
                Assert.Equal([$"{run}-0", $"{run}-1", $"{run}-2"],
                    sessions.GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("client_id").GetString()!).ToArray());
            }

            // Subscriptions held on three nodes are summed by each; a retained message and an AMQP queue made through one
            // node are listed by the others.
            for (var i = 0; i < 3; i++)
            {
                await clients[i].SubscribeAsync(run + "/all/#");
            }
            await clients[1].PublishAsync(run + "/retained", "kept", retain: true);
            await using (var amqp = await new ConnectionFactory { HostName = "127.0.0.1", Port = nodes[1].AmqpPort, AutomaticRecoveryEnabled = false }
                .CreateConnectionAsync())
            await using (var channel = await amqp.CreateChannelAsync())
            {
                await channel.QueueDeclareAsync(run + "-q", durable: true, exclusive: false, autoDelete: false);
                await channel.BasicPublishAsync("", run + "-q", "m"u8.ToArray());
            }
            foreach (var node in nodes)
            {
                await Wait.UntilAsync(async () =>
                {
                    var filters = (await Get(node, $"/api/v1/subscriptions?prefix={Uri.EscapeDataString(run + "/all/")}")).GetProperty("subscriptions");
                    return filters.GetArrayLength() == 1 && filters[0].GetProperty("subscriber_count").GetInt32() == 3;
                }, TimeSpan.FromSeconds(10), $"{node.Name} to count the three subscribers");
                var holders = (await Get(node, $"/api/v1/subscriptions/{Uri.EscapeDataString(run + "/all/#")}/clients")).GetProperty("clients");
                Assert.Equal([$"{run}-0", $"{run}-1", $"{run}-2"], holders.EnumerateArray().Select(c => c.GetProperty("client_id").GetString()!).ToArray());
                var retained = (await Get(node, $"/api/v1/retained?prefix={Uri.EscapeDataString(run)}")).GetProperty("retained");
                Assert.Equal(run + "/retained", Assert.Single(retained.EnumerateArray()).GetProperty("topic").GetString());
                await Wait.UntilAsync(async () =>
                {
                    var queues = (await Get(node, $"/api/v1/amqp/queues?prefix={Uri.EscapeDataString(run)}")).GetProperty("queues");
                    return queues.GetArrayLength() == 1 && queues[0].GetProperty("messages_ready").GetInt64() == 1
                        && queues[0].GetProperty("node").GetString() is "node-1" or "node-2" or "node-3";
                }, TimeSpan.FromSeconds(10), $"{node.Name} to list the queue with its message and node");
            }

            // The dashboard of node-3 shows the whole cluster: three healthy members, the sessions of every node, and the
            // detail of a session hosted elsewhere.
            using (var browser = Browser.Start())
            {
                var driver = browser.Driver;
                driver.Navigate().GoToUrl(nodes[2].AdminUrl + "/#/cluster");
                await UntilReady(driver, "cluster");
                var rows = driver.FindElements(By.CssSelector("#view tr[data-node]"));
                Assert.Equal(["node-1", "node-2", "node-3"], rows.Select(r => r.GetAttribute("data-node") ?? "").ToArray());
                Assert.All(rows, r => Assert.Contains("healthy", r.Text, StringComparison.Ordinal));
                driver.Navigate().GoToUrl($"{nodes[2].AdminUrl}/#/sessions?prefix={Uri.EscapeDataString(run)}");
                await UntilReady(driver, "sessions");
                Assert.Equal([$"{run}-0", $"{run}-1", $"{run}-2"], Rows(driver));
                // Each row names the node the API names for it (the member hosting the session).
                foreach (var session in (await Get(nodes[0], $"/api/v1/sessions?prefix={run}")).GetProperty("sessions").EnumerateArray())
                {
                    var row = driver.FindElement(By.CssSelector($"tr[data-client-id='{session.GetProperty("client_id").GetString()}']"));
                    Assert.Contains(session.GetProperty("node").GetString()!, row.Text, StringComparison.Ordinal);
                }
                driver.FindElement(By.CssSelector($"tr[data-client-id='{run}-0']")).Click();
                await Until(driver, () => Text(driver, "#detail-state") == "connected", "the detail of a session");
                Assert.Contains(run + "/all/#", driver.FindElement(By.Id("detail")).Text, StringComparison.Ordinal);
                AssertNoScriptErrors(driver);
            }

            // node-1 kicks the client connected to node-3; its persistent session stays.
            var kicked = new TaskCompletionSource<MqttClientDisconnectReason>(TaskCreationOptions.RunContinuationsAsynchronously);
            clients[2].Client.DisconnectedAsync += e =>
            {
                kicked.TrySetResult(e.Reason);
                return Task.CompletedTask;
            };
            using (var response = await Http.DeleteAsync($"{nodes[0].AdminUrl}/api/v1/sessions/{run}-2"))
            {
                Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
            }
            Assert.Equal(MqttClientDisconnectReason.AdministrativeAction, await kicked.Task.WaitAsync(TimeSpan.FromSeconds(10)));
            await Wait.UntilAsync(async () => (await Get(nodes[1], $"/api/v1/sessions/{run}-2")).GetProperty("state").GetString() == "disconnected",
                TimeSpan.FromSeconds(10), "the kicked session to stay, disconnected");

            // node-2 dies: until the cluster removes it, node-1 and node-3 answer without it and say so.
            cluster.Kill(1);
            // Asked at once and together, so every answer comes before the cluster has removed node-2 (about 8 s).
            var survivors = new[] { nodes[0], nodes[2] };
            var statsAnswers = survivors.Select(n => Get(n, "/api/v1/stats")).ToArray();
            var sessionAnswers = survivors.Select(n => Get(n, $"/api/v1/sessions?prefix={run}")).ToArray();
            var subscriptionAnswers = survivors.Select(n => Get(n, $"/api/v1/subscriptions?prefix={Uri.EscapeDataString(run + "/all/")}")).ToArray();
            var overviewAnswers = survivors.Select(n => Get(n, "/api/v1/overview")).ToArray();
            var retainedAnswers = survivors.Select(n => Get(n, $"/api/v1/retained?prefix={Uri.EscapeDataString(run)}")).ToArray();
            var queueAnswers = survivors.Select(n => Get(n, $"/api/v1/amqp/queues?prefix={Uri.EscapeDataString(run)}")).ToArray();
            foreach (var stats in await Task.WhenAll(statsAnswers))
            {
                Assert.Equal(["node-2"], Names(stats.GetProperty("unreachable_nodes")));
                Assert.Equal(["node-1", "node-3"], stats.GetProperty("nodes").EnumerateObject().Select(p => p.Name).ToArray());
            }
            foreach (var sessions in await Task.WhenAll(sessionAnswers))
            {
                Assert.Equal(["node-2"], Names(sessions.GetProperty("unreachable_nodes")));
                // The page is served: the sessions node-2 hosted are missing from it (named by unreachable_nodes), the others are there.
                Assert.Subset(new HashSet<string?> { $"{run}-0", $"{run}-1", $"{run}-2" },
                    sessions.GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("client_id").GetString()).ToHashSet());
            }
            foreach (var answer in (await Task.WhenAll(subscriptionAnswers)).Concat(await Task.WhenAll(overviewAnswers)))
            {
                Assert.Equal(["node-2"], Names(answer.GetProperty("unreachable_nodes")));
            }
            foreach (var page in await Task.WhenAll(retainedAnswers))
            {
                // The one retained store answers with the message, or, moving off node-2, is named as not answering.
                var rows = page.GetProperty("retained").EnumerateArray().Select(r => r.GetProperty("topic").GetString()).ToArray();
                Assert.True(rows.SequenceEqual([run + "/retained"])
                    || (rows.Length == 0 && Names(page.GetProperty("unreachable_nodes")).SequenceEqual(["node-2"])), page.ToString());
            }
            foreach (var page in await Task.WhenAll(queueAnswers))
            {
                // The queue is listed either way: with its count, or, hosted on node-2, named as not answering.
                var queue = Assert.Single(page.GetProperty("queues").EnumerateArray());
                Assert.True(queue.GetProperty("messages_ready").GetInt64() == 1
                    || (page.TryGetProperty("unreachable_queues", out var late) && Names(late).SequenceEqual([run + "-q"])), queue.ToString());
            }
            await Wait.UntilAsync(async () =>
            {
                var members = (await Get(nodes[0], "/api/v1/cluster")).GetProperty("nodes").EnumerateArray().ToList();
                return members.All(m => m.GetProperty("id").GetString() != "node-2" || !m.GetProperty("healthy").GetBoolean());
            }, TimeSpan.FromSeconds(20), "node-2 marked unhealthy or removed");
            await Wait.UntilAsync(async () => !(await Get(nodes[2], "/api/v1/stats")).TryGetProperty("unreachable_nodes", out _),
                TimeSpan.FromSeconds(30), "node-2 removed, and the answers whole again");
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
