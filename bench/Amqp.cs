using System.Buffers.Binary;
using System.Diagnostics;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Broker.Bench;

/// <summary>
/// AMQP 0.9.1 scenarios (RabbitMQ.Client 7). Bodies carry the same 16-byte header as the MQTT payloads (publisher index,
/// sequence number, Stopwatch timestamp), so consumers count distinct messages per publisher and losses are exact.
/// Every run declares its own queue, publishes through the default exchange with the queue name as routing key, and
/// deletes the queue at the end.
/// </summary>
internal static class Amqp
{
    private static readonly MetricDef MsgPerSec = new("rate", "msg/s", true);

    /// <summary>Only run when named (<c>--scenario amqp</c>): mosquitto, the peer of "all", has no AMQP.</summary>
    public static readonly Scenario[] All =
    [
        new("amqp-transient-autoack-1to1", "AMQP transient, auto-ack 1→1, 64 B", [MsgPerSec],
            (o, t, ct) => Throughput(o, t, 1, o.AmqpMessages, Flow.TransientAutoAck, ct)),
        new("amqp-transient-autoack-2to2", "AMQP transient, auto-ack 2→2 (one queue), 64 B", [MsgPerSec],
            (o, t, ct) => Throughput(o, t, 2, o.AmqpMessages, Flow.TransientAutoAck, ct)),
        new("amqp-transient-manualack-1to1", "AMQP transient, manual ack 1→1, 64 B", [MsgPerSec],
            (o, t, ct) => Throughput(o, t, 1, o.AmqpMessages, Flow.TransientManualAck, ct)),
        new("amqp-transient-manualack-2to2", "AMQP transient, manual ack 2→2 (one queue), 64 B", [MsgPerSec],
            (o, t, ct) => Throughput(o, t, 2, o.AmqpMessages, Flow.TransientManualAck, ct)),
        new("amqp-persistent-confirms-1to1", "AMQP persistent, confirms, manual ack 1→1, 64 B", [MsgPerSec],
            (o, t, ct) => Throughput(o, t, 1, o.AmqpPersistentMessages, Flow.PersistentConfirms, ct)),
        new("amqp-persistent-confirms-2to2", "AMQP persistent, confirms, manual ack 2→2 (one queue), 64 B", [MsgPerSec],
            (o, t, ct) => Throughput(o, t, 2, o.AmqpPersistentMessages, Flow.PersistentConfirms, ct)),
        new("amqp-latency", "AMQP latency, transient auto-ack 1→1, 64 B, fixed rate",
            [new("p50", "p50 ms", false), new("p99", "p99 ms", false), new("max", "max ms", false)], Latency),
        new("amqp-idle-memory", "AMQP memory per idle connection (one channel each)", [new("kib", "KiB/conn", false)], IdleMemory),
    ];

    /// <summary>The two message flows: transient without confirms (auto or manual ack), persistent with confirms.</summary>
    private sealed record Flow(bool Persistent, bool AutoAck)
    {
        public static readonly Flow TransientAutoAck = new(false, true);
        public static readonly Flow TransientManualAck = new(false, false);
        public static readonly Flow PersistentConfirms = new(true, false);
    }

    public const int BodySize = 64;

    public static ConnectionFactory Factory(BenchOptions o, int port) => new()
    {
        HostName = o.Host,
        Port = port,
        UserName = "guest",
        Password = "guest",
        AutomaticRecoveryEnabled = false,
        TopologyRecoveryEnabled = false,
        RequestedHeartbeat = TimeSpan.FromSeconds(60),
        ContinuationTimeout = TimeSpan.FromSeconds(20),
        HandshakeContinuationTimeout = TimeSpan.FromSeconds(20),
        RequestedConnectionTimeout = TimeSpan.FromSeconds(10),
    };

