using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace Broker.Bench;

/// <summary>
/// Connection-scale scenarios (issue 9): connect rates, persistent session creation and resumption, memory of
/// 20,000 idle connections and the restart of a node holding many sessions. They use <see cref="RawMqttClient"/>, a
/// hand-encoded MQTT 3.1.1 / 5.0 client on raw sockets, so the generator costs little next to the broker
/// (<c>--generator mqttnet</c> runs connect-seq and connect-conc with MQTTnet instead).
/// </summary>
internal static partial class Scale
{
    /// <summary>Session expiry of the persistent MQTT 5 sessions.</summary>
    private const uint SessionExpiry = 3600;

    public static readonly Scenario[] All =
    [
        new("connect-seq", "Connect one after another (connect, CONNACK, DISCONNECT)", [new("rate", "connects/s", true)], ConnectSeq),
        new("connect-conc", "Connect, N at a time (--concurrency)", [new("rate", "connects/s", true)], ConnectConc),
        new("session-create", "New persistent session + SUBSCRIBE QoS 1", [new("rate", "sessions/s", true)], SessionCreate),
        new("session-resume", "Resume persistent session, 1 queued QoS 1 message", [new("rate", "resumes/s", true)], SessionResume),
        new("session-resume-rest", "Resume persistent session at rest (--rest-wait s idle), 1 queued QoS 1 message",
            [new("rate", "resumes/s", true)], (o, tag, ct) => SessionResume(o, tag, ct, TimeSpan.FromSeconds(o.RestWait))),
        new("memory-20k", "Memory per idle connection, many source addresses", [new("kib", "KiB/conn", false)], Memory),
        new("restart", "Restart with N persistent sessions (SIGTERM, start)",
            [new("ready", "s to ready", false), new("connack", "s to first CONNACK", false)], Restart),
    ];

    /// <summary>Scenarios whose failures are failed connections (the Lost column counts those).</summary>
    public static bool CountsConnections(string id) => id is "connect-seq" or "connect-conc" or "session-create" or "memory-20k";

    private static IPEndPoint Remote(BenchOptions o)
    {
        if (!IPAddress.TryParse(o.Host, out var ip))
        {
            ip = Dns.GetHostAddresses(o.Host).First(a => a.AddressFamily == AddressFamily.InterNetwork);
        }
        return new IPEndPoint(ip, o.Port);
    }

    private static byte Level(BenchOptions o) => RawMqttClient.LevelOf(o.Protocol);

    private static ushort KeepAlive(BenchOptions o) => (ushort)o.KeepAlive;

