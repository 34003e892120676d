using System.Diagnostics;
using System.Globalization;
using MQTTnet;
using MQTTnet.Protocol;

namespace Broker.Bench;

internal delegate Task<RunResult> ScenarioRun(BenchOptions o, string tag, CancellationToken ct);

internal sealed record Scenario(string Id, string Title, MetricDef[] Metrics, ScenarioRun Run);

internal static class Scenarios
{
    private static readonly MetricDef MsgPerSec = new("rate", "msg/s", true);
    private static readonly MetricDef DeliveriesPerSec = new("rate", "deliveries/s", true);

    public static readonly Scenario[] All =
    [
        new("qos0-64", "QoS 0 1→1, 64 B", [MsgPerSec], (o, t, ct) => Throughput(o, t, 1, 1, o.Messages, MqttQualityOfServiceLevel.AtMostOnce, 64, ct)),
        new("qos0-1k", "QoS 0 1→1, 1 KiB", [MsgPerSec], (o, t, ct) => Throughput(o, t, 1, 1, o.Messages, MqttQualityOfServiceLevel.AtMostOnce, 1024, ct)),
        new("qos1-64", "QoS 1 1→1, 64 B", [MsgPerSec], (o, t, ct) => Throughput(o, t, 1, 1, o.MessagesQos1, MqttQualityOfServiceLevel.AtLeastOnce, 64, ct)),
        new("qos1-1k", "QoS 1 1→1, 1 KiB", [MsgPerSec], (o, t, ct) => Throughput(o, t, 1, 1, o.MessagesQos1, MqttQualityOfServiceLevel.AtLeastOnce, 1024, ct)),
        new("fanin-qos0", "QoS 0 fan-in 4→1, 64 B", [MsgPerSec], (o, t, ct) => Throughput(o, t, 4, 1, o.Messages / 4, MqttQualityOfServiceLevel.AtMostOnce, 64, ct)),
        new("fanin-qos1", "QoS 1 fan-in 4→1, 64 B", [MsgPerSec], (o, t, ct) => Throughput(o, t, 4, 1, o.MessagesQos1 / 4, MqttQualityOfServiceLevel.AtLeastOnce, 64, ct)),
        new("fanout-qos0", "QoS 0 fan-out 1→4, 64 B", [DeliveriesPerSec], (o, t, ct) => Throughput(o, t, 1, 4, o.Messages / 4, MqttQualityOfServiceLevel.AtMostOnce, 64, ct)),
        new("fanout-qos1", "QoS 1 fan-out 1→4, 64 B", [DeliveriesPerSec], (o, t, ct) => Throughput(o, t, 1, 4, o.MessagesQos1 / 4, MqttQualityOfServiceLevel.AtLeastOnce, 64, ct)),
        // Where one copy per node matters: many subscribers of one topic, sessions spread over the cluster's nodes.
        new("fanout16-qos0-1k", "QoS 0 fan-out 1→16, 1 KiB", [DeliveriesPerSec], (o, t, ct) => Throughput(o, t, 1, 16, o.Messages / 16, MqttQualityOfServiceLevel.AtMostOnce, 1024, ct)),
        new("fanout16-qos1-1k", "QoS 1 fan-out 1→16, 1 KiB", [DeliveriesPerSec], (o, t, ct) => Throughput(o, t, 1, 16, o.MessagesQos1 / 16, MqttQualityOfServiceLevel.AtLeastOnce, 1024, ct)),
        new("latency", "Latency QoS 1, 64 B, fixed rate", [new("p50", "p50 ms", false), new("p99", "p99 ms", false)], Latency),
        new("connect", "Connect rate", [new("rate", "connects/s", true)], Connect),
        new("memory", "Memory per idle connection", [new("kib", "KiB/conn", false)], Memory),
    ];

    /// <summary>Scenarios that only run when named: they need a cluster, and kill one of its nodes.</summary>
    public static readonly Scenario[] Special =
    [
        new("failover", "Fail-over: SIGKILL of a node under QoS 1 load",
            [new("recovery", "recovery s", false), new("first_msg", "first new message s", false), new("restart", "restart s", false)],
            Failover.RunAsync),
    ];