    /// <summary>
    /// Consumers connect, the first declares the queue, all start consuming; then the publishers publish
    /// <paramref name="total"/> messages between them. Both 2→2 flows use one queue with two competing consumers.
    /// Rate = distinct messages delivered to the consumers / (last delivery - first publish).
    /// </summary>
    private static async Task<RunResult> Throughput(BenchOptions o, string tag, int pairs, int total, Flow flow, CancellationToken ct)
    {
        var r = new RunResult();
        var connections = new List<IConnection>();
        var queue = "bench-" + tag;
        var perPublisher = total / pairs;
        var factory = Factory(o, o.Port);
        IChannel? declarer = null;
        try
        {
            // Each publisher may be at most --unconfirmed-window (--backlog) messages ahead of the deliveries of its own
            // messages, so neither broker can just buffer the whole run; with confirms the confirm window bounds it too.
            var gaps = Enumerable.Range(0, pairs).Select(_ => new SemaphoreSlim(o.UnconfirmedWindow)).ToArray();
            var receiver = new AmqpReceiver(pairs, perPublisher, recordLatency: false, gaps);
            for (var c = 0; c < pairs; c++)
            {
                var conn = await factory.CreateConnectionAsync($"{tag}-consumer{c}", ct).ConfigureAwait(false);
                connections.Add(conn);
                var ch = await conn.CreateChannelAsync(cancellationToken: ct).ConfigureAwait(false);
                if (c == 0)
                {
                    declarer = ch;
                    await ch.QueueDeclareAsync(queue, durable: flow.Persistent, exclusive: false, autoDelete: false, cancellationToken: ct)
                        .ConfigureAwait(false);
                }
                if (!flow.AutoAck)
                {
                    await ch.BasicQosAsync(0, (ushort)o.Prefetch, false, ct).ConfigureAwait(false);
                }
                await ch.BasicConsumeAsync(queue, flow.AutoAck, new Consumer(ch, receiver, flow.AutoAck ? 0 : o.AckEvery), ct)
                    .ConfigureAwait(false);
            }
            var pubs = new AmqpPublisher[pairs];
            for (var p = 0; p < pairs; p++)
            {
                var conn = await factory.CreateConnectionAsync($"{tag}-publisher{p}", ct).ConfigureAwait(false);
                connections.Add(conn);
                pubs[p] = await AmqpPublisher.CreateAsync(conn, p, queue, perPublisher, flow.Persistent,
                    flow.Persistent ? o.ConfirmWindow : 0, gaps[p], TimeSpan.FromSeconds(o.Idle), ct).ConfigureAwait(false);
            }
            r.Extra["unconfirmed_window"] = o.UnconfirmedWindow;
            if (flow.Persistent)
            {
                r.Extra["confirm_window"] = o.ConfirmWindow;
            }
            if (!flow.AutoAck)
            {
                r.Extra["prefetch"] = o.Prefetch;
                r.Extra["ack_every"] = o.AckEvery;
            }

            var cpu = new CpuMeter(o.Pid);
            var start = Stopwatch.GetTimestamp();
            try
            {
                try
                {
                    await Task.WhenAll(pubs.Select(p => p.RunAsync(start, 0, ct))).ConfigureAwait(false);
                }
                finally
                {
                    r.Extra["publish_rate"] = pubs.Sum(p => p.Sent) / Scenarios.Seconds(start, pubs.Max(p => p.EndTicks));
                }
                await receiver.WaitAsync(() => pubs.Sum(p => p.Expected), o.Idle, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                r.TimedOut = true;
            }
            Settle(r, receiver, pubs, start);
            cpu.Record(r, r.Received);
            r.Error = pubs.Select(p => p.Error).FirstOrDefault(e => e is not null);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            r.TimedOut = true;
        }
        finally
        {
            await DeleteQueueAsync(declarer, queue).ConfigureAwait(false);
            await CloseAllAsync(connections).ConfigureAwait(false);
        }
        return r;
    }

    /// <summary>Counts, per message id, what was published (or confirmed) against what was delivered.</summary>
    private static void Settle(RunResult r, AmqpReceiver receiver, AmqpPublisher[] pubs, long start)
    {
        r.Received = receiver.Unique;
        r.Duplicates = receiver.Duplicates;
        r.Failed = pubs.Sum(p => p.Failed);
        long expected = 0, lost = 0;
        foreach (var p in pubs)
        {
            for (var i = 0; i < p.Count; i++)
            {
                if (p.Counts(i))
                {
                    expected++;
                    if (!receiver.Seen(p.Index, i))
                    {
                        lost++;
                    }
                }
            }
        }
        r.Expected = expected;
        r.Lost = lost;
        r.Extra["sent"] = pubs.Sum(p => p.Sent);
        if (pubs.Sum(p => p.Nacked) is var nacked and > 0)
        {
            r.Extra["nacked"] = nacked;
        }
        if (r.Received > 0)
        {
            r.Metrics["rate"] = r.Received / Scenarios.Seconds(start, receiver.LastTicks);
        }
    }

    /// <summary>
    /// Transient, auto-ack, 1→1, paced to --latency-rate for --latency-warmup + --latency-seconds; latency = delivery -
    /// timestamp in the body, of the messages after the warm-up.
    /// </summary>
    private static async Task<RunResult> Latency(BenchOptions o, string tag, CancellationToken ct)
    {
        var r = new RunResult();
        var connections = new List<IConnection>();
        var queue = "bench-" + tag;
        var warm = o.LatencyRate * o.LatencyWarmup;
        var count = warm + (o.LatencyRate * o.LatencySeconds);
        var factory = Factory(o, o.Port);
        IChannel? declarer = null;
        try
        {
            var receiver = new AmqpReceiver(1, count, recordLatency: true, gaps: null);
            var cc = await factory.CreateConnectionAsync($"{tag}-consumer", ct).ConfigureAwait(false);
            connections.Add(cc);
            declarer = await cc.CreateChannelAsync(cancellationToken: ct).ConfigureAwait(false);
            await declarer.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: false, cancellationToken: ct).ConfigureAwait(false);
            await declarer.BasicConsumeAsync(queue, true, new Consumer(declarer, receiver, 0), ct).ConfigureAwait(false);
            var pc = await factory.CreateConnectionAsync($"{tag}-publisher", ct).ConfigureAwait(false);
            connections.Add(pc);
            var pub = await AmqpPublisher.CreateAsync(pc, 0, queue, count, persistent: false, confirmWindow: 0, gap: null,
                TimeSpan.FromSeconds(o.Idle), ct).ConfigureAwait(false);
            var start = Stopwatch.GetTimestamp();
            try
            {
                await pub.RunAsync(start, o.LatencyRate, ct).ConfigureAwait(false);
                r.Extra["publish_rate"] = pub.Sent / Scenarios.Seconds(start, pub.EndTicks);
                await receiver.WaitAsync(() => pub.Expected, o.Idle, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                r.TimedOut = true;
            }
            Settle(r, receiver, [pub], start);
            r.Metrics.Remove("rate");
            r.Error = pub.Error;
            var lat = receiver.Latencies(from: warm);
            Array.Sort(lat);
            Scenarios.WarmupTail(o, tag, r, receiver.Latencies(from: 0));
            if (lat.Length > 0)
            {
                r.Metrics["p50"] = Scenarios.Percentile(lat, 0.50);
                r.Metrics["p99"] = Scenarios.Percentile(lat, 0.99);
                r.Metrics["max"] = lat[^1];
                r.Extra["mean"] = lat.Average();
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            r.TimedOut = true;
        }
        finally
        {
            await DeleteQueueAsync(declarer, queue).ConfigureAwait(false);
            await CloseAllAsync(connections).ConfigureAwait(false);
        }
        return r;
    }

    /// <summary>
    /// Broker RSS before, and --memory-settle seconds after, opening --clients idle connections with one channel each
    /// (heartbeat 60 s). 50 connections are opened and closed first so one-time costs are not counted per connection.
    /// </summary>
    private static async Task<RunResult> IdleMemory(BenchOptions o, string tag, CancellationToken ct)
    {
        var r = new RunResult { Expected = o.Clients };
        if (o.Pid <= 0)
        {
            r.Error = "no --pid given";
            return r;
        }
        var factory = Factory(o, o.Port);
        var (warm, _, _, _) = await OpenManyAsync(factory, Math.Min(50, o.Clients), o.Concurrency, tag + "-warm", ct).ConfigureAwait(false);
        await CloseAllAsync(warm, o.Concurrency).ConfigureAwait(false);
        await Task.Delay(TimeSpan.FromSeconds(3), ct).ConfigureAwait(false);
        var before = Scenarios.ReadRssKiB(o.Pid);
        var (connections, failed, seconds, timedOut) = await OpenManyAsync(factory, o.Clients, o.Concurrency, tag, ct).ConfigureAwait(false);
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(o.MemorySettle), CancellationToken.None).ConfigureAwait(false);
            var after = Scenarios.ReadRssKiB(o.Pid);
            r.Received = connections.Count;
            r.Failed = failed;
            r.TimedOut = timedOut;
            r.Extra["rss_before_kib"] = before;
            r.Extra["rss_after_kib"] = after;
            r.Extra["connect_rate"] = connections.Count / seconds;
            if (connections.Count > 0)
            {
                r.Metrics["kib"] = (after - before) / (double)connections.Count;
            }
        }
        finally
        {
            await CloseAllAsync(connections, o.Concurrency).ConfigureAwait(false);
        }
        return r;
    }

