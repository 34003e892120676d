using System.Diagnostics;
using System.Net.Sockets;
using Broker.Tests.Shared;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Xunit.Abstractions;

namespace Broker.Cluster.Tests.Hostile;

/// <summary>What one QoS 0 flood did to the node's resident set (KiB).</summary>
public sealed record FloodResult(long Messages, double Seconds, long RssBefore, long RssPeak, long RssAtEnd)
{
    /// <summary>
    /// Growth past which the node evidently holds the flood rather than slowing or dropping it. With the flooder held to
    /// its inbound high-water mark and sessions dropping QoS 0 behind a backlog, 3 s of flood grew a node alone by
    /// 25 MiB here; before, by 100-380 MiB (about 100 MiB a second).
    /// </summary>
    public const long BoundedKiB = 192 * 1024;

    public long PeakGrowth => RssPeak - RssBefore;

    public string Outcome =>
        $"published={Messages} msgs_1kib in {Seconds:F1}s rss_peak={RssPeak} rss_growth_peak_kib={PeakGrowth} " +
        $"rss_verdict={(PeakGrowth < BoundedKiB ? "bounded" : "UNBOUNDED_GROWTH")}";
}

public static class QosZeroFlood
{
    /// <summary>
    /// One MQTT client publishes 1 KiB QoS 0 messages as fast as the node takes them for 3 s to a topic whose only
    /// subscriber never reads (its TCP window fills at once), while the node's RSS is sampled every 100 ms.
    /// </summary>
    /// <param name="sessionHost">
    /// When given, the slow subscriber's session lives on this node (client IDs are tried until the admin API names it),
    /// so every message of the flood crosses between the node processes, and their heartbeats travel behind it.
    /// </param>
    public static async Task<FloodResult> RunAsync(NodeProcess node, NodeProcess? sessionHost = null, int seconds = 3)
    {
        var topic = Ids.New("flood") + "/t";
        var before = HostileCluster.RssKiB(node);
        using var slow = await SlowSubscriberAsync(node, sessionHost);
        await slow.SendAsync(MqttWire.Subscribe(4, 1, (topic, 0x00)), SocketFlags.None);
        Assert.Equal([0x00], await MqttWire.ReadSubAckAsync(slow, 4, 1));

        using var flooder = await MqttWire.ConnectedAsync(node.MqttPort, 4, Ids.New("flooder"));
        const int perChunk = 64;
        var chunk = Enumerable.Repeat(MqttWire.Publish(4, topic, 0, 0, new byte[1024]), perChunk).SelectMany(p => p).ToArray();
        var peak = before;
        var sent = 0L;
        var clock = Stopwatch.StartNew();
        using (var flood = new CancellationTokenSource(TimeSpan.FromSeconds(seconds)))
        {
            var sampler = Task.Run(async () =>
            {
                while (!flood.IsCancellationRequested)
                {
                    peak = Math.Max(peak, HostileCluster.RssKiB(node));
                    await Task.Delay(100, CancellationToken.None);
                }
            });
            try
            {
                while (!flood.IsCancellationRequested)
                {
                    await flooder.SendAsync(chunk, SocketFlags.None, flood.Token);
                    sent += perChunk;
                }
            }
            catch (OperationCanceledException)
            {
                // The three seconds are over, possibly while the node was not reading.
            }
            catch (SocketException)
            {
                // The node closed the flooding connection: a way to bound it too.
            }
            await sampler;
        }
        var atEnd = HostileCluster.RssKiB(node);
        return new FloodResult(sent, clock.Elapsed.TotalSeconds, before, Math.Max(peak, atEnd), atEnd);
    }