    public static List<Scenario> Select(string spec)
    {
        if (spec == "all")
        {
            return [.. All];
        }
        var parts = spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var picked = All.Concat(Special).Concat(Amqp.All).Where(s => parts.Any(p => s.Id == p || s.Id.StartsWith(p + "-", StringComparison.Ordinal))).ToList();
        // Connection-scale scenarios: by id, by "scale", or by a prefix that is not itself another scenario's id (so
        // "connect" and "memory" keep selecting only the scenarios of those ids, "session" selects both session ones).
        picked.AddRange(Scale.All.Where(s => parts.Any(p => s.Id == p || p == "scale"
            || (s.Id.StartsWith(p + "-", StringComparison.Ordinal) && !All.Any(a => a.Id == p)))));
        if (picked.Count == 0)
        {
            throw new ArgumentException($"no scenario matches '{spec}'; ids: {string.Join(", ", All.Concat(Special).Concat(Amqp.All).Concat(Scale.All).Select(s => s.Id))}");
        }
        return picked;
    }

    /// <summary>
    /// Subscribers connect and subscribe first, then the publishers publish as fast as their window allows.
    /// Rate = distinct messages received by all subscribers / (last receive - first send).
    /// </summary>
    private static async Task<RunResult> Throughput(BenchOptions o, string tag, int publishers, int subscribers,
        int perPublisher, MqttQualityOfServiceLevel qos, int size, CancellationToken ct)
    {
        var r = new RunResult();
        var clients = new List<IMqttClient>();
        var root = $"bench/{tag}";
        try
        {
            // Fan-in subscribes to a wildcard; 1→1 and fan-out to the exact topic.
            var filter = publishers > 1 ? root + "/+" : root + "/0";
            var receivers = new Receiver[subscribers];
            for (var s = 0; s < subscribers; s++)
            {
                receivers[s] = new Receiver(publishers, perPublisher) { Expected = (long)publishers * perPublisher };
                var (c, _) = await Mqtt.ConnectAsync(o, $"{tag}-sub{s}", o.SubPort(s), ct).ConfigureAwait(false);
                clients.Add(c);
                receivers[s].Attach(c);
                await Mqtt.SubscribeAsync(c, filter, qos, ct).ConfigureAwait(false);
            }
            var pubs = new Publisher[publishers];
            var window = o.Window;
            for (var p = 0; p < publishers; p++)
            {
                var (c, connack) = await Mqtt.ConnectAsync(o, $"{tag}-pub{p}", o.PubPort(p), ct).ConfigureAwait(false);
                clients.Add(c);
                // Never exceed the receive maximum the broker announced (MQTT 5; 0 = not announced).
                if (qos != MqttQualityOfServiceLevel.AtMostOnce && connack.ReceiveMaximum is ushort rm and > 0)
                {
                    window = Math.Min(window, rm);
                }
                pubs[p] = new Publisher(c, p, $"{root}/{p}", perPublisher, size, qos, window)
                {
                    OverBacklog = o.Backlog > 0 ? () => Undelivered() > o.Backlog : null,
                    StallTimeout = TimeSpan.FromSeconds(o.Idle),
                };
            }
            r.Extra["window"] = window;
            if (o.Backlog > 0)
            {
                r.Extra["backlog"] = o.Backlog;
            }
            // Messages sent and not yet delivered to every subscriber (the publishers are all made before any runs).
            long Undelivered() => (pubs.Sum(p => p.Sent) * subscribers) - receivers.Sum(x => x.Unique);

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
                    var pubEnd = pubs.Max(p => p.EndTicks);
                    r.Extra["publish_rate"] = pubs.Sum(p => p.Sent) / Seconds(start, pubEnd);
                }
                await WaitReceiversAsync(receivers, o.Idle, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                r.TimedOut = true;
            }

            var last = receivers.Max(x => x.LastTicks);
            r.Received = receivers.Sum(x => x.Unique);
            cpu.Record(r, r.Received);
            r.Duplicates = receivers.Sum(x => x.Duplicates);
            r.Failed = pubs.Sum(p => p.Failed);
            long expected = 0, lost = 0;
            foreach (var rec in receivers)
            {
                foreach (var p in pubs)
                {
                    for (var i = 0; i < p.Count; i++)
                    {
                        if (p.Acked(i))
                        {
                            expected++;
                            if (!rec.Seen(p.Index, i))
                            {
                                lost++;
                            }
                        }
                    }
                }
            }
            r.Expected = expected;
            r.Lost = lost;
            r.Extra["sent"] = pubs.Sum(p => p.Sent);
            if (r.Received > 0)
            {
                r.Metrics["rate"] = r.Received / Seconds(start, last);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            r.TimedOut = true;
        }
        finally
        {
            await Mqtt.DisconnectAllAsync(clients).ConfigureAwait(false);
        }
        return r;
    }

