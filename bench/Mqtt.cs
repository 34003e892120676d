using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Broker.Bench;

/// <summary>Client helpers shared by the scenarios.</summary>
internal static class Mqtt
{
    private static readonly MqttClientFactory Factory = new();

    /// <summary>Payload header: publisher index (int32), sequence number (int32), Stopwatch timestamp (int64).</summary>
    public const int HeaderSize = 16;

    public static MqttClientOptions Options(BenchOptions o, string clientId, int keepAliveSeconds = 60) =>
        Options(o, clientId, o.Port, keepAliveSeconds);

    public static MqttClientOptions Options(BenchOptions o, string clientId, int port, int keepAliveSeconds)
    {
        var b = new MqttClientOptionsBuilder()
            .WithTcpServer(o.Host, port)
            .WithClientId(clientId)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(keepAliveSeconds))
            .WithTimeout(TimeSpan.FromSeconds(10));
        if (o.Protocol == "5")
        {
            b.WithProtocolVersion(MqttProtocolVersion.V500).WithCleanStart(true).WithSessionExpiryInterval(0);
        }
        else
        {
            b.WithProtocolVersion(MqttProtocolVersion.V311).WithCleanSession(true);
        }
        var options = b.Build();
        if (o.ClientBuffer > 0)
        {
            ((MqttClientTcpOptions)options.ChannelOptions).BufferSize = o.ClientBuffer;
        }
        return options;
    }

    public static Task<(IMqttClient Client, MqttClientConnectResult Result)> ConnectAsync(
        BenchOptions o, string clientId, CancellationToken ct) => ConnectAsync(o, clientId, o.Port, ct);

    public static async Task<(IMqttClient Client, MqttClientConnectResult Result)> ConnectAsync(
        BenchOptions o, string clientId, int port, CancellationToken ct)
    {
        var client = Factory.CreateMqttClient();
        try
        {
            var result = await client.ConnectAsync(Options(o, clientId, port, 60), ct).ConfigureAwait(false);
            if (result.ResultCode != MqttClientConnectResultCode.Success)
            {
                throw new InvalidOperationException($"{clientId}: CONNACK {result.ResultCode}");
            }
            return (client, result);
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    public static IMqttClient Create() => Factory.CreateMqttClient();

    public static async Task SubscribeAsync(IMqttClient client, string filter, MqttQualityOfServiceLevel qos, CancellationToken ct)
    {
        var result = await client.SubscribeAsync(
            Factory.CreateSubscribeOptionsBuilder().WithTopicFilter(f => f.WithTopic(filter).WithQualityOfServiceLevel(qos)).Build(),
            ct).ConfigureAwait(false);
        foreach (var item in result.Items)
        {
            if ((int)item.ResultCode > 2)
            {
                throw new InvalidOperationException($"SUBSCRIBE {filter}: {item.ResultCode}");
            }
        }
    }

    /// <summary>Disconnects and disposes clients, <paramref name="concurrency"/> at a time, never longer than a few seconds each.</summary>
    public static async Task DisconnectAllAsync(IEnumerable<IMqttClient> clients, int concurrency = 50)
    {
        using var sem = new SemaphoreSlim(concurrency);
        var tasks = clients.Select(async c =>
        {
            await sem.WaitAsync().ConfigureAwait(false);
            try
            {
                await DisconnectAndDisposeAsync(c).ConfigureAwait(false);
            }
            finally
            {
                sem.Release();
            }
        }).ToList();
        await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    /// <summary>DISCONNECT (best effort, 5 s at most), then dispose the client.</summary>
    public static async Task DisconnectAndDisposeAsync(IMqttClient c)
    {
        try
        {
            if (c.IsConnected)
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await c.DisconnectAsync(new MqttClientDisconnectOptions(), cts.Token).ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // Best effort: the connection may already be gone.
        }
        finally
        {
            c.Dispose();
        }
    }

    public static byte[] Payload(int size, int publisher, int seq)
    {
        var p = new byte[Math.Max(size, HeaderSize)];
        BinaryPrimitives.WriteInt32LittleEndian(p, publisher);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(4), seq);
        BinaryPrimitives.WriteInt64LittleEndian(p.AsSpan(8), Stopwatch.GetTimestamp());
        return p;
    }

    public static bool TryReadHeader(ReadOnlySequence<byte> payload, out int publisher, out int seq, out long timestamp)
    {
        publisher = seq = 0;
        timestamp = 0;
        if (payload.Length < HeaderSize)
        {
            return false;
        }
        Span<byte> h = stackalloc byte[HeaderSize];
        payload.Slice(0, HeaderSize).CopyTo(h);
        publisher = BinaryPrimitives.ReadInt32LittleEndian(h);
        seq = BinaryPrimitives.ReadInt32LittleEndian(h[4..]);
        timestamp = BinaryPrimitives.ReadInt64LittleEndian(h[8..]);
        return true;
    }
}

/// <summary>Counts distinct and duplicate messages of one subscriber; optional per-message latency.</summary>
internal sealed class Receiver
{
    private readonly bool[][] _seen;
    private readonly double[]? _latencyMs;
    private long _unique;
    private long _duplicates;
    private long _lastTicks;

    public Receiver(int publishers, int perPublisher, bool recordLatency = false)
    {
        _seen = new bool[publishers][];
        for (var i = 0; i < publishers; i++)
        {
            _seen[i] = new bool[perPublisher];
        }
        if (recordLatency)
        {
            _latencyMs = new double[publishers * perPublisher];
            Array.Fill(_latencyMs, double.NaN);
        }
    }

    public long Unique => Interlocked.Read(ref _unique);
    public long Duplicates => Interlocked.Read(ref _duplicates);
    public long LastTicks => Interlocked.Read(ref _lastTicks);
    public long Expected { get; init; }

    public void Attach(IMqttClient client) =>
        client.ApplicationMessageReceivedAsync += e =>
        {
            OnMessage(e.ApplicationMessage.Payload);
            return Task.CompletedTask;
        };

    private void OnMessage(ReadOnlySequence<byte> payload)
    {
        var now = Stopwatch.GetTimestamp();
        if (!Mqtt.TryReadHeader(payload, out var p, out var s, out var ts)
            || (uint)p >= (uint)_seen.Length || (uint)s >= (uint)_seen[p].Length)
        {
            return;
        }
        if (_seen[p][s])
        {
            Interlocked.Increment(ref _duplicates);
        }
        else
        {
            _seen[p][s] = true;
            if (_latencyMs is not null)
            {
                _latencyMs[(p * _seen[p].Length) + s] = (now - ts) * 1000.0 / Stopwatch.Frequency;
            }
            Interlocked.Increment(ref _unique);
        }
        Interlocked.Exchange(ref _lastTicks, now);
    }

    public bool Seen(int publisher, int seq) => Volatile.Read(ref _seen[publisher][seq]);

    /// <summary>The latencies of the messages received, from sequence number <paramref name="from"/> on (one publisher).</summary>
    public double[] Latencies(int from = 0) => _latencyMs is null ? [] : _latencyMs.Skip(from).Where(x => !double.IsNaN(x)).ToArray();
}

/// <summary>One publisher connection: publishes with a window of outstanding calls, optionally paced.</summary>
internal sealed class Publisher(IMqttClient client, int index, string topic, int count, int size, MqttQualityOfServiceLevel qos, int window)
{
    /// <summary>When set, true while too many messages are undelivered: the publisher waits (at most StallTimeout) before the next.</summary>
    public Func<bool>? OverBacklog { get; init; }
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(5);

    private readonly bool[] _acked = new bool[count];
    private long _sent;
    private long _failed;

    public IMqttClient Client => client;
    public int Index => index;
    public int Count => count;
    public long Sent => Interlocked.Read(ref _sent);
    public long Failed => Interlocked.Read(ref _failed);
    public long EndTicks { get; private set; }
    public bool Acked(int seq) => Volatile.Read(ref _acked[seq]);
    public long AckedCount => _acked.Count(a => a);

    /// <summary>Publishes every message, at most <c>window</c> at a time; <paramref name="rate"/> &gt; 0 paces to that many per second.</summary>
    public async Task RunAsync(long startTicks, int rate, CancellationToken ct)
    {
        var sem = new SemaphoreSlim(window);
        var tasks = new List<Task>(count);
        try
        {
            for (var i = 0; i < count; i++)
            {
                if (rate > 0)
                {
                    var due = startTicks + (long)(i * (double)Stopwatch.Frequency / rate);
                    while (true)
                    {
                        var wait = (due - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
                        if (wait <= 0)
                        {
                            break;
                        }
                        await Task.Delay((int)Math.Max(1, wait - 1), ct).ConfigureAwait(false);
                    }
                }
                if (OverBacklog is not null && OverBacklog())
                {
                    // Paused while the subscribers are behind; a QoS 0 message the broker dropped is never delivered, so
                    // the pause ends after StallTimeout whatever happens.
                    var paused = Stopwatch.GetTimestamp();
                    while (OverBacklog() && Stopwatch.GetElapsedTime(paused) < StallTimeout)
                    {
                        await Task.Delay(1, ct).ConfigureAwait(false);
                    }
                }
                await sem.WaitAsync(ct).ConfigureAwait(false);
                Interlocked.Increment(ref _sent);
                tasks.Add(PublishOneAsync(sem, i, ct));
            }
            await Task.WhenAll(tasks).WaitAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            EndTicks = Stopwatch.GetTimestamp();
        }
    }

    private async Task PublishOneAsync(SemaphoreSlim sem, int seq, CancellationToken ct)
    {
        try
        {
            var msg = new MqttApplicationMessageBuilder()
                .WithTopic(topic)
                .WithPayload(Mqtt.Payload(size, index, seq))
                .WithQualityOfServiceLevel(qos)
                .Build();
            var result = await client.PublishAsync(msg, ct).ConfigureAwait(false);
            if (qos == MqttQualityOfServiceLevel.AtMostOnce || result.IsSuccess)
            {
                Volatile.Write(ref _acked[seq], true);
            }
            else
            {
                Interlocked.Increment(ref _failed);
            }
        }
        catch (Exception)
        {
            Interlocked.Increment(ref _failed);
        }
        finally
        {
            sem.Release();
        }
    }
}