    /// <summary>Opens <paramref name="n"/> connections with one channel each, <paramref name="concurrency"/> at a time.</summary>
    private static async Task<(List<IConnection> Connections, long Failed, double Seconds, bool TimedOut)> OpenManyAsync(
        ConnectionFactory factory, int n, int concurrency, string tag, CancellationToken ct)
    {
        var connections = new List<IConnection>(n);
        long failed = 0;
        var timedOut = false;
        using var sem = new SemaphoreSlim(concurrency);
        var tasks = new List<Task>(n);
        var start = Stopwatch.GetTimestamp();
        try
        {
            for (var i = 0; i < n; i++)
            {
                await sem.WaitAsync(ct).ConfigureAwait(false);
                var name = $"{tag}-c{i}";
                tasks.Add(Task.Run(async () =>
                {
                    IConnection? conn = null;
                    try
                    {
                        conn = await factory.CreateConnectionAsync(name, ct).ConfigureAwait(false);
                        await conn.CreateChannelAsync(cancellationToken: ct).ConfigureAwait(false);
                        lock (connections)
                        {
                            connections.Add(conn);
                        }
                    }
                    catch (Exception)
                    {
                        Interlocked.Increment(ref failed);
                        if (conn is not null)
                        {
                            await CloseAsync(conn).ConfigureAwait(false);
                        }
                    }
                    finally
                    {
                        sem.Release();
                    }
                }, CancellationToken.None));
            }
            await Task.WhenAll(tasks).WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            timedOut = true;
            // The attempts in flight end by their own connection timeout; wait for them so none leaks.
            await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None).ConfigureAwait(false);
        }
        var seconds = Scenarios.Seconds(start, Stopwatch.GetTimestamp());
        lock (connections)
        {
            return ([.. connections], Interlocked.Read(ref failed), seconds, timedOut);
        }
    }

    /// <summary>Deletes the run's queue (best effort) so neither broker accumulates queues over the runs.</summary>
    private static async Task DeleteQueueAsync(IChannel? channel, string queue)
    {
        if (channel is null || !channel.IsOpen)
        {
            return;
        }
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await channel.QueueDeleteAsync(queue, ifUnused: false, ifEmpty: false, cancellationToken: cts.Token).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"deleting queue {queue}: {e.GetType().Name}: {e.Message}");
        }
    }

    public static async Task CloseAllAsync(IEnumerable<IConnection> connections, int concurrency = 50)
    {
        using var sem = new SemaphoreSlim(concurrency);
        await Task.WhenAll(connections.Select(async c =>
        {
            await sem.WaitAsync().ConfigureAwait(false);
            try
            {
                await CloseAsync(c).ConfigureAwait(false);
            }
            finally
            {
                sem.Release();
            }
        })).ConfigureAwait(false);
    }

    /// <summary>connection.close (best effort, 5 s at most), then dispose.</summary>
    private static async Task CloseAsync(IConnection c)
    {
        try
        {
            if (c.IsOpen)
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await c.CloseAsync(Constants.ReplySuccess, "bench done", TimeSpan.FromSeconds(5), false, cts.Token).ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // Best effort: the connection may already be gone.
        }
        finally
        {
            await c.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Opens and closes one connection as guest; for run.sh to tell when a broker is ready.</summary>
    public static async Task<bool> WaitReadyAsync(string host, int port, TimeSpan timeout)
    {
        var factory = Factory(new BenchOptions { Host = host }, port);
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                var conn = await factory.CreateConnectionAsync("bench-wait").ConfigureAwait(false);
                await CloseAsync(conn).ConfigureAwait(false);
                return true;
            }
            catch (Exception) when (Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(200).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"no AMQP on {host}:{port}: {e.GetType().Name}: {e.Message}");
                return false;
            }
        }
    }

    /// <summary>Records each delivery; acknowledges every Nth one (with multiple when N &gt; 1), or none for auto-ack.</summary>
    private sealed class Consumer(IChannel channel, AmqpReceiver receiver, int ackEvery) : AsyncDefaultBasicConsumer(channel)
    {
        private int _unacked;

        public override Task HandleBasicDeliverAsync(string consumerTag, ulong deliveryTag, bool redelivered, string exchange,
            string routingKey, IReadOnlyBasicProperties properties, ReadOnlyMemory<byte> body, CancellationToken cancellationToken = default)
        {
            receiver.OnMessage(body.Span);
            if (ackEvery == 0 || ++_unacked < ackEvery)
            {
                return Task.CompletedTask;
            }
            _unacked = 0;
            return Channel.BasicAckAsync(deliveryTag, ackEvery > 1, cancellationToken).AsTask();
        }
    }
}