    /// <summary>A connected MQTT 3.1.1 client with a 4 KiB receive buffer that will never read, its session on <paramref name="sessionHost"/> when given.</summary>
    private static async Task<Socket> SlowSubscriberAsync(NodeProcess node, NodeProcess? sessionHost)
    {
        using var http = new HttpClient { BaseAddress = new Uri(node.AdminUrl), Timeout = TimeSpan.FromSeconds(10) };
        for (var attempt = 0; ; attempt++)
        {
            var id = Ids.New("slow");
            var slow = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
            await slow.ConnectAsync("127.0.0.1", node.MqttPort);
            await slow.SendAsync(MqttWire.Connect(id, 4), SocketFlags.None);
            Assert.Equal(0x20, (await MqttWire.ReadPacketAsync(slow)).Header);
            if (sessionHost is null)
            {
                return slow;
            }
            using var detail = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync("/api/v1/sessions/" + id));
            if (detail.RootElement.GetProperty("node").GetString() == sessionHost.Name)
            {
                return slow;
            }
            slow.Dispose();
            // Sessions spread over the nodes by client ID: each attempt lands on the wanted one about half the time.
            Assert.True(attempt < 40, $"no session landed on {sessionHost.Name} in 40 attempts");
        }
    }
}

/// <summary>
/// The QoS 0 flood on a node process of its own, with an MQTT QoS 1 canary on the same node: the node alone pays for
/// the flood, so the result measures what the node holds for a slow subscriber: it asserts that RSS growth stays under
/// <see cref="FloodResult.BoundedKiB"/>, that the node stays up and that the canary loses nothing.
/// </summary>
[Collection(Name)]
public sealed class QosZeroFloodTests(ITestOutputHelper output)
{
    public const string Name = "hostile-flood";

    [Fact]
    public async Task A_qos0_flood_into_a_slow_subscriber_leaves_the_node_up_and_its_other_clients_whole()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "broker-flood-" + Guid.NewGuid().ToString("N"));
        using var node = await NodeProcess.StartAsync(dataDir, "flood-node");
        try
        {
            var run = Ids.New("flood-canary");
            var ports = new LivePorts();
            ports.Set([node.MqttPort]);
            await using var subscriber = new ChaosSubscriber(run + "-sub", MqttProtocolVersion.V500, ports);
            await subscriber.StartAsync(node.MqttPort, run + "/#");
            var publisher = new ChaosPublisher(run + "-pub", run + "/c", MqttQualityOfServiceLevel.AtLeastOnce, ports);
            using var stop = new CancellationTokenSource();
            var publishing = publisher.RunAsync(50_000, TimeSpan.FromMilliseconds(20), stop.Token);
            await Wait.UntilAsync(() => publisher.Acked.Count >= 10, TimeSpan.FromSeconds(30), "the canary to flow");

            var flood = await QosZeroFlood.RunAsync(node);

            await stop.CancelAsync();
            try
            {
                await publishing;
            }
            catch (Exception ex) when (ex is OperationCanceledException or MQTTnet.Exceptions.MqttCommunicationException)
            {
                // The stop cut a publish short; only acknowledged ones count.
            }
            var acked = publisher.Acked.ToArray();
            int[] Missing() => [.. acked.Except(subscriber.Received.Select(r => r.Seq))];
            await Wait.UntilAsync(() => Missing().Length == 0, TimeSpan.FromSeconds(30), "every acknowledged canary message to arrive")
                .ContinueWith(_ => { }, TaskScheduler.Default);
            var lost = Missing();
            var line = $"qos0_flood_slow_subscriber {flood.Outcome} node_exited={node.HasExited} canary_mqtt_acked={acked.Length} " +
                $"canary_lost={lost.Length} canary_reconnects={subscriber.Disconnects} rss_before={flood.RssBefore} rss_after={flood.RssAtEnd} (KiB)";
            HostileCluster.Report(output, line);
            Assert.False(node.HasExited, node.Log);
            await Wait.UntilAsync(() => HostileCluster.ReadyAsync(node), TimeSpan.FromSeconds(20), "the node's /ready to answer 200");
            Assert.True(lost.Length == 0, $"canary lost {string.Join(',', lost.Order().Take(20))}");
            Assert.True(flood.PeakGrowth < FloodResult.BoundedKiB, flood.Outcome);
        }
        finally
        {
            node.Terminate(TimeSpan.FromSeconds(20));
            try
            {
                Directory.Delete(dataDir, recursive: true);
            }
            catch (IOException)
            {
                // Still held by the process that just exited.
            }
        }
    }
}

/// <summary>The single-node flood runs alone: it saturates the machine's cores for its three seconds.</summary>
[CollectionDefinition(QosZeroFloodTests.Name, DisableParallelization = true)]
public sealed class QosZeroFloodCollection
{
}
