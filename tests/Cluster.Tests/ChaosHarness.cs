using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Broker.Cluster.Tests;

/// <summary>Node processes of the built executable on 127.0.0.1, sharing one database; node i is named node-(i+1).</summary>
public sealed class ProcessCluster : IAsyncDisposable
{
    private readonly TestDatabase _database;
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "broker-chaos-" + Guid.NewGuid().ToString("N"));

    private ProcessCluster(TestDatabase database)
    {
        _database = database;
    }

    /// <summary>Null while a node is down.</summary>
    public NodeProcess?[] Nodes { get; private set; } = [];

    public IEnumerable<NodeProcess> Live => Nodes.OfType<NodeProcess>();

    public static async Task<ProcessCluster> StartAsync(TestDatabase database, int count)
    {
        var cluster = new ProcessCluster(database) { Nodes = new NodeProcess?[count] };
        try
        {
            // node-1 starts the cluster; the others join it together.
            await cluster.StartNodeAsync(0);
            await Task.WhenAll(Enumerable.Range(1, count - 1).Select(cluster.StartNodeAsync));
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
        return cluster;
    }

    /// <summary>Starts node <paramref name="index"/>, seeded by the nodes that run (none: it starts the cluster).</summary>
    public async Task<NodeProcess> StartNodeAsync(int index)
    {
        var seeds = string.Join(",", Live.Select(n => $"127.0.0.1:{n.RemotePort}"));
        var env = new Dictionary<string, string>
        {
            ["BROKER_SEED_NODES"] = seeds,
            ["BROKER_DB_PROVIDER"] = _database.Provider,
            ["BROKER_DB_CONNECTION"] = _database.ConnectionString ?? "",
        };
        var node = await NodeProcess.StartAsync(_dataDir, $"node-{index + 1}", env);
        Nodes[index] = node;
        return node;
    }

    public void Kill(int index)
    {
        Nodes[index]!.Kill();
        Nodes[index]!.Dispose();
        Nodes[index] = null;
    }

    public bool Terminate(int index, TimeSpan timeout)
    {
        var ok = Nodes[index]!.Terminate(timeout);
        Nodes[index]!.Dispose();
        Nodes[index] = null;
        return ok;
    }

    public string Logs => string.Join("\n\n", Nodes.OfType<NodeProcess>().Select(n => $"--- {n.Name}\n{n.Log}"));

    public async ValueTask DisposeAsync()
    {
        for (var i = Nodes.Length - 1; i >= 0; i--)
        {
            if (Nodes[i] is { } n)
            {
                n.Terminate(TimeSpan.FromSeconds(20));
                n.Dispose();
                Nodes[i] = null;
            }
        }
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
            // Already gone, or still held by a process that just exited.
        }
        await Task.CompletedTask;
    }
}

/// <summary>Round-robin choice among the MQTT ports of the nodes that are up.</summary>
public sealed class LivePorts
{
    private readonly object _gate = new();
    private readonly List<int> _ports = [];
    private int _next;

    public void Set(IEnumerable<int> ports)
    {
        lock (_gate)
        {
            _ports.Clear();
            _ports.AddRange(ports);
        }
    }

    public int Next()
    {
        lock (_gate)
        {
            return _ports[_next++ % _ports.Count];
        }
    }
}

/// <summary>
/// A persistent-session subscriber that reconnects (to any live node, clean start off) whenever its
/// connection drops, and records every message it receives as (publisher, sequence number).
/// </summary>
public sealed class ChaosSubscriber : IAsyncDisposable
{
    private readonly IMqttClient _client = new MqttClientFactory().CreateMqttClient();
    private readonly LivePorts _ports;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _reconnect = new(0);
    private Task? _loop;