/// <summary>
/// CPU time of the broker and of this bench process over a run, per delivered message: tells a broker that is busy from
/// one that waits. Erlang schedulers spin briefly before they sleep, which counts as CPU time of RabbitMQ's VM.
/// </summary>
internal sealed class CpuMeter(int pid)
{
    private readonly double? _broker = pid > 0 ? Scenarios.ReadCpuSeconds(pid) : null;
    private readonly TimeSpan _bench = Process.GetCurrentProcess().TotalProcessorTime;
    private readonly long _start = Stopwatch.GetTimestamp();

    public void Record(RunResult r, long messages)
    {
        var seconds = Scenarios.Seconds(_start, Stopwatch.GetTimestamp());
        var bench = (Process.GetCurrentProcess().TotalProcessorTime - _bench).TotalSeconds;
        r.Extra["bench_cpu_pct"] = 100 * bench / seconds;
        if (messages > 0)
        {
            r.Extra["bench_cpu_us_per_msg"] = bench * 1e6 / messages;
        }
        if (_broker is double before && Scenarios.ReadCpuSeconds(pid) is double after)
        {
            r.Extra["broker_cpu_pct"] = 100 * (after - before) / seconds;
            if (messages > 0)
            {
                r.Extra["broker_cpu_us_per_msg"] = (after - before) * 1e6 / messages;
            }
        }
    }
}

