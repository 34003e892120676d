using System.Globalization;
using System.Net;
using Broker.Tests.Shared;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Xunit.Abstractions;

namespace Broker.Cluster.Tests.Hostile;

/// <summary>
/// Two node processes (node A = node-1, node B = node-2) on one SQLite file, started once for every hostile-client
/// and fuzz test, with a canary running the whole time: MQTT 5 QoS 1 from B to a persistent subscriber on A, and
/// AMQP publishes with confirms on B to a durable queue consumed on A.
/// </summary>
public sealed class HostileCluster : IAsyncLifetime
{
    private const int CanaryCount = 50_000;
    private static readonly TimeSpan CanaryInterval = TimeSpan.FromMilliseconds(20);
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    private readonly CancellationTokenSource _stopCanary = new();
    private TestDatabase? _database;
    private ProcessCluster? _cluster;
    private ChaosSubscriber? _subscriber;
    private ChaosPublisher _publisher = null!;
    private AmqpChaosConsumer? _consumer;
    private AmqpChaosPublisher _amqpPublisher = null!;
    private Task _canary = Task.CompletedTask;
    private int _disposed;

    public NodeProcess A => _cluster!.Nodes[0]!;
    public NodeProcess B => _cluster!.Nodes[1]!;
    public IEnumerable<NodeProcess> Nodes => _cluster!.Live;

    public async Task InitializeAsync()
    {
        _database = await TestDatabase.CreateAsync("sqlite");
        _cluster = await ProcessCluster.StartAsync(_database, 2);
        try
        {
            await StartCanaryAsync();
        }
        catch
        {
            // The node processes must not outlive a failed start (xunit may or may not dispose such a fixture: both are fine).
            await DisposeAsync();
            throw;
        }
    }

    private async Task StartCanaryAsync()
    {
        var run = Ids.New("canary");
        _subscriber = new ChaosSubscriber(run + "-sub", MqttProtocolVersion.V500, PortsOf(A.MqttPort));
        await _subscriber.StartAsync(A.MqttPort, run + "/#");
        _publisher = new ChaosPublisher(run + "-pub", run + "/c", MqttQualityOfServiceLevel.AtLeastOnce, PortsOf(B.MqttPort));

        var queue = run + "-q";
        await using (var connection = await AmqpTestClient.ConnectAsync(B.AmqpPort, run + "-declare"))
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        }
        _consumer = new AmqpChaosConsumer(run + "-consumer", queue, PortsOf(A.AmqpPort), prefetch: 50);
        await _consumer.StartAsync(A.AmqpPort);
        _amqpPublisher = new AmqpChaosPublisher(run + "-amqp-pub", "", _ => queue, PortsOf(B.AmqpPort), window: 20);

