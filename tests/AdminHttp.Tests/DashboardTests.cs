using System.Text;
using Broker.AdminHttp.Security;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Formatter;
using OpenQA.Selenium;
using RabbitMQ.Client;
using Xunit.Abstractions;
using static Broker.Tests.Shared.DashboardPage;

namespace Broker.AdminHttp.Tests;

/// <summary>
/// The web dashboard at <c>/</c>, driven in Debian's headless Chromium (scripts/test-tools.sh installs it) against a real
/// node with real MQTT and AMQP clients: what an operator sees and clicks.
/// </summary>
public sealed class DashboardTests(AdminFixture fixture, ITestOutputHelper output) : IClassFixture<AdminFixture>
{
    [Fact]
    public async Task Every_view_shows_the_nodes_data_and_a_kicked_client_is_shown_disconnected()
    {
        var node = fixture.Node;
        var prefix = Ids.New("dash") + "-";
        var ids = Enumerable.Range(1, 5).Select(i => $"{prefix}c{i}").ToList();
        var clients = new List<TestClient>();
        var shots = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "broker-dashboard-" + Guid.NewGuid().ToString("N")[..8])).FullName;
        using var publishing = new CancellationTokenSource();
        Task? publisher = null;
        try
        {
            foreach (var id in ids)
            {
                var client = await TestClient.ConnectAsync(node.MqttPort, id, id.EndsWith("c1", StringComparison.Ordinal) ? MqttProtocolVersion.V500 : MqttProtocolVersion.V311,
                    clean: false, sessionExpiry: 3600);
                await client.SubscribeAsync("dash/" + id + "/#");
                clients.Add(client);
            }
            var target = clients[0];
            var kicked = new TaskCompletionSource<MqttClientDisconnectReason>(TaskCreationOptions.RunContinuationsAsynchronously);
            target.Client.DisconnectedAsync += e =>
            {
                kicked.TrySetResult(e.Reason);
                return Task.CompletedTask;
            };
            var retainedTopic = "dash/retained/" + prefix;
            await clients[1].PublishAsync(retainedTopic, "21.5", retain: true);
            // A steady trickle of messages, so the rate chart has something to draw.
            publisher = Task.Run(async () =>
            {
                while (!publishing.IsCancellationRequested)
                {
                    await clients[2].PublishAsync("dash/" + ids[3] + "/tick", "x");
                    await Task.Delay(100, publishing.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                }
            });

            await using var amqp = await new ConnectionFactory { HostName = "127.0.0.1", Port = node.AmqpPort, AutomaticRecoveryEnabled = false, ClientProvidedName = "dash-amqp" }
                .CreateConnectionAsync();
            await using var channel = await amqp.CreateChannelAsync();
            var queue = prefix + "queue";
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
            await channel.BasicPublishAsync("", queue, Encoding.UTF8.GetBytes("hello"));

            using var browser = Browser.Start();
            var driver = browser.Driver;

            // Overview: first paint from /api/v1/overview, then live figures and charts from the stats stream.
            driver.Navigate().GoToUrl(node.AdminUrl + "/");
            await Until(driver, () => Text(driver, "#ov-node") == node.Name, "the overview to name the node");
            await Until(driver, () => long.TryParse(Text(driver, "#ov-connections")?.Replace(",", "", StringComparison.Ordinal), out var n) && n >= 6,
                "the overview to count the 6 connections");
            await Until(driver, () => int.Parse(Attribute(driver, "#chart-rates", "data-points") ?? "0", System.Globalization.CultureInfo.InvariantCulture) >= 2,
                "at least 2 points on the rate chart");
            Assert.Contains(node.Name, driver.FindElement(By.CssSelector("#view table.data")).Text, StringComparison.Ordinal);
            Assert.Contains("healthy", driver.FindElement(By.CssSelector("#view table.data")).Text, StringComparison.Ordinal);
            Shot(driver, shots, "overview-first-paint", output);

            // Sessions, two a page: First and Next walk through every session of the prefix, in client ID order.
            driver.Navigate().GoToUrl($"{node.AdminUrl}/#/sessions?prefix={Uri.EscapeDataString(prefix)}&limit=2");
            await UntilReady(driver, "sessions");
            var seen = new List<string>(Rows(driver));
            Assert.Equal(ids[..2], seen);
            while (driver.FindElement(By.Id("next")).Enabled)
            {
                var before = Rows(driver);
                driver.FindElement(By.Id("next")).Click();
                await Until(driver, () => View(driver) == ("sessions", "ready") && !Rows(driver).SequenceEqual(before), "the next page of sessions");
                seen.AddRange(Rows(driver));
            }
            Assert.Equal(ids, seen);
            driver.FindElement(By.Id("first")).Click();
            await Until(driver, () => View(driver) == ("sessions", "ready") && Rows(driver).SequenceEqual(ids[..2]), "the first page again");

            // The detail of one client, then Kick (confirmed): the client is disconnected and the panel says so.
            driver.FindElement(By.CssSelector($"tr[data-client-id='{ids[0]}']")).Click();
            await Until(driver, () => Text(driver, "#detail-state") == "connected", "the detail panel of " + ids[0]);
            var detail = driver.FindElement(By.Id("detail")).Text;
            Assert.Contains("dash/" + ids[0] + "/#", detail, StringComparison.Ordinal);
            Assert.Contains(node.Name, detail, StringComparison.Ordinal);
            Assert.Contains("mqtt5", detail, StringComparison.Ordinal);
            Shot(driver, shots, "session-detail", output);
            driver.FindElement(By.Id("kick")).Click();
            IAlert? confirm = null;
            await Until(driver, () =>
            {
                try
                {
                    confirm = driver.SwitchTo().Alert();
                    return true;
                }
                catch (NoAlertPresentException)
                {
                    return false;
                }
            }, "the confirm dialog", checkErrors: false);
            Assert.Contains(ids[0], confirm!.Text, StringComparison.Ordinal);
            confirm.Accept();
            Assert.Equal(MqttClientDisconnectReason.AdministrativeAction, await kicked.Task.WaitAsync(Patience));
            await Until(driver, () => Text(driver, "#detail-state") == "disconnected", "the panel to show the client disconnected");
            Shot(driver, shots, "sessions", output);

            // The filters and page size picked in the form: connected only, ten a page, leaves out the kicked client.
            driver.FindElement(By.CssSelector("#session-filters select[name='state'] option[value='connected']")).Click();
            driver.FindElement(By.CssSelector("#session-filters select[name='limit'] option[value='10']")).Click();
            driver.FindElement(By.Id("apply")).Click();
            await Until(driver, () => View(driver) == ("sessions", "ready") && Rows(driver).SequenceEqual(ids[1..]), "the connected sessions on one page");
            Assert.False(driver.FindElement(By.Id("next")).Enabled);

            // AMQP queues, retained messages, members, subscriptions.
            driver.Navigate().GoToUrl($"{node.AdminUrl}/#/queues?prefix={Uri.EscapeDataString(prefix)}");
            await UntilReady(driver, "queues");
            Assert.Contains(queue, driver.FindElement(By.CssSelector("#view table.data")).Text, StringComparison.Ordinal);
            Shot(driver, shots, "queues", output);

            driver.Navigate().GoToUrl($"{node.AdminUrl}/#/retained?prefix={Uri.EscapeDataString("dash/retained/")}");
            await UntilReady(driver, "retained");
            Assert.Contains(retainedTopic, driver.FindElement(By.CssSelector("#view table.data")).Text, StringComparison.Ordinal);
            Shot(driver, shots, "retained", output);

            driver.Navigate().GoToUrl($"{node.AdminUrl}/#/cluster");
            await UntilReady(driver, "cluster");
            Assert.Contains(node.Name, driver.FindElement(By.CssSelector("#view table.data")).Text, StringComparison.Ordinal);
            Shot(driver, shots, "cluster", output);

            driver.Navigate().GoToUrl($"{node.AdminUrl}/#/subscriptions?prefix={Uri.EscapeDataString("dash/" + prefix)}");
            await UntilReady(driver, "subscriptions");
            Assert.Contains("dash/" + ids[3] + "/#", driver.FindElement(By.CssSelector("#view table.data")).Text, StringComparison.Ordinal);
            Shot(driver, shots, "subscriptions", output);

            // Back to the overview through the menu: the charts kept gathering points meanwhile.
            driver.FindElement(By.CssSelector("a[data-nav='overview']")).Click();
            await Until(driver, () => int.Parse(Attribute(driver, "#chart-rates", "data-points") ?? "0", System.Globalization.CultureInfo.InvariantCulture) >= 8,
                "8 points on the rate chart");
            Assert.NotEqual("0", driver.FindElement(By.CssSelector("#chart-rates")).FindElement(By.XPath("..")).FindElement(By.CssSelector("[data-value='received']")).Text);
            Shot(driver, shots, "overview", output);
            AssertNoError(driver);
            AssertNoScriptErrors(driver);
        }
        finally
        {
            await publishing.CancelAsync();
            if (publisher is not null)
            {
                await publisher;
            }
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
            output.WriteLine("screenshots: " + shots);
        }
    }

    [Fact]
    public async Task With_admin_tokens_the_page_asks_for_one_and_then_shows_the_overview()
    {
        var folder = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "broker-dashboard-tokens-" + Guid.NewGuid().ToString("N"))).FullName;
        var tokens = Path.Combine(folder, "tokens");
        var secret = AdminTokens.Add(tokens, "ops", AdminRole.Admin);
        var node = await TestNode.StartAsync($"broker.admin.tokens-file = \"{tokens.Replace("\\", "/", StringComparison.Ordinal)}\"");
        try
        {
            // The page and its files need no token, never go stale in a cache, and the API still does need one.
            using var http = new HttpClient { BaseAddress = new Uri(node.AdminUrl) };
            foreach (var (path, type) in new[] { ("/", "text/html"), ("/dashboard/app.js", "text/javascript"), ("/dashboard/app.css", "text/css") })
            {
                var response = await http.GetAsync(path);
                Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
                Assert.Equal(type, response.Content.Headers.ContentType?.MediaType);
                Assert.True(response.Headers.CacheControl?.NoCache, path + " is not no-cache");
            }
            Assert.Equal(System.Net.HttpStatusCode.NotFound, (await http.GetAsync("/dashboard/nothing.js")).StatusCode);
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await http.GetAsync("/api/v1/overview")).StatusCode);
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await http.GetAsync("/dashboardx")).StatusCode);

            using var browser = Browser.Start();
            var driver = browser.Driver;
            driver.Navigate().GoToUrl(node.AdminUrl + "/");
            await Until(driver, () => driver.FindElement(By.Id("auth")).Displayed && View(driver).State == "auth", "the token prompt");
            driver.FindElement(By.Id("token")).SendKeys("wrong-secret");
            driver.FindElement(By.Id("token-save")).Click();
            await Until(driver, () => driver.FindElement(By.Id("auth")).Displayed && View(driver).State == "auth", "the prompt again after a wrong token");

            driver.FindElement(By.Id("token")).SendKeys(secret);
            driver.FindElement(By.Id("token-save")).Click();
            await Until(driver, () => Text(driver, "#ov-node") == node.Name, "the overview after the token");
            await Until(driver, () => int.Parse(Attribute(driver, "#chart-rates", "data-points") ?? "0", System.Globalization.CultureInfo.InvariantCulture) >= 2,
                "the stats stream to feed the chart with the token");
            Assert.False(driver.FindElement(By.Id("auth")).Displayed);

            // The token stays for the tab: another view loads without asking again.
            driver.Navigate().GoToUrl(node.AdminUrl + "/#/cluster");
            await UntilReady(driver, "cluster");
            Assert.False(driver.FindElement(By.Id("auth")).Displayed);
        }
        finally
        {
            await node.DisposeAsync();
            node.DeleteData();
            Directory.Delete(folder, recursive: true);
        }
    }
}