/// <summary>Distinct and duplicate deliveries over all consumers of a run (thread-safe), optional per-message latency.</summary>
internal sealed class AmqpReceiver
{
    private readonly int[][] _seen;
    private readonly double[]? _latencyMs;
    private readonly SemaphoreSlim[]? _gaps;
    private long _unique;
    private long _duplicates;
    private long _lastTicks;

    /// <param name="gaps">per publisher: released once for each of its messages delivered for the first time.</param>
    public AmqpReceiver(int publishers, int perPublisher, bool recordLatency, SemaphoreSlim[]? gaps)
    {
        _seen = new int[publishers][];
        for (var i = 0; i < publishers; i++)
        {
            _seen[i] = new int[perPublisher];
        }
        if (recordLatency)
        {
            _latencyMs = new double[publishers * perPublisher];
            Array.Fill(_latencyMs, double.NaN);
        }
        _gaps = gaps;
    }

    public long Unique => Interlocked.Read(ref _unique);
    public long Duplicates => Interlocked.Read(ref _duplicates);
    public long LastTicks => Interlocked.Read(ref _lastTicks);

    public void OnMessage(ReadOnlySpan<byte> body)
    {
        var now = Stopwatch.GetTimestamp();
        if (body.Length < Mqtt.HeaderSize)
        {
            return;
        }
        var p = BinaryPrimitives.ReadInt32LittleEndian(body);
        var s = BinaryPrimitives.ReadInt32LittleEndian(body[4..]);
        var ts = BinaryPrimitives.ReadInt64LittleEndian(body[8..]);
        if ((uint)p >= (uint)_seen.Length || (uint)s >= (uint)_seen[p].Length)
        {
            return;
        }
        if (Interlocked.Exchange(ref _seen[p][s], 1) != 0)
        {
            Interlocked.Increment(ref _duplicates);
        }
        else
        {
            if (_latencyMs is not null)
            {
                _latencyMs[(p * _seen[p].Length) + s] = (now - ts) * 1000.0 / Stopwatch.Frequency;
            }
            Interlocked.Increment(ref _unique);
            _gaps?[p].Release();
        }
        Interlocked.Exchange(ref _lastTicks, now);
    }

