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
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace Broker.Cluster.Tests;

/// <summary>Node processes of the built executable on 127.0.0.1, sharing one database; node i is named node-(i+1).</summary>
public sealed class ProcessCluster : IAsyncDisposable
{
    private readonly TestDatabase _database;
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "broker-chaos-" + Guid.NewGuid().ToString("N"));

    private readonly RemotingLinks? _links;

    private ProcessCluster(TestDatabase database, RemotingLinks? links)
    {
        _database = database;
        _links = links;
    }

    /// <summary>Null while a node is down.</summary>
    public NodeProcess?[] Nodes { get; private set; } = [];

    public IEnumerable<NodeProcess> Live => Nodes.OfType<NodeProcess>();

    /// <summary>
    /// Starts <paramref name="count"/> nodes; with <paramref name="links"/> (one relay per node) the nodes reach each other
    /// only through those relays, so the test can partition them.
    /// </summary>
    public static async Task<ProcessCluster> StartAsync(TestDatabase database, int count, RemotingLinks? links = null)
    {
        var cluster = new ProcessCluster(database, links) { Nodes = new NodeProcess?[count] };
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
        if (_links is not null)
        {
            // The node listens on a port of its own and advertises its relay's, which the other nodes then use.
            var remotePort = FreePort();
            _links.Target(index, remotePort);
            env["BROKER_REMOTE_PORT"] = remotePort.ToString(System.Globalization.CultureInfo.InvariantCulture);
            env["BROKER_REMOTE_PUBLIC_PORT"] = _links.PublicPort(index).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        var node = await NodeProcess.StartAsync(_dataDir, $"node-{index + 1}", env);
        Nodes[index] = node;
        return node;
    }

    private static int FreePort()
    {
        using var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
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
                catch (Exception)
                {
                    // Stopped while connecting: MQTTnet reports the cancelled attempt as a cancellation or, when it
                    // closes the channel mid-handshake, as a failed connect; either way the loop is over.
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
                var twice = new List<int>();
                var last = -1;
                foreach (var seq in mine)
                {
                    if (!seen.Add(seq))
                    {
                        duplicates++;
                        twice.Add(seq);
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
                if (twice.Count > 0)
                {
                    detail.Append(sub.ClientId).Append(" got twice ").Append(pub.Name).Append(": ").AppendJoin(',', twice.Take(20)).Append('\n');
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

/// <summary>One delivery an <see cref="AmqpChaosConsumer"/> got: the message number, its redelivered flag, and the order it arrived in among every consumer's deliveries.</summary>
public readonly record struct AmqpReceipt(int Seq, bool Redelivered, long Order);

/// <summary>
/// A manual-ack consumer of one queue that reconnects (to a live node) whenever its connection or channel closes,
/// and consumes the queue again. Every delivery is recorded, then acknowledged; the body is the message number.
/// </summary>
public sealed class AmqpChaosConsumer(string name, string queue, LivePorts ports, ushort prefetch) : IAsyncDisposable
{
    private static long _order;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _reconnect = new(0);
    private readonly object _gate = new();
    private IConnection? _connection;
    private Task? _loop;
    private int _reconnects;
    private volatile bool _consuming;

    public string Name => name;
    public string Queue => queue;
    public ConcurrentQueue<AmqpReceipt> Received { get; } = new();
    public ConcurrentQueue<string> Events { get; } = new();

    /// <summary>Connections that closed under the consumer (each followed by a reconnect).</summary>
    public int Reconnects => Volatile.Read(ref _reconnects);

    /// <summary>Whether the consumer is registered (consume-ok came) on a connection that is open.</summary>
    public bool IsConsuming => _consuming;

    public async Task StartAsync(int port)
    {
        await ConsumeAsync(port);
        _loop = Task.Run(ReconnectLoopAsync);
    }

    private async Task ConsumeAsync(int port)
    {
        var connection = await AmqpTestClient.ConnectAsync(port, name);
        try
        {
            var channel = await connection.CreateChannelAsync();
            await channel.BasicQosAsync(0, prefetch, false);
            var consumer = new AsyncEventingBasicConsumer(channel);
            consumer.ReceivedAsync += async (_, e) =>
            {
                var seq = int.Parse(Encoding.UTF8.GetString(e.Body.Span), System.Globalization.CultureInfo.InvariantCulture);
                Received.Enqueue(new AmqpReceipt(seq, e.Redelivered, Interlocked.Increment(ref _order)));
                try
                {
                    await channel.BasicAckAsync(e.DeliveryTag, false);
                }
                catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or ObjectDisposedException)
                {
                    // The connection went: the queue gives the delivery again.
                }
            };
            AsyncEventHandler<ShutdownEventArgs> lost = (_, e) =>
            {
                Lost(connection, $"{e.Initiator} {e.ReplyCode} {e.ReplyText}");
                return Task.CompletedTask;
            };
            connection.ConnectionShutdownAsync += lost;
            channel.ChannelShutdownAsync += lost;
            lock (_gate)
            {
                _connection = connection;
            }
            await channel.BasicConsumeAsync(queue, autoAck: false, consumer);
            _consuming = connection.IsOpen && channel.IsOpen;
        }
        catch
        {
            await CloseQuietlyAsync(connection);
            throw;
        }
    }

    private void Lost(IConnection connection, string why)
    {
        lock (_gate)
        {
            if (_stop.IsCancellationRequested || !ReferenceEquals(connection, _connection))
            {
                return;
            }
            _connection = null;
        }
        _consuming = false;
        Interlocked.Increment(ref _reconnects);
        Events.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {name} lost its connection: {why}");
        _reconnect.Release();
        _ = CloseQuietlyAsync(connection);
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
            while (!_stop.IsCancellationRequested && !_consuming)
            {
                var port = ports.Next();
                try
                {
                    await ConsumeAsync(port);
                    Events.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {name} consumes again through port {port}");
                }
                catch (Exception ex) when (!_stop.IsCancellationRequested)
                {
                    Events.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {name} could not consume through port {port}: {ex.GetType().Name} {ex.Message}");
                    try
                    {
                        await Task.Delay(200, _stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
                catch (Exception)
                {
                    return;
                }
            }
        }
    }

    private static async Task CloseQuietlyAsync(IConnection connection)
    {
        try
        {
            await connection.DisposeAsync();
        }
        catch (Exception)
        {
            // Already gone.
        }
    }

    public async ValueTask DisposeAsync()
    {
        IConnection? connection;
        lock (_gate)
        {
            _stop.Cancel();
            connection = _connection;
            _connection = null;
        }
        if (_loop is not null)
        {
            await _loop;
        }
        if (connection is not null)
        {
            await CloseQuietlyAsync(connection);
        }
        _stop.Dispose();
        _reconnect.Dispose();
    }
}

/// <summary>
/// Publishes the numbers 0.. as persistent messages on a confirm channel at a steady pace, with up to a window of
/// publishes awaiting their confirm. A publish that fails (connection or channel closed, nack, no confirm in time) is
/// published again on a fresh channel; only numbers whose confirm arrived count as confirmed.
/// </summary>
public sealed class AmqpChaosPublisher(string name, string exchange, Func<int, string> routingKey, LivePorts ports, int window)
{
    private static readonly TimeSpan ConfirmTimeout = TimeSpan.FromSeconds(40);
    private readonly ConcurrentDictionary<int, long> _latency = new();
    private readonly ConcurrentDictionary<int, (long Published, long Confirmed)> _times = new();
    private int _retries;

    /// <summary>Confirmed numbers, with the milliseconds from their first publish to their confirm.</summary>
    public IReadOnlyDictionary<int, long> Confirmed => _latency;

    /// <summary>When each confirmed number was first published and when its confirm came, as <see cref="Stopwatch.GetTimestamp"/>.</summary>
    public IReadOnlyDictionary<int, (long Published, long Confirmed)> Times => _times;
    public int Retries => Volatile.Read(ref _retries);
    public ConcurrentQueue<string> Events { get; } = new();

    public async Task RunAsync(int count, TimeSpan interval, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var firstPublished = new long[count];
        var publishedAt = new long[count];
        var todo = new SortedSet<int>(Enumerable.Range(0, count));
        var inFlight = new List<(int Seq, Task Confirm)>();
        var props = new BasicProperties { DeliveryMode = DeliveryModes.Persistent };
        IConnection? connection = null;
        IChannel? channel = null;
        try
        {
            while (todo.Count > 0 || inFlight.Count > 0)
            {
                ct.ThrowIfCancellationRequested();
                var broken = false;
                // Settle what has completed; a failure sends its number (and, as the channel goes, every other one) round again.
                for (var i = inFlight.Count - 1; i >= 0; i--)
                {
                    var (seq, confirm) = inFlight[i];
                    if (!confirm.IsCompleted)
                    {
                        continue;
                    }
                    inFlight.RemoveAt(i);
                    if (confirm.IsCompletedSuccessfully)
                    {
                        _latency[seq] = clock.ElapsedMilliseconds - firstPublished[seq];
                        _times[seq] = (publishedAt[seq], Stopwatch.GetTimestamp());
                        continue;
                    }
                    broken = true;
                    todo.Add(seq);
                    Interlocked.Increment(ref _retries);
                    var ex = confirm.Exception?.InnerException;
                    Events.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {name} publish {seq} failed: {ex?.GetType().Name} {ex?.Message}");
                }
                if (broken && channel is not null)
                {
                    // The rest of this channel's publishes are abandoned and published again on the next one.
                    foreach (var (seq, _) in inFlight)
                    {
                        todo.Add(seq);
                    }
                    inFlight.Clear();
                    await CloseQuietlyAsync(channel);
                    channel = null;
                    await Task.Delay(200, ct);
                }
                var next = todo.Count > 0 ? todo.Min : -1;
                var untilDue = next < 0 || firstPublished[next] != 0 ? TimeSpan.Zero : interval * next - clock.Elapsed;
                if (next < 0 || untilDue > TimeSpan.Zero || inFlight.Count >= window)
                {
                    // Until a confirm completes, or the next number is due (at most 50 ms, to look again).
                    var pause = Task.Delay(untilDue > TimeSpan.Zero ? TimeSpan.FromMilliseconds(Math.Min(50, Math.Ceiling(untilDue.TotalMilliseconds))) : TimeSpan.FromMilliseconds(50), ct);
                    await Task.WhenAny(inFlight.Select(f => f.Confirm).Append(pause));
                    continue;
                }
                try
                {
                    if (connection is not { IsOpen: true })
                    {
                        if (connection is not null)
                        {
                            await CloseQuietlyAsync(connection);
                        }
                        channel = null;
                        connection = await AmqpTestClient.ConnectAsync(ports.Next(), name);
                    }
                    channel ??= await connection.ConfirmChannelAsync();
                }
                catch (Exception ex) when (!ct.IsCancellationRequested)
                {
                    Events.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {name} could not open a channel: {ex.GetType().Name} {ex.Message}");
                    await Task.Delay(200, ct);
                    continue;
                }
                todo.Remove(next);
                if (firstPublished[next] == 0)
                {
                    firstPublished[next] = Math.Max(1, clock.ElapsedMilliseconds);
                    publishedAt[next] = Stopwatch.GetTimestamp();
                }
                var body = Encoding.UTF8.GetBytes(next.ToString(System.Globalization.CultureInfo.InvariantCulture));
                inFlight.Add((next, PublishAsync(channel, routingKey(next), props, body, ct)));
            }
        }
        finally
        {
            if (connection is not null)
            {
                await CloseQuietlyAsync(connection);
            }
        }
    }

    private async Task PublishAsync(IChannel channel, string key, BasicProperties props, byte[] body, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(ConfirmTimeout);
        await channel.BasicPublishAsync(exchange, key, false, props, body, timeout.Token);
    }

    private static async Task CloseQuietlyAsync(IAsyncDisposable disposable)
    {
        try
        {
            await disposable.DisposeAsync();
        }
        catch (Exception)
        {
            // Gone with its node.
        }
    }
}

/// <summary>What the consumers of each queue got of the confirmed messages routed to it.</summary>
/// <param name="Reordered">
/// Deliveries not flagged redelivered that came to a consumer after a later message: allowed only for messages that
/// the broker may have had to send to their queue again: those confirmed after more than <see cref="ResendAfterMs"/>,
/// and those still unconfirmed while a node failed or left (a shard that moves may drop what reaches it meanwhile).
/// </param>
/// <param name="ReorderedPromptly">Such deliveries of messages confirmed sooner: a broken order guarantee.</param>
public sealed record AmqpChaosTally(int Confirmed, int Expected, int Lost, int Duplicates, int Redelivered, int Reordered, int ReorderedPromptly, string Detail)
{
    /// <summary>When the broker first sends an unconfirmed publish to its queue again.</summary>
    public const long ResendAfterMs = 3000;

    /// <param name="confirmed">confirmed message numbers with the milliseconds from publish to confirm.</param>
    /// <param name="queuesOf">the queue indexes a message number is routed to.</param>
    /// <param name="inFlightAtFault">whether a message number was published and not yet confirmed while the node failed or left.</param>
    public static AmqpChaosTally Of(IReadOnlyDictionary<int, long> confirmed, Func<int, IEnumerable<int>> queuesOf, IReadOnlyList<AmqpChaosConsumer> consumers,
        IReadOnlyList<string> queues, Func<int, bool> inFlightAtFault)
    {
        int expected = 0, lost = 0, duplicates = 0, redelivered = 0, reordered = 0, promptly = 0;
        var detail = new StringBuilder();
        for (var q = 0; q < queues.Count; q++)
        {
            var mine = consumers.Where(c => c.Queue == queues[q]).ToList();
            var seen = new HashSet<int>();
            foreach (var c in mine)
            {
                var highest = -1;
                foreach (var r in c.Received.ToArray())
                {
                    if (!seen.Add(r.Seq))
                    {
                        duplicates++;
                    }
                    if (r.Redelivered)
                    {
                        redelivered++;
                        continue;
                    }
                    if (r.Seq < highest)
                    {
                        reordered++;
                        if (!confirmed.TryGetValue(r.Seq, out var latency) || (latency < ResendAfterMs && !inFlightAtFault(r.Seq)))
                        {
                            promptly++;
                            detail.Append(c.Name).Append(" got ").Append(r.Seq).Append(" (not redelivered, confirmed in ").Append(latency)
                                .Append(" ms) after ").Append(highest).Append('\n');
                        }
                    }
                    highest = Math.Max(highest, r.Seq);
                }
            }
            var due = confirmed.Keys.Where(s => queuesOf(s).Contains(q)).ToList();
            expected += due.Count;
            var missing = due.Where(s => !seen.Contains(s)).Order().ToList();
            lost += missing.Count;
            if (missing.Count > 0)
            {
                detail.Append(queues[q]).Append(" misses ").Append(missing.Count).Append(": ").AppendJoin(',', missing.Take(20)).Append('\n');
            }
        }
        return new AmqpChaosTally(confirmed.Count, expected, lost, duplicates, redelivered, reordered, promptly, detail.ToString());
    }
}