    /// <summary>
    /// Runs <paramref name="op"/> for indexes 0..count-1 on <paramref name="concurrency"/> workers; an op returns whether
    /// it succeeded, an exception counts as a failure. Stops taking new indexes once <paramref name="ct"/> is cancelled.
    /// </summary>
    internal static async Task<(long Ok, long Failed, double Seconds, bool TimedOut)> RunWorkersAsync(
        int count, int concurrency, Func<int, CancellationToken, Task<bool>> op, CancellationToken ct)
    {
        long ok = 0, failed = 0;
        var next = -1;
        var start = Stopwatch.GetTimestamp();
        async Task Worker()
        {
            int i;
            while (!ct.IsCancellationRequested && (i = Interlocked.Increment(ref next)) < count)
            {
                try
                {
                    if (await op(i, ct).ConfigureAwait(false))
                    {
                        Interlocked.Increment(ref ok);
                    }
                    else
                    {
                        Interlocked.Increment(ref failed);
                    }
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref failed);
                }
            }
        }
        await Task.WhenAll(Enumerable.Range(0, Math.Min(concurrency, count)).Select(_ => Task.Run(Worker, CancellationToken.None))).ConfigureAwait(false);
        return (ok, failed, Scenarios.Seconds(start, Stopwatch.GetTimestamp()), ct.IsCancellationRequested);
    }

    /// <summary>One clean connect: CONNECT (clean session / clean start, no session expiry), CONNACK, DISCONNECT.</summary>
    private static async Task<bool> CleanConnectAsync(BenchOptions o, IPEndPoint remote, string clientId, CancellationToken ct)
    {
        if (o.Generator == "mqttnet")
        {
            var (c, _) = await Mqtt.ConnectAsync(o, clientId, ct).ConfigureAwait(false);
            await Mqtt.DisconnectAndDisposeAsync(c).ConfigureAwait(false);
            return true;
        }
        var (client, _) = await RawMqttClient.ConnectAsync(remote, null, Level(o), clientId, clean: true, 0, KeepAlive(o), ct).ConfigureAwait(false);
        await client.DisconnectAsync().ConfigureAwait(false);
        return true;
    }

    private static RunResult ConnectResult(BenchOptions o, (long Ok, long Failed, double Seconds, bool TimedOut) w)
    {
        var r = new RunResult { Expected = o.Clients, Received = w.Ok, Failed = w.Failed, TimedOut = w.TimedOut };
        r.Extra["seconds"] = w.Seconds;
        if (w.Ok > 0)
        {
            r.Metrics["rate"] = w.Ok / w.Seconds;
        }
        return r;
    }

    /// <summary>Untimed: a few connects so JIT and first-use costs of both sides are not in the measurement.</summary>
    private static Task WarmConnectsAsync(BenchOptions o, IPEndPoint remote, string tag, CancellationToken ct) =>
        RunWorkersAsync(Math.Min(50, o.Clients), 1, (i, t) => CleanConnectAsync(o, remote, $"{tag}-w{i}", t), ct);

    private static async Task<RunResult> ConnectSeq(BenchOptions o, string tag, CancellationToken ct)
    {
        var remote = Remote(o);
        await WarmConnectsAsync(o, remote, tag, ct).ConfigureAwait(false);
        var w = await RunWorkersAsync(o.Clients, 1, (i, t) => CleanConnectAsync(o, remote, $"{tag}-c{i}", t), ct).ConfigureAwait(false);
        return ConnectResult(o, w);
    }

    private static async Task<RunResult> ConnectConc(BenchOptions o, string tag, CancellationToken ct)
    {
        var remote = Remote(o);
        await WarmConnectsAsync(o, remote, tag, ct).ConfigureAwait(false);
        var w = await RunWorkersAsync(o.Clients, o.Concurrency, (i, t) => CleanConnectAsync(o, remote, $"{tag}-c{i}", t), ct).ConfigureAwait(false);
        var r = ConnectResult(o, w);
        r.Extra["concurrency"] = o.Concurrency;
        return r;
    }

    private static string SessionId(string tag, int i) => $"{tag}-s{i}";

    private static string SessionTopic(string tag, int i) => $"bench/{tag}/s{i}";

    /// <summary>
    /// Creates <paramref name="count"/> persistent sessions, <see cref="BenchOptions.Concurrency"/> at a time: CONNECT with
    /// clean session 0 (3.1.1) or clean start 0 and session expiry 3600 s (5.0), SUBSCRIBE QoS 1 to its own topic, DISCONNECT.
    /// </summary>
    private static async Task<(bool[] Created, (long Ok, long Failed, double Seconds, bool TimedOut) W)> CreateSessionsAsync(
        BenchOptions o, string tag, int count, CancellationToken ct)
    {
        var remote = Remote(o);
        var level = Level(o);
        var created = new bool[count];
        var w = await RunWorkersAsync(count, o.Concurrency, async (i, t) =>
        {
            var (c, _) = await RawMqttClient.ConnectAsync(remote, null, level, SessionId(tag, i), clean: false, SessionExpiry, KeepAlive(o), t)
                .ConfigureAwait(false);
            try
            {
                var code = await c.SubscribeAsync(SessionTopic(tag, i), 1, 1, t).ConfigureAwait(false);
                if (code > 2)
                {
                    return false;
                }
            }
            finally
            {
                await c.DisconnectAsync().ConfigureAwait(false);
            }
            created[i] = true;
            return true;
        }, ct).ConfigureAwait(false);
        return (created, w);
    }

    /// <summary>Untimed: ends the sessions again (a clean connect discards a stored session), so runs leave nothing behind.</summary>
    private static async Task RemoveSessionsAsync(BenchOptions o, string tag, bool[] sessions, CancellationToken ct)
    {
        if (ct.IsCancellationRequested)
        {
            return;
        }
        var remote = Remote(o);
        var level = Level(o);
        var ids = Enumerable.Range(0, sessions.Length).Where(i => sessions[i]).ToArray();
        var start = Stopwatch.GetTimestamp();
        var w = await RunWorkersAsync(ids.Length, o.Concurrency, async (k, t) =>
        {
            var (c, _) = await RawMqttClient.ConnectAsync(remote, null, level, SessionId(tag, ids[k]), clean: true, 0, KeepAlive(o), t).ConfigureAwait(false);
            await c.DisconnectAsync().ConfigureAwait(false);
            return true;
        }, ct).ConfigureAwait(false);
        Console.Error.WriteLine($"[{o.Name}] removed {w.Ok} of {ids.Length} sessions in {Scenarios.Seconds(start, Stopwatch.GetTimestamp()):0.0} s"
            + (w.Failed > 0 ? $", {w.Failed} failed" : ""));
    }

    private static async Task<RunResult> SessionCreate(BenchOptions o, string tag, CancellationToken ct)
    {
        var remote = Remote(o);
        await WarmConnectsAsync(o, remote, tag, ct).ConfigureAwait(false);
        var (created, w) = await CreateSessionsAsync(o, tag, o.Clients, ct).ConfigureAwait(false);
        var r = ConnectResult(o, w);
        r.Extra["concurrency"] = o.Concurrency;
        await RemoveSessionsAsync(o, tag, created, ct).ConfigureAwait(false);
        return r;
    }

    /// <summary>
    /// Creates the sessions (untimed), publishes one QoS 1 message to each session's topic from one publisher (up to
    /// 100, or the broker's receive maximum, unacknowledged), then reconnects every session with clean session 0:
    /// session present must be 1 and its message must arrive (it is acknowledged with PUBACK). Resumes/s = completed
    /// reconnects / time; lost = sessions without session present or without their message. With <paramref name="idle"/>,
    /// the sessions stay disconnected that long before the resumes (untimed), so a broker that puts idle sessions to rest
    /// (ours after <c>mqtt.session-rest-after</c>, 10 s) must load each from storage.
    /// </summary>
    private static async Task<RunResult> SessionResume(BenchOptions o, string tag, CancellationToken ct) =>
        await SessionResume(o, tag, ct, TimeSpan.Zero).ConfigureAwait(false);

    private static async Task<RunResult> SessionResume(BenchOptions o, string tag, CancellationToken ct, TimeSpan idle)
    {
        var r = new RunResult { Expected = o.Clients };
        var remote = Remote(o);
        var level = Level(o);
        await WarmConnectsAsync(o, remote, tag, ct).ConfigureAwait(false);
        var (created, cw) = await CreateSessionsAsync(o, tag, o.Clients, ct).ConfigureAwait(false);
        r.Extra["created"] = cw.Ok;
        if (cw.Ok > 0)
        {
            r.Extra["create_rate"] = cw.Ok / cw.Seconds;
        }
        if (cw.TimedOut)
        {
            r.TimedOut = true;
            r.Error = $"timeout while creating sessions ({cw.Ok} of {o.Clients})";
            return r;
        }

        // One QoS 1 message to every created session's topic.
        var acked = new bool[o.Clients];
        var pubStart = Stopwatch.GetTimestamp();
        try
        {
            await PublishToEachAsync(o, remote, $"{tag}-pub", created, acked, i => SessionTopic(tag, i), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            r.Error = $"publisher: {e.GetType().Name}: {e.Message}";
        }
        var published = acked.Count(a => a);
        r.Extra["published"] = published;
        r.Extra["publish_rate"] = published / Scenarios.Seconds(pubStart, Stopwatch.GetTimestamp());
        r.Extra["publish_unacked"] = created.Count(c => c) - published;
        if (idle > TimeSpan.Zero)
        {
            await Task.Delay(idle, ct).ConfigureAwait(false);
            r.Extra["idle_s"] = idle.TotalSeconds;
        }

        // Resume every session; the broker sends the queued message after the CONNACK.
        var present = new bool[o.Clients];
        var delivered = new bool[o.Clients];
        var ids = Enumerable.Range(0, o.Clients).Where(i => created[i]).ToArray();
        var w = await RunWorkersAsync(ids.Length, o.Concurrency, async (k, t) =>
        {
            var i = ids[k];
            var (c, ack) = await RawMqttClient.ConnectAsync(remote, null, level, SessionId(tag, i), clean: false, SessionExpiry, KeepAlive(o), t)
                .ConfigureAwait(false);
            try
            {
                present[i] = ack.SessionPresent;
                if (ack.SessionPresent && acked[i])
                {
                    using var cts = CancellationTokenSource.CreateLinkedTokenSource(t);
                    cts.CancelAfter(RawMqttClient.OpTimeout);
                    try
                    {
                        var (topic, qos, id) = await c.ReadPublishAsync(cts.Token).ConfigureAwait(false);
                        delivered[i] = topic == SessionTopic(tag, i);
                        if (qos > 0)
                        {
                            await c.SendPubAckAsync(id, cts.Token).ConfigureAwait(false);
                        }
                    }
                    catch (OperationCanceledException) when (!t.IsCancellationRequested)
                    {
                        // No message within the deadline: counted as lost below.
                    }
                }
            }
            finally
            {
                await c.DisconnectAsync().ConfigureAwait(false);
            }
            return true;
        }, ct).ConfigureAwait(false);
        r.Received = w.Ok;
        r.Failed = w.Failed;
        r.TimedOut = w.TimedOut;
        r.Extra["seconds"] = w.Seconds;
        r.Extra["session_present"] = present.Count(p => p);
        r.Extra["delivered"] = delivered.Count(d => d);
        r.Extra["concurrency"] = o.Concurrency;
        if (w.Ok > 0)
        {
            r.Metrics["rate"] = w.Ok / w.Seconds;
        }
        // Sessions that were created and resumed (or should have been) without session present or without their message.
        r.Lost = ids.Count(i => !present[i] || (acked[i] && !delivered[i]));
        await RemoveSessionsAsync(o, tag, created, ct).ConfigureAwait(false);
        return r;
    }

    /// <summary>
    /// One raw publisher, QoS 1, one message per index with <paramref name="targets"/>[i] set, to <paramref name="topic"/>(i);
    /// up to 100 (or the receive maximum) unacknowledged. Returns when every PUBACK came or none came for the op timeout.
    /// </summary>
    private static async Task PublishToEachAsync(BenchOptions o, IPEndPoint remote, string clientId, bool[] targets, bool[] acked,
        Func<int, string> topic, CancellationToken ct)
    {
        var (c, ack) = await RawMqttClient.ConnectAsync(remote, null, Level(o), clientId, clean: true, 0, KeepAlive(o), ct).ConfigureAwait(false);
        try
        {
            var window = ack.ReceiveMaximum > 0 ? Math.Min(100, (int)ack.ReceiveMaximum) : 100;
            using var sem = new SemaphoreSlim(window);
            var byId = new int[65536];
            var indexes = Enumerable.Range(0, targets.Length).Where(i => targets[i]).ToArray();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var payload = new byte[Mqtt.HeaderSize];
            var reader = Task.Run(async () =>
            {
                var got = 0;
                while (got < indexes.Length)
                {
                    using var cts = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
                    cts.CancelAfter(RawMqttClient.OpTimeout);
                    var (header, body) = await c.ReadPacketAsync(cts.Token).ConfigureAwait(false);
                    if (header != 0x40 || body.Count < 2)
                    {
                        continue;
                    }
                    var id = (body[0] << 8) | body[1];
                    // MQTT 5: a reason code of 0x80 or more is a refusal (0x10, no matching subscribers, is not).
                    if (body.Count < 3 || body[2] < 0x80)
                    {
                        acked[byId[id]] = true;
                    }
                    got++;
                    sem.Release();
                }
            }, CancellationToken.None);
            try
            {
                for (var k = 0; k < indexes.Length; k++)
                {
                    await sem.WaitAsync(stop.Token).ConfigureAwait(false);
                    var id = (ushort)((k % 65535) + 1);
                    byId[id] = indexes[k];
                    await c.SendPublishAsync(topic(indexes[k]), 1, id, payload, stop.Token).ConfigureAwait(false);
                    if (reader.IsCompleted)
                    {
                        break;
                    }
                }
            }
            catch (OperationCanceledException) when (reader.IsCompleted)
            {
                // The reader ended (closed or silent for the op timeout); its exception tells.
            }
            try
            {
                await reader.ConfigureAwait(false);
            }
            finally
            {
                await stop.CancelAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            await c.DisconnectAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Broker RSS before and <see cref="BenchOptions.MemorySettle"/> s after opening <see cref="BenchOptions.Clients"/>
    /// idle raw connections (clean, keep alive <see cref="BenchOptions.KeepAlive"/> s), each bound to a source address
    /// 127.0.0.2, 127.0.0.3, ... (<see cref="BenchOptions.PerAddress"/> per address) so that one address' ephemeral ports
    /// do not run out. KiB per connection = RSS difference / connections.
    /// </summary>
    private static async Task<RunResult> Memory(BenchOptions o, string tag, CancellationToken ct)
    {
        var r = new RunResult { Expected = o.Clients };
        if (o.Pid <= 0)
        {
            r.Error = "no --pid given";
            return r;
        }
        var remote = Remote(o);
        var level = Level(o);
        var loopback = IPAddress.IsLoopback(remote.Address);
        var addresses = (o.Clients + o.PerAddress - 1) / o.PerAddress;
        if (loopback && addresses > 253)
        {
            r.Error = $"{addresses} source addresses needed, at most 253 (127.0.0.2-254): raise --per-address";
            return r;
        }
        await WarmConnectsAsync(o, remote, tag, ct).ConfigureAwait(false);
        await Task.Delay(TimeSpan.FromSeconds(3), ct).ConfigureAwait(false);
        var before = Scenarios.ReadRssKiB(o.Pid);
        var clients = new RawMqttClient?[o.Clients];
        try
        {
            var w = await RunWorkersAsync(o.Clients, o.Concurrency, async (i, t) =>
            {
                var local = loopback ? new IPAddress([127, 0, 0, (byte)(2 + (i / o.PerAddress))]) : null;
                var (c, _) = await RawMqttClient.ConnectAsync(remote, local, level, $"{tag}-i{i}", clean: true, 0, KeepAlive(o), t).ConfigureAwait(false);
                clients[i] = c;
                return true;
            }, ct).ConfigureAwait(false);
            r.Received = w.Ok;
            r.Failed = w.Failed;
            r.TimedOut = w.TimedOut;
            r.Extra["source_addresses"] = loopback ? addresses : 0;
            if (w.Ok > 0)
            {
                r.Extra["connect_rate"] = w.Ok / w.Seconds;
            }
            await Task.Delay(TimeSpan.FromSeconds(o.MemorySettle), CancellationToken.None).ConfigureAwait(false);
            var after = Scenarios.ReadRssKiB(o.Pid);
            r.Extra["rss_before_kib"] = before;
            r.Extra["rss_after_kib"] = after;
            // Connections the broker closed meanwhile (keep alive, limits) would make the figure wrong: count them.
            r.Extra["open_after"] = clients.Count(c => c is not null && c.IsOpen());
            if (w.Ok > 0)
            {
                r.Metrics["kib"] = (after - before) / (double)w.Ok;
            }
        }
        finally
        {
            var open = clients.Where(c => c is not null).Select(c => c!).ToArray();
            await RunWorkersAsync(open.Length, 200, async (k, _) =>
            {
                await open[k].DisconnectAsync().ConfigureAwait(false);
                return true;
            }, CancellationToken.None).ConfigureAwait(false);
        }
        return r;
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
#pragma warning disable SYSLIB1054 // a plain int signature needs no marshalling code
    private static extern int Kill(int pid, int signal);
#pragma warning restore SYSLIB1054

    private const int SigTerm = 15;

    /// <summary>Whether the process is gone or a zombie (exited, not yet reaped by its parent).</summary>
    private static bool Exited(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return true;
        }
    }

    [GeneratedRegex(@"node \S+ ready")]
    private static partial Regex ReadyLine();

    /// <summary>
    /// Our node only. Creates <see cref="BenchOptions.Sessions"/> persistent sessions (one QoS 1 subscription each), stops
    /// the node (<see cref="BenchOptions.Pid"/>) with SIGTERM and waits for it to exit, then runs
    /// <see cref="BenchOptions.RestartCommand"/>, which must start the node in the background on the same data folder and
    /// ports, logging to <see cref="BenchOptions.ReadyLog"/>. Measured from just before that command: the node's
    /// "node ... ready" log line, and the first accepted CONNACK of a clean connect tried every 20 ms. Then
    /// <see cref="BenchOptions.RestartVerify"/> of the sessions (spread over all) reconnect with clean session 0:
    /// lost = those without session present.
    /// </summary>
    private static async Task<RunResult> Restart(BenchOptions o, string tag, CancellationToken ct)
    {
        var r = new RunResult();
        if (o.Pid <= 0 || o.RestartCommand is null || o.ReadyLog is null)
        {
            r.Error = "restart needs --pid, --restart-cmd and --ready-log";
            return r;
        }
        var remote = Remote(o);
        var level = Level(o);
        var (created, cw) = await CreateSessionsAsync(o, tag, o.Sessions, ct).ConfigureAwait(false);
        r.Extra["sessions"] = cw.Ok;
        r.Extra["create_failed"] = cw.Failed;
        if (cw.Ok > 0)
        {
            r.Extra["create_rate"] = cw.Ok / cw.Seconds;
        }
        if (cw.TimedOut)
        {
            r.TimedOut = true;
            r.Error = $"timeout while creating sessions ({cw.Ok} of {o.Sessions})";
            return r;
        }
        r.Extra["rss_before_stop_kib"] = Scenarios.ReadRssKiB(o.Pid);

        var tStop = Stopwatch.GetTimestamp();
        if (Kill(o.Pid, SigTerm) != 0)
        {
            r.Error = $"kill -TERM {o.Pid} failed (errno {Marshal.GetLastPInvokeError()})";
            return r;
        }
        while (!Exited(o.Pid))
        {
            if (Scenarios.Seconds(tStop, Stopwatch.GetTimestamp()) > 60)
            {
                r.Error = $"node (pid {o.Pid}) did not exit within 60 s of SIGTERM";
                return r;
            }
            await Task.Delay(20, ct).ConfigureAwait(false);
        }
        r.Extra["stop_s"] = Scenarios.Seconds(tStop, Stopwatch.GetTimestamp());

        var t0 = Stopwatch.GetTimestamp();
        using (var starter = Process.Start(new ProcessStartInfo("bash", ["-c", o.RestartCommand]) { UseShellExecute = false })
            ?? throw new InvalidOperationException("cannot run the restart command"))
        {
            using var probeStop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var connack = ProbeConnAckAsync(remote, level, $"{tag}-probe", probeStop.Token);
            var ready = WaitReadyLineAsync(o.ReadyLog, ct);
            await starter.WaitForExitAsync(ct).ConfigureAwait(false);
            if (starter.ExitCode != 0)
            {
                r.Error = $"restart command exited with {starter.ExitCode}";
                await probeStop.CancelAsync().ConfigureAwait(false);
                return r;
            }
            try
            {
                var readyTicks = await ready.ConfigureAwait(false);
                r.Metrics["ready"] = Scenarios.Seconds(t0, readyTicks);
                var connackTicks = await connack.ConfigureAwait(false);
                r.Metrics["connack"] = Scenarios.Seconds(t0, connackTicks);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                r.TimedOut = true;
                r.Error = "node not ready / no CONNACK before the timeout";
                return r;
            }
        }

        // Did the sessions survive? A sample spread over all of them.
        var ids = Enumerable.Range(0, created.Length).Where(i => created[i]).ToArray();
        var verify = Math.Min(o.RestartVerify, ids.Length);
        if (verify > 0)
        {
            var sample = Enumerable.Range(0, verify).Select(k => ids[(int)((long)k * ids.Length / verify)]).ToArray();
            var present = 0;
            var w = await RunWorkersAsync(sample.Length, o.Concurrency, async (k, t) =>
            {
                var (c, ack) = await RawMqttClient.ConnectAsync(remote, null, level, SessionId(tag, sample[k]), clean: false, SessionExpiry, KeepAlive(o), t)
                    .ConfigureAwait(false);
                await c.DisconnectAsync().ConfigureAwait(false);
                if (ack.SessionPresent)
                {
                    Interlocked.Increment(ref present);
                }
                return true;
            }, ct).ConfigureAwait(false);
            r.Expected = sample.Length;
            r.Received = present;
            r.Lost = sample.Length - present;
            r.Failed = w.Failed;
            r.TimedOut = w.TimedOut;
            r.Extra["verified"] = sample.Length;
            r.Extra["verify_rate"] = w.Ok / w.Seconds;
        }
        return r;
    }

    /// <summary>Clean connects every 20 ms (each bounded to 2 s) until one gets an accepting CONNACK; returns its time.</summary>
    private static async Task<long> ProbeConnAckAsync(IPEndPoint remote, byte level, string clientId, CancellationToken ct)
    {
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(TimeSpan.FromSeconds(2));
            try
            {
                var (c, _) = await RawMqttClient.ConnectAsync(remote, null, level, clientId, clean: true, 0, 60, cts.Token).ConfigureAwait(false);
                var t = Stopwatch.GetTimestamp();
                await c.DisconnectAsync().ConfigureAwait(false);
                return t;
            }
            catch (Exception e) when (e is SocketException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                await Task.Delay(20, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Polls the log every 20 ms for the "node ... ready" line; returns when it was first seen.</summary>
    private static async Task<long> WaitReadyLineAsync(string log, CancellationToken ct)
    {
        long offset = 0;
        var pending = "";
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (File.Exists(log))
            {
                using var f = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                if (f.Length > offset)
                {
                    f.Seek(offset, SeekOrigin.Begin);
                    using var reader = new StreamReader(f);
                    var text = pending + await reader.ReadToEndAsync(ct).ConfigureAwait(false);
                    offset = f.Length;
                    if (ReadyLine().IsMatch(text))
                    {
                        return Stopwatch.GetTimestamp();
                    }
                    var nl = text.LastIndexOf('\n');
                    pending = nl >= 0 ? text[(nl + 1)..] : text;
                }
            }
            await Task.Delay(20, ct).ConfigureAwait(false);
        }
    }
}