    public bool Seen(int publisher, int seq) => Volatile.Read(ref _seen[publisher][seq]) != 0;

    /// <summary>The latencies of the messages received, from sequence number <paramref name="from"/> on (one publisher).</summary>
    public double[] Latencies(int from = 0) => _latencyMs is null ? [] : [.. _latencyMs.Skip(from).Where(x => !double.IsNaN(x))];

    /// <summary>Waits until every expected message arrived, or nothing new arrived for <paramref name="idleSeconds"/>.</summary>
    public async Task WaitAsync(Func<long> expected, int idleSeconds, CancellationToken ct)
    {
        long lastTotal = -1;
        var lastChange = Stopwatch.GetTimestamp();
        while (true)
        {
            var total = Unique;
            if (total >= expected())
            {
                return;
            }
            if (total != lastTotal)
            {
                lastTotal = total;
                lastChange = Stopwatch.GetTimestamp();
            }
            else if (Scenarios.Seconds(lastChange, Stopwatch.GetTimestamp()) > idleSeconds)
            {
                return;
            }
            await Task.Delay(20, ct).ConfigureAwait(false);
        }
    }
}

/// <summary>
/// One publisher connection and channel. With a confirm window it runs <c>confirm.select</c> and tracks the broker's
/// basic.ack/basic.nack itself (delivery tag n = the n-th publish of the channel). A gap semaphore the consumers release
/// (and a nack, for a message that will never be delivered) bounds how far it runs ahead of the deliveries.
/// </summary>
internal sealed class AmqpPublisher
{
    private const byte Pending = 0, Confirmed = 1, Rejected = 2;

    private readonly IChannel _channel;
    private readonly string _queue;
    private readonly BasicProperties _props;
    private readonly int _confirmWindow;
    private readonly SemaphoreSlim? _gap;
    private readonly SemaphoreSlim? _window;
    private readonly TimeSpan _stallTimeout;
    private readonly byte[] _state;
    private readonly Lock _lock = new();
    private int _lowestPending;
    private long _sent;
    private long _nacked;

    private AmqpPublisher(IChannel channel, int index, string queue, int count, bool persistent, int confirmWindow,
        SemaphoreSlim? gap, TimeSpan stallTimeout)
    {
        _channel = channel;
        Index = index;
        _queue = queue;
        Count = count;
        _props = new BasicProperties { DeliveryMode = persistent ? DeliveryModes.Persistent : DeliveryModes.Transient };
        _confirmWindow = confirmWindow;
        _gap = gap;
        _window = confirmWindow > 0 ? new SemaphoreSlim(confirmWindow) : null;
        _stallTimeout = stallTimeout;
        _state = new byte[count];
    }

    public static async Task<AmqpPublisher> CreateAsync(IConnection conn, int index, string queue, int count, bool persistent,
        int confirmWindow, SemaphoreSlim? gap, TimeSpan stallTimeout, CancellationToken ct)
    {
        // Confirms tracked here rather than by the client (publisherConfirmationTrackingEnabled), which would add a
        // sequence-number header to every message and a task per publish.
        var options = new CreateChannelOptions(publisherConfirmationsEnabled: confirmWindow > 0, publisherConfirmationTrackingEnabled: false,
            outstandingPublisherConfirmationsRateLimiter: null);
        var ch = await conn.CreateChannelAsync(options, ct).ConfigureAwait(false);
        var pub = new AmqpPublisher(ch, index, queue, count, persistent, confirmWindow, gap, stallTimeout);
        if (confirmWindow > 0)
        {
            ch.BasicAcksAsync += pub.OnAckAsync;
            ch.BasicNacksAsync += pub.OnNackAsync;
        }
        return pub;
    }