    public ChaosSubscriber(string clientId, MqttProtocolVersion version, LivePorts ports)
    {
        ClientId = clientId;
        Version = version;
        _ports = ports;
        _client.ApplicationMessageReceivedAsync += e =>
        {
            var text = Encoding.UTF8.GetString(e.ApplicationMessage.Payload.ToArray());
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            Received.Enqueue((text[..colon], int.Parse(text[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture)));
            return Task.CompletedTask;
        };
        _client.DisconnectedAsync += e =>
        {
            if (!_stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref _disconnects);
                Events.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {ClientId} disconnected: {e.Reason} {e.ReasonString}");
                _reconnect.Release();
            }
            return Task.CompletedTask;
        };
    }

    private int _disconnects;
    private int _sessionsLost;

    public string ClientId { get; }
    public MqttProtocolVersion Version { get; }
    public ConcurrentQueue<(string Publisher, int Seq)> Received { get; } = new();

    public ConcurrentQueue<string> Events { get; } = new();
    public int Disconnects => Volatile.Read(ref _disconnects);

    /// <summary>Reconnects that found no session (a persistent session that was lost).</summary>
    public int SessionsLost => Volatile.Read(ref _sessionsLost);

    public bool IsConnected => _client.IsConnected;

    public async Task StartAsync(int port, string filter)
    {
        await _client.ConnectAsync(Options(port));
        await _client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic(filter).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)).Build());
        _loop = Task.Run(ReconnectLoopAsync);
    }

    private MqttClientOptions Options(int port)
    {
        var b = new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", port)
            .WithClientId(ClientId)
            .WithProtocolVersion(Version)
            .WithTimeout(TimeSpan.FromSeconds(10))
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(30));
        return Version == MqttProtocolVersion.V500
            ? b.WithCleanStart(false).WithSessionExpiryInterval(600).Build()
            : b.WithCleanSession(false).Build();
    }

    private async Task ReconnectLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await _reconnect.WaitAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            while (!_stop.IsCancellationRequested && !_client.IsConnected)
            {
                try
                {
                    var result = await _client.ConnectAsync(Options(_ports.Next()), _stop.Token);
                    if (result.ResultCode != MqttClientConnectResultCode.Success)
                    {
                        // Refused (e.g. server unavailable while the session moves): try again.
                        Events.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {ClientId} refused: {result.ResultCode}");
                        await Task.Delay(200);
                        continue;
                    }
                    if (!result.IsSessionPresent)
                    {
                        Interlocked.Increment(ref _sessionsLost);
                        Events.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {ClientId} reconnected without its session ({result.ResultCode})");
                    }
                }
                catch (Exception) when (!_stop.IsCancellationRequested)
                {
                    await Task.Delay(200);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }
        if (_client.IsConnected)
        {
            try
            {
                await _client.DisconnectAsync();
            }
            catch (Exception)
            {
                // Already gone.
            }
        }
        _client.Dispose();
        _stop.Dispose();
        _reconnect.Dispose();
    }
}

/// <summary>
/// Publishes "name:seq" for seq = 0.. at a steady pace; a publish that fails (connection lost, timeout) is
/// sent again after reconnecting to a live node, so a sequence number is acknowledged at least once.
/// </summary>
public sealed class ChaosPublisher(string name, string topic, MqttQualityOfServiceLevel qos, LivePorts ports)
{
    private readonly ConcurrentBag<int> _acked = [];
    private int _retries;

    public string Name => name;
    public IReadOnlyCollection<int> Acked => _acked;
    public int Retries => Volatile.Read(ref _retries);