    /// <summary>Waits until every receiver has all its messages, or nothing new arrived for <paramref name="idleSeconds"/>.</summary>
    private static async Task WaitReceiversAsync(Receiver[] receivers, int idleSeconds, CancellationToken ct)
    {
        long lastTotal = -1;
        var lastChange = Stopwatch.GetTimestamp();
        while (true)
        {
            if (receivers.All(x => x.Unique >= x.Expected))
            {
                return;
            }
            var total = receivers.Sum(x => x.Unique);
            if (total != lastTotal)
            {
                lastTotal = total;
                lastChange = Stopwatch.GetTimestamp();
            }
            else if (Seconds(lastChange, Stopwatch.GetTimestamp()) > idleSeconds)
            {
                return;
            }
            await Task.Delay(20, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The p99 of every message of a latency run, the warm-up included (<see cref="BenchOptions.LatencyWarmup"/>), so what
    /// the warm-up leaves out of the percentiles is still reported.
    /// </summary>
    internal static void WarmupTail(BenchOptions o, string tag, RunResult r, double[] all)
    {
        if (o.LatencyOut is { Length: > 0 } file)
        {
            File.AppendAllLines(file, all.Select(x => x.ToString("F3", CultureInfo.InvariantCulture)).Prepend("# " + tag));
        }
        if (all.Length > 0)
        {
            Array.Sort(all);
            r.Extra["p99_with_warmup"] = Percentile(all, 0.99);
        }
    }

    /// <summary>
    /// QoS 1, 64 B at a fixed rate; the subscriber takes now minus the send timestamp in the payload. The first
    /// --latency-warmup seconds are sent the same way and left out of the percentiles.
    /// </summary>
    private static async Task<RunResult> Latency(BenchOptions o, string tag, CancellationToken ct)
    {
        var r = new RunResult();
        var clients = new List<IMqttClient>();
        var warm = o.LatencyRate * o.LatencyWarmup;
        var count = warm + (o.LatencyRate * o.LatencySeconds);
        var qos = MqttQualityOfServiceLevel.AtLeastOnce;
        try
        {
            var topic = $"bench/{tag}/0";
            var rec = new Receiver(1, count, recordLatency: true) { Expected = count };
            var (sub, _) = await Mqtt.ConnectAsync(o, $"{tag}-sub", o.SubPort(0), ct).ConfigureAwait(false);
            clients.Add(sub);
            rec.Attach(sub);
            await Mqtt.SubscribeAsync(sub, topic, qos, ct).ConfigureAwait(false);
            var (pc, connack) = await Mqtt.ConnectAsync(o, $"{tag}-pub", o.PubPort(0), ct).ConfigureAwait(false);
            clients.Add(pc);
            var window = connack.ReceiveMaximum is ushort rm and > 0 ? Math.Min(o.Window, rm) : o.Window;
            var pub = new Publisher(pc, 0, topic, count, 64, qos, window);
            var start = Stopwatch.GetTimestamp();
            try
            {
                await pub.RunAsync(start, o.LatencyRate, ct).ConfigureAwait(false);
                r.Extra["publish_rate"] = pub.Sent / Seconds(start, pub.EndTicks);
                await WaitReceiversAsync([rec], o.Idle, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                r.TimedOut = true;
            }
            var lat = rec.Latencies(from: warm);
            Array.Sort(lat);
            WarmupTail(o, tag, r, rec.Latencies(from: 0));
            r.Received = rec.Unique;
            r.Duplicates = rec.Duplicates;
            r.Failed = pub.Failed;
            r.Expected = pub.AckedCount;
            r.Lost = Enumerable.Range(0, count).Count(i => pub.Acked(i) && !rec.Seen(0, i));
            if (lat.Length > 0)
            {
                r.Metrics["p50"] = Percentile(lat, 0.50);
                r.Metrics["p99"] = Percentile(lat, 0.99);
                r.Extra["max"] = lat[^1];
                r.Extra["mean"] = lat.Average();
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            r.TimedOut = true;
        }
        finally
        {
            await Mqtt.DisconnectAllAsync(clients).ConfigureAwait(false);
        }
        return r;
    }

    internal static double Percentile(double[] sorted, double q)
    {
        var idx = (int)Math.Ceiling(q * sorted.Length) - 1;
        return sorted[Math.Clamp(idx, 0, sorted.Length - 1)];
    }

    /// <summary>Connects <see cref="BenchOptions.Clients"/> clients, <see cref="BenchOptions.Concurrency"/> at a time.</summary>
    private static async Task<(List<IMqttClient> Clients, long Ok, long Failed, double Seconds, bool TimedOut)> ConnectManyAsync(
        BenchOptions o, string tag, CancellationToken ct)
    {
        var clients = new List<IMqttClient>(o.Clients);
        long ok = 0, failed = 0;
        var timedOut = false;
        var sem = new SemaphoreSlim(o.Concurrency);
        var start = Stopwatch.GetTimestamp();
        var tasks = new List<Task>(o.Clients);
        try
        {
            for (var i = 0; i < o.Clients; i++)
            {
                await sem.WaitAsync(ct).ConfigureAwait(false);
                var id = $"{tag}-c{i}";
                tasks.Add(Task.Run(async () =>
                {
                    try
                    {
                        var (c, _) = await Mqtt.ConnectAsync(o, id, ct).ConfigureAwait(false);
                        lock (clients)
                        {
                            clients.Add(c);
                        }
                        Interlocked.Increment(ref ok);
                    }
                    catch (Exception)
                    {
                        Interlocked.Increment(ref failed);
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
            // Let the in-flight attempts finish (their own connect timeout bounds them) so no client leaks.
            await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(15), CancellationToken.None).ConfigureAwait(false);
        }
        var seconds = Seconds(start, Stopwatch.GetTimestamp());
        List<IMqttClient> snapshot;
        lock (clients)
        {
            snapshot = [.. clients];
        }
        return (snapshot, Interlocked.Read(ref ok), Interlocked.Read(ref failed), seconds, timedOut);
    }

    private static async Task<RunResult> Connect(BenchOptions o, string tag, CancellationToken ct)
    {
        var r = new RunResult { Expected = o.Clients };
        var (clients, ok, failed, seconds, timedOut) = await ConnectManyAsync(o, tag, ct).ConfigureAwait(false);
        try
        {
            r.Received = ok;
            r.Failed = failed;
            r.TimedOut = timedOut;
            r.Extra["seconds"] = seconds;
            if (ok > 0)
            {
                r.Metrics["rate"] = ok / seconds;
            }
        }
        finally
        {
            await Mqtt.DisconnectAllAsync(clients, o.Concurrency).ConfigureAwait(false);
        }
        return r;
    }

    /// <summary>
    /// Broker RSS before and 3 s after connecting the idle clients (keep-alive 60 s). Memory the broker freed earlier is
    /// reused and hides growth, so run.sh runs this scenario on freshly started brokers.
    /// </summary>
    private static async Task<RunResult> Memory(BenchOptions o, string tag, CancellationToken ct)
    {
        var r = new RunResult { Expected = o.Clients };
        if (o.Pid <= 0)
        {
            r.Error = "no --pid given";
            return r;
        }
        // Connect and drop a few clients first so one-time costs (code paths, pools) are not counted per connection.
        var warm = new BenchOptions { Host = o.Host, Port = o.Port, Protocol = o.Protocol, Clients = Math.Min(50, o.Clients), Concurrency = o.Concurrency };
        var (warmClients, _, _, _, _) = await ConnectManyAsync(warm, tag + "-warm", ct).ConfigureAwait(false);
        await Mqtt.DisconnectAllAsync(warmClients, o.Concurrency).ConfigureAwait(false);
        await Task.Delay(TimeSpan.FromSeconds(3), ct).ConfigureAwait(false);
        var before = ReadRssKiB(o.Pid);
        var (clients, ok, failed, _, timedOut) = await ConnectManyAsync(o, tag, ct).ConfigureAwait(false);
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(3), CancellationToken.None).ConfigureAwait(false);
            var after = ReadRssKiB(o.Pid);
            r.Received = ok;
            r.Failed = failed;
            r.TimedOut = timedOut;
            r.Extra["rss_before_kib"] = before;
            r.Extra["rss_after_kib"] = after;
            if (ok > 0)
            {
                r.Metrics["kib"] = (after - before) / (double)ok;
            }
        }
        finally
        {
            await Mqtt.DisconnectAllAsync(clients, o.Concurrency).ConfigureAwait(false);
        }
        return r;
    }

    public static long ReadRssKiB(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                var parts = line.Split(' ', '\t').Where(p => p.Length > 0).ToArray();
                return long.Parse(parts[1], CultureInfo.InvariantCulture);
            }
        }
        throw new InvalidOperationException($"no VmRSS for pid {pid}");
    }

    /// <summary>CPU time (user + system) the process has used so far, from /proc/&lt;pid&gt;/stat; null when unreadable.</summary>
    public static double? ReadCpuSeconds(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // Fields after the command name, which is in parentheses and may hold spaces: state is field 3, utime 14, stime 15.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            return ticks / 100.0; // USER_HZ
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    internal static double Seconds(long from, long to) => Math.Max(to - from, 1) / (double)Stopwatch.Frequency;
}