    public int Index { get; }
    public int Count { get; }
    public long Sent => Interlocked.Read(ref _sent);
    public long Nacked => Interlocked.Read(ref _nacked);
    public long EndTicks { get; private set; }
    public string? Error { get; private set; }

    /// <summary>Messages that must reach a consumer: all published ones without confirms, the confirmed ones with.</summary>
    public long Expected => _confirmWindow == 0 ? Sent : _state.Count(s => s == Confirmed);

    /// <summary>Nacked, or published and never confirmed.</summary>
    public long Failed => _confirmWindow == 0 ? 0 : Sent - _state.Count(s => s == Confirmed);

    public bool Counts(int seq) => seq < Sent && (_confirmWindow == 0 || Volatile.Read(ref _state[seq]) == Confirmed);

    /// <summary>Publishes every message (paced to <paramref name="rate"/> per second when &gt; 0), then waits for the last confirms.</summary>
    public async Task RunAsync(long startTicks, int rate, CancellationToken ct)
    {
        try
        {
            for (var i = 0; i < Count; i++)
            {
                if (rate > 0)
                {
                    await PaceAsync(startTicks + (long)(i * (double)Stopwatch.Frequency / rate), ct).ConfigureAwait(false);
                }
                if (_gap is not null && !await _gap.WaitAsync(_stallTimeout, ct).ConfigureAwait(false))
                {
                    Error = $"publisher {Index}: its last messages not delivered within {_stallTimeout.TotalSeconds:0} s";
                    return;
                }
                if (_window is not null && !await _window.WaitAsync(_stallTimeout, ct).ConfigureAwait(false))
                {
                    Error = $"publisher {Index}: {_confirmWindow} publishes unconfirmed for {_stallTimeout.TotalSeconds:0} s";
                    return;
                }
                await _channel.BasicPublishAsync("", _queue, false, _props, Mqtt.Payload(Amqp.BodySize, Index, i), ct).ConfigureAwait(false);
                Interlocked.Increment(ref _sent);
            }
            if (_window is not null)
            {
                // All confirmed once every permit of the window is back.
                for (var k = 0; k < _confirmWindow; k++)
                {
                    if (!await _window.WaitAsync(_stallTimeout, ct).ConfigureAwait(false))
                    {
                        Error = $"publisher {Index}: {Failed} publishes never confirmed";
                        return;
                    }
                }
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Error = $"publisher {Index}: {e.GetType().Name}: {e.Message}";
        }
        finally
        {
            EndTicks = Stopwatch.GetTimestamp();
        }
    }

    private static async Task PaceAsync(long due, CancellationToken ct)
    {
        while (true)
        {
            var wait = (due - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
            if (wait <= 0)
            {
                return;
            }
            await Task.Delay((int)Math.Max(1, wait - 1), ct).ConfigureAwait(false);
        }
    }

    private Task OnAckAsync(object sender, BasicAckEventArgs e)
    {
        Settle(e.DeliveryTag, e.Multiple, Confirmed);
        return Task.CompletedTask;
    }

    private Task OnNackAsync(object sender, BasicNackEventArgs e)
    {
        Settle(e.DeliveryTag, e.Multiple, Rejected);
        return Task.CompletedTask;
    }

    /// <summary>Delivery tag n is the n-th publish, i.e. sequence number n - 1.</summary>
    private void Settle(ulong tag, bool multiple, byte outcome)
    {
        var released = 0;
        lock (_lock)
        {
            var last = (int)Math.Min(tag, (ulong)_state.Length) - 1;
            var from = multiple ? _lowestPending : Math.Max(last, 0);
            for (var s = from; s <= last; s++)
            {
                if (_state[s] == Pending)
                {
                    Volatile.Write(ref _state[s], outcome);
                    released++;
                }
            }
            while (_lowestPending < _state.Length && _state[_lowestPending] != Pending)
            {
                _lowestPending++;
            }
        }
        if (outcome == Rejected)
        {
            Interlocked.Add(ref _nacked, released);
            if (released > 0)
            {
                _gap?.Release(released);
            }
        }
        if (released > 0)
        {
            _window?.Release(released);
        }
    }
}