    public async Task RunAsync(int count, TimeSpan interval, CancellationToken ct)
    {
        using var client = new MqttClientFactory().CreateMqttClient();
        for (var seq = 0; seq < count; seq++)
        {
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                try
                {
                    if (!client.IsConnected)
                    {
                        await client.ConnectAsync(new MqttClientOptionsBuilder()
                            .WithTcpServer("127.0.0.1", ports.Next())
                            .WithClientId(name)
                            .WithProtocolVersion(MqttProtocolVersion.V500)
                            .WithCleanStart(true)
                            // A PUBACK waits while a failed node's sessions move (a few seconds): no client-side timeout before that.
                            .WithTimeout(TimeSpan.FromSeconds(40))
                            .Build(), ct);
                    }
                    var result = await client.PublishAsync(new MqttApplicationMessageBuilder()
                        .WithTopic(topic).WithPayload($"{name}:{seq}").WithQualityOfServiceLevel(qos).Build(), ct);
                    if (result.IsSuccess)
                    {
                        _acked.Add(seq);
                        break;
                    }
                }
                catch (Exception) when (!ct.IsCancellationRequested)
                {
                    Interlocked.Increment(ref _retries);
                    await Task.Delay(200, ct);
                }
            }
            await Task.Delay(interval, ct);
        }
        if (client.IsConnected)
        {
            await client.DisconnectAsync(cancellationToken: ct);
        }
    }
}

/// <summary>What the subscribers got of the publishers' acknowledged messages.</summary>
public sealed record ChaosTally(int Acknowledged, int Lost, int Duplicates, int OutOfOrder, string Detail)
{
    public static ChaosTally Of(IReadOnlyList<ChaosPublisher> publishers, IReadOnlyList<ChaosSubscriber> subscribers)
    {
        int acknowledged = 0, lost = 0, duplicates = 0, outOfOrder = 0;
        var detail = new StringBuilder();
        foreach (var sub in subscribers)
        {
            var received = sub.Received.ToArray();
            foreach (var pub in publishers)
            {
                var mine = received.Where(r => r.Publisher == pub.Name).Select(r => r.Seq).ToList();
                var seen = new HashSet<int>();
                var last = -1;
                foreach (var seq in mine)
                {
                    if (!seen.Add(seq))
                    {
                        duplicates++;
                        continue;
                    }
                    if (seq < last)
                    {
                        outOfOrder++;
                    }
                    last = seq;
                }
                var missing = pub.Acked.Where(s => !seen.Contains(s)).Order().ToList();
                acknowledged += pub.Acked.Count;
                lost += missing.Count;
                if (missing.Count > 0)
                {
                    detail.Append(sub.ClientId).Append(" misses ").Append(pub.Name).Append(": ").AppendJoin(',', missing.Take(20)).Append('\n');
                }
            }
        }
        return new ChaosTally(acknowledged, lost, duplicates, outOfOrder, detail.ToString());
    }
}

public static class Admin
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    /// <summary>Whether <paramref name="node"/> lists every one of <paramref name="ids"/> (under <paramref name="prefix"/>) with no node missing.</summary>
    public static async Task<bool> ListsAllAsync(NodeProcess node, string prefix, IReadOnlyCollection<string> ids, bool connected)
    {
        try
        {
            using var doc = JsonDocument.Parse(await Http.GetStringAsync($"{node.AdminUrl}/api/v1/sessions?prefix={prefix}&limit=0"));
            if (doc.RootElement.TryGetProperty("unreachable_nodes", out var missing) && missing.GetArrayLength() > 0)
            {
                return false;
            }
            var listed = doc.RootElement.GetProperty("sessions").EnumerateArray()
                .Where(s => !connected || s.GetProperty("connected").GetBoolean())
                .Select(s => s.GetProperty("client_id").GetString()!)
                .ToHashSet();
            return ids.All(listed.Contains);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    /// <summary>Whether every session answers its detail query on <paramref name="node"/>.</summary>
    public static async Task<bool> AllAnswerAsync(NodeProcess node, IEnumerable<string> ids)
    {
        foreach (var id in ids)
        {
            try
            {
                using var response = await Http.GetAsync($"{node.AdminUrl}/api/v1/sessions/{id}");
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    return false;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                return false;
            }
        }
        return true;
    }
}

public static class Clock
{
    public static double Seconds(Stopwatch sw) => Math.Round(sw.Elapsed.TotalSeconds, 1);
}