        _canary = Task.WhenAll(
            _publisher.RunAsync(CanaryCount, CanaryInterval, _stopCanary.Token),
            _amqpPublisher.RunAsync(CanaryCount, CanaryInterval, _stopCanary.Token));
        await Wait.UntilAsync(() => _publisher.Acked.Count >= 10 && _amqpPublisher.Confirmed.Count >= 10, TimeSpan.FromSeconds(60), "the canary to flow");
    }

    private static LivePorts PortsOf(int port)
    {
        var ports = new LivePorts();
        ports.Set([port]);
        return ports;
    }

    /// <summary>Resident set size of a node process, from /proc.</summary>
    public static long RssKiB(NodeProcess node)
    {
        if (node.HasExited)
        {
            throw new InvalidOperationException($"{node.Name} exited with {node.ExitCode}:\n{string.Join('\n', node.Log.Split('\n').TakeLast(60))}");
        }
        foreach (var line in File.ReadLines($"/proc/{node.Pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }
        throw new InvalidOperationException($"no VmRSS for pid {node.Pid}");
    }

    /// <summary>
    /// Both node processes run and answer /ready with 200, and every canary message acknowledged (MQTT PUBACK) or
    /// confirmed (AMQP) so far has reached its subscriber or consumer. Returns a summary for the case's line.
    /// </summary>
    public async Task<string> AssertHealthyAsync()
    {
        foreach (var node in Nodes)
        {
            Assert.False(node.HasExited, $"{node.Name} exited with {(node.HasExited ? node.ExitCode : 0)}:\n{node.Log}");
            await Wait.UntilAsync(() => ReadyAsync(node), TimeSpan.FromSeconds(20), $"{node.Name} /ready to answer 200");
        }
        var subscriber = _subscriber!;
        var consumer = _consumer!;
        var acked = _publisher.Acked.ToArray();
        var confirmed = _amqpPublisher.Confirmed.Keys.ToArray();
        int[] MqttMissing() => acked.Except(subscriber.Received.Where(r => r.Publisher == _publisher.Name).Select(r => r.Seq)).ToArray();
        int[] AmqpMissing() => confirmed.Except(consumer.Received.Select(r => r.Seq)).ToArray();
        try
        {
            await Wait.UntilAsync(() => MqttMissing().Length == 0 && AmqpMissing().Length == 0, TimeSpan.FromSeconds(30), "every acknowledged canary message to arrive");
        }
        catch (TimeoutException)
        {
            var events = subscriber.Events.Concat(consumer.Events).Concat(_amqpPublisher.Events).ToList();
            Assert.Fail($"canary lost messages: MQTT {string.Join(',', MqttMissing().Order().Take(20))}, AMQP {string.Join(',', AmqpMissing().Order().Take(20))}\n" +
                string.Join('\n', _cluster!.Live.Select(NodeSummary)) + "\n" +
                $"client events ({events.Count}, the first 20):\n" + string.Join('\n', events.Take(20)));
        }
        return $"canary_mqtt_acked={acked.Length} canary_amqp_confirmed={confirmed.Length} canary_lost=0 canary_reconnects={subscriber.Disconnects + consumer.Reconnects}";
    }

    /// <summary>Whether the node runs, and the last warnings and errors it logged.</summary>
    private static string NodeSummary(NodeProcess node) =>
        $"{node.Name}: {(node.HasExited ? $"exited with {node.ExitCode}" : "running")}; its last warnings and errors:\n  " +
        string.Join("\n  ", node.Log.Split('\n')
            .Where(l => l.StartsWith("[ERROR]", StringComparison.Ordinal) || l.StartsWith("[WARNING]", StringComparison.Ordinal) || !l.StartsWith('['))
            .Where(l => l.Length > 0).TakeLast(15).Select(l => l.Length > 400 ? l[..400] : l));

    /// <summary>Whether the node's admin /ready answers 200 (an error or a timeout counts as no).</summary>
    public static async Task<bool> ReadyAsync(NodeProcess node)
    {
        try
        {
            using var response = await Http.GetAsync($"{node.AdminUrl}/ready");
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    /// <summary>Where each node's log ends now, for <see cref="LoggedSince"/>.</summary>
    public int[] LogMark() => [.. Nodes.Select(n => n.Log.Split('\n').Length)];

    /// <summary>The warnings and errors the nodes logged since <paramref name="mark"/> (Akka's "[WARNING]" and "[ERROR]" lines).</summary>
    public List<string> LoggedSince(int[] mark) =>
        [.. Nodes.SelectMany((n, i) => n.Log.Split('\n').Skip(mark[i])
            .Where(l => l.StartsWith("[ERROR]", StringComparison.Ordinal) || l.StartsWith("[WARNING]", StringComparison.Ordinal))
            .Select(l => $"{n.Name}: {l}"))];

    /// <summary>A "hostile:" line in the test output and on stdout; scripts/test.sh collects them from the TRX files.</summary>
    public static void Report(ITestOutputHelper output, string line)
    {
        output.WriteLine("hostile: " + line);
        Console.WriteLine("hostile: " + line);
    }

    public async Task DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        await _stopCanary.CancelAsync();
        try
        {
            await _canary;
        }
        catch (Exception)
        {
            // A canary publish cut off by the stop ends in a timeout or a cancellation; the tests already judged the canary.
        }
        try
        {
            if (_consumer is not null)
            {
                await _consumer.DisposeAsync();
            }
            if (_subscriber is not null)
            {
                await _subscriber.DisposeAsync();
            }
        }
        finally
        {
            if (_cluster is not null)
            {
                await _cluster.DisposeAsync();
            }
            if (_database is not null)
            {
                await _database.DisposeAsync();
            }
        }
        _stopCanary.Dispose();
    }
}

/// <summary>The hostile-client and fuzz tests share one cluster and run alone: RSS and the canary measure only them.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HostileCollection : ICollectionFixture<HostileCluster>
{
    public const string Name = "hostile";
}
