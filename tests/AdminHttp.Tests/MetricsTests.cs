using System.Diagnostics;
using System.Text.Json;
using Broker.Tests.Shared;

namespace Broker.AdminHttp.Tests;

/// <summary>GET /metrics read by the Prometheus project's own parser (python3-prometheus-client), as a scrape would.</summary>
public sealed class MetricsTests(AdminFixture fixture) : IClassFixture<AdminFixture>
{
    /// <summary>Fetches and parses the exposition; each sample as "name{label=value,...}" → value. A format error fails the parse.</summary>
    private const string Scraper = """
        import json, sys, urllib.request
        from prometheus_client.parser import text_string_to_metric_families
        response = urllib.request.urlopen(sys.argv[1], timeout=10)
        assert response.headers.get_content_type() == "text/plain", response.headers.get_content_type()
        samples = {}
        types = {}
        for family in text_string_to_metric_families(response.read().decode("utf-8")):
            types[family.name] = family.type
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}"] = s.value
        print(json.dumps({"types": types, "samples": samples}))
        """;

    private static async Task<(Dictionary<string, string> Types, Dictionary<string, double> Samples)> Scrape(string url)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(Scraper);
        psi.ArgumentList.Add(url);
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        Assert.True(process.ExitCode == 0, $"the Prometheus parser refused the exposition (scripts/test-tools.sh installs python3-prometheus-client): {await stderr}");
        var parsed = JsonDocument.Parse(await stdout).RootElement;
        return (
            parsed.GetProperty("types").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!),
            parsed.GetProperty("samples").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble()));
    }

    [Fact]
    public async Task The_exposition_parses_and_its_counters_move_when_clients_publish()
    {
        var url = fixture.Node.AdminUrl + "/metrics";
        var (_, before) = await Scrape(url);
        var topic = "metrics/" + Ids.New("t");
        await using (var client = await TestClient.ConnectAsync(fixture.Node.MqttPort, Ids.New("metrics")))
        {
            await client.SubscribeAsync(topic);
            for (var i = 0; i < 3; i++)
            {
                await client.PublishAsync(topic, "m");
            }
            for (var i = 0; i < 3; i++)
            {
                client.Next();
            }
            var (types, during) = await Scrape(url);
            Assert.Equal("counter", types["broker_messages_received"]);
            Assert.Equal("gauge", types["broker_connections"]);
            Assert.Equal("counter", types["process_cpu_seconds"]);
            Assert.True(during["broker_messages_received_total{protocol=mqtt,qos=1}"] - before.GetValueOrDefault("broker_messages_received_total{protocol=mqtt,qos=1}") >= 3);
            Assert.True(during["broker_messages_sent_total{protocol=mqtt,qos=1}"] - before.GetValueOrDefault("broker_messages_sent_total{protocol=mqtt,qos=1}") >= 3);
            Assert.True(during["broker_received_bytes_total{protocol=mqtt}"] > before.GetValueOrDefault("broker_received_bytes_total{protocol=mqtt}"));
            Assert.True(during["broker_connections{protocol=mqtt}"] >= 1);
            Assert.True(during["broker_sessions{state=connected}"] >= 1);
            Assert.True(during["broker_subscriptions{}"] >= 1);
            Assert.Contains("broker_connections_closed_total{protocol=mqtt,reason=kicked}", during.Keys);
            Assert.Equal(1, during["broker_cluster_members{status=up}"]);
            Assert.True(during["process_working_set_bytes{}"] > 0);
            Assert.Contains(during.Keys, k => k.StartsWith("dotnet_collection_count_total{", StringComparison.Ordinal));
            // Persistent sessions write their journal: the histogram of those writes counts them.
            await using (var persistent = await TestClient.ConnectAsync(fixture.Node.MqttPort, Ids.New("journaled"), clean: false, sessionExpiry: 600))
            {
                await persistent.SubscribeAsync(topic + "/j");
            }
            await Wait.UntilAsync(async () => (await Scrape(url)).Samples.GetValueOrDefault("broker_journal_write_seconds_count{}") > 0,
                TimeSpan.FromSeconds(10), "a journal write observed");
            Assert.Equal("histogram", (await Scrape(url)).Types["broker_journal_write_seconds"]);
            // A message for that session while its client is away is queued for it: the gauge shows it.
            await client.PublishAsync(topic + "/j", "queued");
            await Wait.UntilAsync(async () => (await Scrape(url)).Samples.GetValueOrDefault("broker_session_messages{state=queued}") >= 1,
                TimeSpan.FromSeconds(10), "the queued message in the gauge");
        }
    }

    [Fact]
    public async Task Queue_retained_and_confirm_metrics_follow_amqp_and_mqtt_clients()
    {
        var url = fixture.Node.AdminUrl + "/metrics";
        var (_, before) = await Scrape(url);
        await using (var mqtt = await TestClient.ConnectAsync(fixture.Node.MqttPort, Ids.New("retainer")))
        {
            await mqtt.PublishAsync("metrics/retained/" + Ids.New("r"), "kept", retain: true);
        }
        await using var amqp = await new RabbitMQ.Client.ConnectionFactory { HostName = "127.0.0.1", Port = fixture.Node.AmqpPort, AutomaticRecoveryEnabled = false }
            .CreateConnectionAsync();
        await using var channel = await amqp.CreateChannelAsync(new RabbitMQ.Client.CreateChannelOptions(
            publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        var queue = Ids.New("metrics-q");
        await channel.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: false);
        for (var i = 0; i < 3; i++)
        {
            // Returns once the broker confirmed it.
            await channel.BasicPublishAsync("", queue, true, new RabbitMQ.Client.BasicProperties(), "m"u8.ToArray());
        }
        await Wait.UntilAsync(async () =>
        {
            var (_, now) = await Scrape(url);
            return now["broker_amqp_queue_messages{state=ready}"] >= 3
                && now["broker_amqp_confirms_total{answer=ack}"] - before.GetValueOrDefault("broker_amqp_confirms_total{answer=ack}") >= 3
                && now["broker_retained_messages{}"] >= 1;
        }, TimeSpan.FromSeconds(10), "ready messages, confirms and the retained message in the metrics");
        var got = await channel.BasicGetAsync(queue, autoAck: false);
        Assert.NotNull(got);
        await Wait.UntilAsync(async () => (await Scrape(url)).Samples["broker_amqp_queue_messages{state=unacked}"] >= 1,
            TimeSpan.FromSeconds(10), "the delivered message unacknowledged");
        await channel.QueueDeleteAsync(queue, ifUnused: false, ifEmpty: false);
    }
}
