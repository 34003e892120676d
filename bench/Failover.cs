using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Broker.Bench;

/// <summary>
/// Fail-over of a running cluster under QoS 1 load. Persistent MQTT 5 subscribers (clean start false, session expiry
/// 600 s) are spread over <see cref="BenchOptions.SubPorts"/>, a QoS 1 publisher on <see cref="BenchOptions.PubPorts"/>
/// publishes at a fixed rate; then the node in <see cref="BenchOptions.KillPidFile"/> is SIGKILLed. Every subscriber
/// that loses its connection (its node died, or the broker closed it because its session's node died) reconnects to
/// <see cref="BenchOptions.ReconnectPort"/> with clean start false. Measured from the kill: every session answering
/// connected on a surviving node's admin API (recovery), every reconnected subscriber receiving again, and at the end
/// loss of acknowledged messages and duplicates; then the optional restart command brings the node back.
/// </summary>
internal static class Failover
{
    private const uint SessionExpiry = 600;
    private const MqttQualityOfServiceLevel Qos = MqttQualityOfServiceLevel.AtLeastOnce;
    private const int AckGraceSeconds = 20;

    public static async Task<RunResult> RunAsync(BenchOptions o, string tag, CancellationToken ct)
    {
        var r = new RunResult();
        if (o.KillPidFile is null)
        {
            r.Error = "no --kill-pid-file given";
            return r;
        }
        if (o.SubPorts.Count == 0)
        {
            r.Error = "no --sub-ports given";
            return r;
        }
        var killPort = o.KillPort > 0 ? o.KillPort : o.SubPorts[^1];
        var reconnectPort = o.ReconnectPort > 0 ? o.ReconnectPort : o.SubPorts[0];
        var topic = $"bench/{tag}/0";
        // Room for the whole run at the publish rate; the publisher is stopped long before.
        var capacity = o.FailoverRate * (o.Timeout + 10);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var sessionsUrl = $"http://{o.Host}:{o.AdminPort}/api/v1/sessions/";
        var subs = new Sub[o.FailoverSubscribers];
        FailoverPublisher? pub = null;
        Task? pubTask = null;
        try
        {
            using (var sem = new SemaphoreSlim(10))
            {
                await Task.WhenAll(Enumerable.Range(0, subs.Length).Select(async i =>
                {
                    await sem.WaitAsync(ct).ConfigureAwait(false);
                    try
                    {
                        subs[i] = new Sub(o, $"{tag}-s{i}", o.SubPort(i), reconnectPort, topic, capacity);
                        await subs[i].StartAsync(ct).ConfigureAwait(false);
                    }
                    finally
                    {
                        sem.Release();
                    }
                })).ConfigureAwait(false);
            }

            // Where the sessions live before the kill: those on the killed node have to move.
            var before = await SweepAsync(http, sessionsUrl, subs, ct).ConfigureAwait(false);
            var notReady = before.Count(a => a.Status != 200 || !a.Connected);
            if (notReady > 0)
            {
                r.Error = $"{notReady} of {subs.Length} sessions not connected before the kill";
                return r;
            }
            // Only clients connected to the killed node lose their connection: a client on a survivor whose session was on
            // the killed node stays connected while the session restarts on a survivor (docs/cluster.md, Node failure).
            var onKilledNode = new bool[subs.Length];
            for (var i = 0; i < subs.Length; i++)
            {
                onKilledNode[i] = subs[i].Port == killPort;
            }
            r.Extra["subscribers"] = subs.Length;
            r.Extra["connections_on_killed_node"] = subs.Count(s => s.Port == killPort);
            r.Extra["sessions_on_killed_node"] = before.Count(a => a.Node == o.KillNode);

            pub = new FailoverPublisher(o, $"{tag}-pub", o.PubPort(0), topic, capacity, o.Window);
            r.Extra["window"] = await pub.ConnectAsync(ct).ConfigureAwait(false);
            var start = Stopwatch.GetTimestamp();
            pubTask = pub.RunAsync(start, o.FailoverRate, ct);
            await Task.Delay(TimeSpan.FromSeconds(o.FailoverSettle), ct).ConfigureAwait(false);
            if (pubTask.IsCompleted)
            {
                await pubTask.ConfigureAwait(false);
            }

            // SIGKILL: a crash, the node gets no chance to hand anything over.
            var pid = ReadNodePid(o.KillPidFile);
            var seqKill = pub.Sent;
            var tKill = Stopwatch.GetTimestamp();
            pub.KillTicks = tKill;
            r.Extra["publish_rate_before_kill"] = seqKill / Scenarios.Seconds(start, tKill);
            foreach (var s in subs)
            {
                s.KillSeq = seqKill;
                s.KillTicks = tKill;
            }
            using (var victim = Process.GetProcessById(pid))
            {
                victim.Kill();
            }
            Console.Error.WriteLine($"[failover] killed {o.KillNode} (pid {pid}) after {seqKill} messages");

            // Recovery: every subscriber that lost its connection is back, none is away, and a survivor's admin API
            // answers connected for every session (and none on the killed node).
            double? recovery = null;
            var sweeps = 0;
            var deadline = tKill + (o.RecoveryTimeout * Stopwatch.Frequency);
            while (Stopwatch.GetTimestamp() < deadline)
            {
                var settled = subs.All(s => s.Connected) && subs.Where((_, i) => onKilledNode[i]).All(s => s.Reconnects > 0);
                if (settled)
                {
                    sweeps++;
                    var answers = await SweepAsync(http, sessionsUrl, subs, ct).ConfigureAwait(false);
                    if (answers.All(a => a.Status == 200 && a.Connected && a.Node != o.KillNode) && subs.All(s => s.Connected))
                    {
                        recovery = Scenarios.Seconds(tKill, Stopwatch.GetTimestamp());
                        break;
                    }
                }
                await Task.Delay(100, ct).ConfigureAwait(false);
            }
            r.Extra["sweeps"] = sweeps;
            if (recovery is double rec)
            {
                r.Metrics["recovery"] = rec;
            }
            else
            {
                var away = subs.Count(s => !s.Connected);
                var notBack = subs.Where((s, i) => onKilledNode[i] && s.Reconnects == 0).Count();
                r.Error = $"not recovered {o.RecoveryTimeout} s after the kill: {away} subscribers disconnected, "
                    + $"{notBack} on the killed node never disconnected or reconnected";
            }
            var reconnected = subs.Where(s => s.Reconnects > 0).ToArray();
            r.Extra["reconnected"] = reconnected.Length;
            r.Extra["unexpected_disconnects"] = subs.Where((s, i) => !onKilledNode[i] && s.Disconnects > 0).Count();
            var brokerClosed = subs.Where(s => s.Port != killPort && s.FirstDisconnectTicks > 0).Select(s => s.FirstDisconnectTicks).ToArray();
            if (brokerClosed.Length > 0)
            {
                // A client on a survivor disconnected by the broker: it should not happen (counted in unexpected_disconnects).
                r.Extra["detect_s"] = Scenarios.Seconds(tKill, brokerClosed.Min());
            }
            if (reconnected.Length > 0 && reconnected.All(s => s.ReconnectedTicks > 0))
            {
                r.Extra["reconnect_s"] = Scenarios.Seconds(tKill, reconnected.Max(s => s.ReconnectedTicks));
            }

            await Task.Delay(TimeSpan.FromSeconds(o.FailoverSettle), ct).ConfigureAwait(false);
            // Time to the first message again, taken now: by then every reconnected subscriber should have one. "New" is
            // a message published after the kill; any message includes the ones a session sends again on reconnect.
            var firstNew = reconnected.Where(s => s.FirstNewTicks > 0).Select(s => Scenarios.Seconds(tKill, s.FirstNewTicks)).Order().ToArray();
            var firstAny = reconnected.Where(s => s.FirstMessageTicks > 0).Select(s => Scenarios.Seconds(tKill, s.FirstMessageTicks)).Order().ToArray();
            if (firstNew.Length > 0)
            {
                r.Extra["first_new_min"] = firstNew[0];
                r.Extra["first_new_median"] = Scenarios.Percentile(firstNew, 0.5);
                if (firstNew.Length == reconnected.Length)
                {
                    r.Metrics["first_msg"] = firstNew[^1];
                }
            }
            if (firstAny.Length > 0)
            {
                r.Extra["first_any_median"] = Scenarios.Percentile(firstAny, 0.5);
            }
            r.Extra["first_new_missing"] = reconnected.Length - firstNew.Length;

            var seqRestart = long.MaxValue;
            if (o.RestartCommand is not null)
            {
                seqRestart = pub.Sent;
                var tRestart = Stopwatch.GetTimestamp();
                foreach (var s in subs)
                {
                    s.RestartTicks = tRestart;
                }
                var error = await RestartAsync(o, http, ct).ConfigureAwait(false);
                if (error is null)
                {
                    r.Metrics["restart"] = Scenarios.Seconds(tRestart, Stopwatch.GetTimestamp());
                }
                else
                {
                    r.Error = (r.Error is null ? "" : r.Error + "; ") + error;
                }
                // Shards move back to the node that returned (a few every rebalance interval); their sessions hand over
                // their connections. Publishing goes on through it, and the next run starts on a settled cluster.
                await Task.Delay(TimeSpan.FromSeconds(o.RejoinSeconds), ct).ConfigureAwait(false);
                r.Extra["disconnects_after_restart"] = subs.Sum(s => s.DisconnectsAfterRestart);
            }

            var tStop = Stopwatch.GetTimestamp();
            pub.Stop();
            // A PUBACK that has not come within this bound is not coming: the broker lost track of the message.
            if (await Task.WhenAny(pubTask, Task.Delay(TimeSpan.FromSeconds(AckGraceSeconds), ct)).ConfigureAwait(false) == pubTask)
            {
                await pubTask.ConfigureAwait(false);
            }
            var unacked = pub.Unacknowledged();
            r.Extra["never_acked"] = unacked.Count;
            if (unacked.Count > 0)
            {
                Console.Error.WriteLine($"[failover] {unacked.Count} publishes without PUBACK {AckGraceSeconds} s after the last publish, "
                    + $"sequence numbers {string.Join(",", unacked.Take(20))}{(unacked.Count > 20 ? ",..." : "")} (kill at {seqKill}, restart at {seqRestart})");
            }
            r.Extra["publish_rate"] = pub.Sent / Scenarios.Seconds(start, tStop);
            r.Extra["max_puback_ms"] = pub.MaxAckMs;
            r.Extra["publisher_disconnects"] = pub.Disconnects;
            r.Extra["republished"] = pub.Republished;
            if (pub.ReconnectedTicks > 0)
            {
                r.Extra["publisher_reconnect_s"] = Scenarios.Seconds(tKill, pub.ReconnectedTicks);
            }
            await WaitDrainedAsync(subs, pub.AckedCount, o.Idle, ct).ConfigureAwait(false);

            long lostBefore = 0, lostFailover = 0, lostRejoin = 0;
            foreach (var s in subs)
            {
                for (var seq = 0; seq < pub.Sent; seq++)
                {
                    if (pub.Acked(seq) && !s.Receiver.Seen(0, seq))
                    {
                        if (seq < seqKill)
                        {
                            lostBefore++;
                        }
                        else if (seq < seqRestart)
                        {
                            lostFailover++;
                        }
                        else
                        {
                            lostRejoin++;
                        }
                    }
                }
            }
            r.Extra["published"] = pub.Sent;
            r.Extra["acked"] = pub.AckedCount;
            r.Extra["lost_before_kill"] = lostBefore;
            r.Extra["lost_failover"] = lostFailover;
            r.Extra["lost_after_restart"] = lostRejoin;
            r.Extra["sessions_not_present"] = subs.Sum(s => s.SessionsNotPresent);
            r.Extra["reconnect_attempts"] = subs.Sum(s => s.Attempts);
            r.Expected = pub.AckedCount * subs.Length;
            r.Received = subs.Sum(s => s.Receiver.Unique);
            r.Duplicates = subs.Sum(s => s.Receiver.Duplicates);
            r.Extra["duplicates_reconnected"] = subs.Where(s => s.Reconnects > 0).Sum(s => s.Receiver.Duplicates);
            r.Extra["duplicates_before_kill"] = subs.Sum(s => s.DuplicatesArrived(0));
            r.Extra["duplicates_failover"] = subs.Sum(s => s.DuplicatesArrived(1));
            r.Extra["duplicates_after_restart"] = subs.Sum(s => s.DuplicatesArrived(2));
            r.Lost = lostBefore + lostFailover + lostRejoin;
            r.Failed = pub.Failed;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            r.TimedOut = true;
        }
        finally
        {
            if (pub is not null)
            {
                // Closing fails the publishes still waiting for a PUBACK, so the publish loop ends.
                pub.Stop();
                await pub.CloseAsync().ConfigureAwait(false);
            }
            if (pubTask is not null)
            {
                await pubTask.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).ConfigureAwait(false);
            }
            // Session expiry 0 on DISCONNECT ends the persistent sessions, so runs leave nothing behind.
            await Task.WhenAll(subs.Where(s => s is not null).Select(s => s.StopAsync())).ConfigureAwait(false);
        }
        return r;
    }

    /// <summary>Waits until every subscriber has as many distinct messages as were acknowledged, or none came for a while.</summary>
    private static async Task WaitDrainedAsync(Sub[] subs, long acked, int idleSeconds, CancellationToken ct)
    {
        long lastTotal = -1;
        var lastChange = Stopwatch.GetTimestamp();
        while (!subs.All(s => s.Receiver.Unique >= acked))
        {
            var total = subs.Sum(s => s.Receiver.Unique);
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

    private static int ReadNodePid(string pidFile)
    {
        var text = File.ReadAllText(pidFile).Trim();
        var pid = int.Parse(text, NumberStyles.Integer, CultureInfo.InvariantCulture);
        // Never kill a process that is not a broker node (a pid may have been reused).
        var cmdline = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        if (!cmdline.Contains("Broker.Edge.dll", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"pid {pid} of {pidFile} is not a broker node: {cmdline}");
        }
        return pid;
    }

    /// <summary>Runs the restart command (which returns once the node is ready) and then waits for its /ready.</summary>
    private static async Task<string?> RestartAsync(BenchOptions o, HttpClient http, CancellationToken ct)
    {
        // The command's output goes to ours; the node it starts writes to its own log.
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(o.RestartCommand!);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start the restart command");
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
        if (p.ExitCode != 0)
        {
            return $"restart command exited with {p.ExitCode}";
        }
        if (o.RestartAdminPort <= 0)
        {
            return null;
        }
        var deadline = Stopwatch.GetTimestamp() + (60 * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            try
            {
                using var resp = await http.GetAsync(new Uri($"http://{o.Host}:{o.RestartAdminPort}/ready"), ct).ConfigureAwait(false);
                if (resp.StatusCode == HttpStatusCode.OK)
                {
                    return null;
                }
            }
            catch (HttpRequestException)
            {
            }
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
        return "restarted node not ready on its admin port within 60 s";
    }

    private sealed record Answer(int Status, bool Connected, string? Node);

    /// <summary>GET /api/v1/sessions/{id} for every subscriber, 10 at a time.</summary>
    private static async Task<Answer[]> SweepAsync(HttpClient http, string url, Sub[] subs, CancellationToken ct)
    {
        using var sem = new SemaphoreSlim(10);
        return await Task.WhenAll(subs.Select(async s =>
        {
            await sem.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                using var resp = await http.GetAsync(new Uri(url + Uri.EscapeDataString(s.Id)), ct).ConfigureAwait(false);
                if (resp.StatusCode != HttpStatusCode.OK)
                {
                    return new Answer((int)resp.StatusCode, false, null);
                }
                using var doc = JsonDocument.Parse(await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false));
                var root = doc.RootElement;
                return new Answer(200, root.GetProperty("connected").GetBoolean(), root.GetProperty("node").GetString());
            }
            catch (Exception e) when (e is HttpRequestException or JsonException or KeyNotFoundException
                                          || (e is TaskCanceledException && !ct.IsCancellationRequested))
            {
                return new Answer(0, false, null);
            }
            finally
            {
                sem.Release();
            }
        })).ConfigureAwait(false);
    }

    /// <summary>One persistent subscriber that reconnects by itself whenever it loses its connection.</summary>
    private sealed class Sub(BenchOptions o, string id, int port, int reconnectPort, string topic, int capacity)
    {
        private readonly IMqttClient _client = Mqtt.Create();
        private readonly Lock _gate = new();
        private volatile bool _connected;
        private volatile bool _stopping;
        private volatile bool _awaitFirst;
        private long _firstMessageTicks;
        private long _firstNewTicks;
        private readonly int[] _copies = new int[capacity];
        private readonly long[] _duplicatesBy = new long[3];
        private int _disconnects;
        private int _reconnects;
        private int _attempts;
        private int _notPresent;
        private int _afterRestart;

        public string Id => id;
        public int Port => port;
        public Receiver Receiver { get; } = new(1, capacity);
        public bool Connected => _connected;
        public long KillTicks { get; set; }
        /// <summary>Sequence number of the first message published after the kill.</summary>
        public long KillSeq { get; set; } = long.MaxValue;
        /// <summary>First message published after the kill, received after reconnecting.</summary>
        public long FirstNewTicks => Interlocked.Read(ref _firstNewTicks);
        public long RestartTicks { get; set; }
        public long FirstDisconnectTicks { get; private set; }
        public long ReconnectedTicks { get; private set; }
        /// <summary>First message after the first disconnect (so after reconnecting).</summary>
        public long FirstMessageTicks => Interlocked.Read(ref _firstMessageTicks);
        public int Disconnects => Volatile.Read(ref _disconnects);
        /// <summary>Reconnects since the kill.</summary>
        public int Reconnects => Volatile.Read(ref _reconnects);
        public int Attempts => Volatile.Read(ref _attempts);
        public int SessionsNotPresent => Volatile.Read(ref _notPresent);
        public int DisconnectsAfterRestart => Volatile.Read(ref _afterRestart);
        /// <summary>Duplicates that arrived before the kill (0), from the kill on (1), from the restart on (2).</summary>
        public long DuplicatesArrived(int phase) => Interlocked.Read(ref _duplicatesBy[phase]);

        private MqttClientOptions Options(int p, int timeoutSeconds) => new MqttClientOptionsBuilder()
            .WithTcpServer(o.Host, p)
            .WithClientId(id)
            .WithProtocolVersion(MqttProtocolVersion.V500)
            .WithCleanStart(false)
            .WithSessionExpiryInterval(SessionExpiry)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(60))
            .WithTimeout(TimeSpan.FromSeconds(timeoutSeconds))
            .Build();

        public async Task StartAsync(CancellationToken ct)
        {
            Receiver.Attach(_client);
            _client.ApplicationMessageReceivedAsync += e =>
            {
                if (_awaitFirst)
                {
                    _awaitFirst = false;
                    Interlocked.CompareExchange(ref _firstMessageTicks, Stopwatch.GetTimestamp(), 0);
                }
                if (!Mqtt.TryReadHeader(e.ApplicationMessage.Payload, out _, out var seq, out _) || (uint)seq >= (uint)_copies.Length)
                {
                    return Task.CompletedTask;
                }
                if (Volatile.Read(ref _reconnects) > 0 && Interlocked.Read(ref _firstNewTicks) == 0 && seq >= KillSeq)
                {
                    Interlocked.CompareExchange(ref _firstNewTicks, Stopwatch.GetTimestamp(), 0);
                }
                if (Interlocked.Increment(ref _copies[seq]) > 1)
                {
                    // A duplicate, by when it arrived: before the kill, from the kill on, or from the restart on.
                    Interlocked.Increment(ref _duplicatesBy[RestartTicks > 0 ? 2 : KillTicks > 0 ? 1 : 0]);
                }
                return Task.CompletedTask;
            };
            var result = await _client.ConnectAsync(Options(port, 10), ct).ConfigureAwait(false);
            if (result.ResultCode != MqttClientConnectResultCode.Success)
            {
                throw new InvalidOperationException($"{id}: CONNACK {result.ResultCode}");
            }
            await Mqtt.SubscribeAsync(_client, topic, Qos, ct).ConfigureAwait(false);
            _connected = true;
            _client.DisconnectedAsync += e =>
            {
                // Failed connect attempts report here too; only a lost connection starts a reconnect.
                if (!e.ClientWasConnected || _stopping)
                {
                    return Task.CompletedTask;
                }
                var now = Stopwatch.GetTimestamp();
                lock (_gate)
                {
                    _connected = false;
                    _disconnects++;
                    if (KillTicks > 0 && FirstDisconnectTicks == 0)
                    {
                        FirstDisconnectTicks = now;
                    }
                    if (RestartTicks > 0)
                    {
                        _afterRestart++;
                    }
                }
                if (Interlocked.Read(ref _firstMessageTicks) == 0)
                {
                    _awaitFirst = true;
                }
                var reason = e.Exception is null ? $"{e.Reason} {e.ReasonString}" : $"{e.Reason} ({e.Exception.GetType().Name})";
                Console.Error.WriteLine($"[failover] {id} on port {port} disconnected: {reason}");
                _ = Task.Run(ReconnectAsync, CancellationToken.None);
                return Task.CompletedTask;
            };
        }

        private async Task ReconnectAsync()
        {
            while (!_stopping)
            {
                Interlocked.Increment(ref _attempts);
                try
                {
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(o.ReconnectTimeout));
                    var result = await _client.ConnectAsync(Options(reconnectPort, o.ReconnectTimeout), cts.Token).ConfigureAwait(false);
                    if (result.ResultCode == MqttClientConnectResultCode.Success)
                    {
                        if (!result.IsSessionPresent)
                        {
                            // The broker lost the session: subscribe again so the run goes on; the gap counts as lost.
                            Interlocked.Increment(ref _notPresent);
                            await Mqtt.SubscribeAsync(_client, topic, Qos, cts.Token).ConfigureAwait(false);
                        }
                        lock (_gate)
                        {
                            if (KillTicks > 0 && ReconnectedTicks == 0)
                            {
                                ReconnectedTicks = Stopwatch.GetTimestamp();
                            }
                            if (KillTicks > 0)
                            {
                                _reconnects++;
                            }
                            _connected = true;
                        }
                        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"[failover] {id} reconnected to port {reconnectPort} {Since()} s after the kill (session present: {result.IsSessionPresent})"));
                        return;
                    }
                    Console.Error.WriteLine($"[failover] {id}: CONNACK {result.ResultCode}");
                }
                catch (Exception e) when (!_stopping)
                {
                    // Refused or timed out while the cluster has not yet moved the session: try again.
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"[failover] {id}: reconnect attempt failed {Since()} s after the kill: {e.GetType().Name}: {e.Message}"));
                }
                await Task.Delay(100).ConfigureAwait(false);
            }
        }

        private string Since() => KillTicks > 0 ? Scenarios.Seconds(KillTicks, Stopwatch.GetTimestamp()).ToString("0.00", CultureInfo.InvariantCulture) : "-";

        public async Task StopAsync()
        {
            _stopping = true;
            try
            {
                if (_client.IsConnected)
                {
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    await _client.DisconnectAsync(new MqttClientDisconnectOptions { SessionExpiryInterval = 0 }, cts.Token).ConfigureAwait(false);
                }
            }
            catch (Exception)
            {
                // Best effort: the connection may already be gone.
            }
            finally
            {
                _client.Dispose();
            }
        }
    }
}

/// <summary>
/// The fail-over scenario's QoS 1 publisher: paced, a window of outstanding publishes, and it survives losing its
/// connection (its session may live on the node that dies): it reconnects to the same port and publishes every message
/// that was not acknowledged again, as an application using QoS 1 would. A message counts as acknowledged once a PUBACK
/// with a success code arrived for it.
/// </summary>
internal sealed class FailoverPublisher(BenchOptions o, string clientId, int port, string topic, int count, int window)
{
    private readonly IMqttClient _client = Mqtt.Create();
    private readonly bool[] _acked = new bool[count];
    private readonly Lock _gate = new();
    private readonly HashSet<int> _failedSeqs = [];
    private TaskCompletionSource _online = NewOnline(completed: false);
    private long _sent;
    private long _failed;
    private long _republished;
    private long _maxAckTicks;
    private int _disconnects;
    private volatile bool _stop;
    private volatile bool _closing;

    public long Sent => Interlocked.Read(ref _sent);
    public long Failed => Interlocked.Read(ref _failed);
    /// <summary>Publishes sent again after the connection was lost before their PUBACK.</summary>
    public long Republished => Interlocked.Read(ref _republished);
    public int Disconnects => Volatile.Read(ref _disconnects);
    public long EndTicks { get; private set; }
    public long KillTicks { get; set; }
    /// <summary>First reconnect after the kill.</summary>
    public long ReconnectedTicks { get; private set; }
    public bool Acked(long seq) => Volatile.Read(ref _acked[seq]);
    public long AckedCount => _acked.Count(a => a);
    /// <summary>Sequence numbers published and neither acknowledged nor failed (still waiting for their PUBACK).</summary>
    public List<long> Unacknowledged()
    {
        lock (_gate)
        {
            return [.. Enumerable.Range(0, (int)Sent).Where(i => !Volatile.Read(ref _acked[i]) && !_failedSeqs.Contains(i)).Select(i => (long)i)];
        }
    }

    /// <summary>Longest time from the first PublishAsync of a message to its PUBACK, reconnects included, milliseconds.</summary>
    public double MaxAckMs => Interlocked.Read(ref _maxAckTicks) * 1000.0 / Stopwatch.Frequency;

    private static TaskCompletionSource NewOnline(bool completed)
    {
        var t = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (completed)
        {
            t.SetResult();
        }
        return t;
    }

    private MqttClientOptions Options(int timeoutSeconds) => new MqttClientOptionsBuilder()
        .WithTcpServer(o.Host, port)
        .WithClientId(clientId)
        .WithProtocolVersion(MqttProtocolVersion.V500)
        .WithCleanStart(true)
        .WithSessionExpiryInterval(0)
        .WithKeepAlivePeriod(TimeSpan.FromSeconds(60))
        .WithTimeout(TimeSpan.FromSeconds(timeoutSeconds))
        .Build();

    /// <summary>Connects; returns the window to use (capped by the receive maximum the broker announced).</summary>
    public async Task<int> ConnectAsync(CancellationToken ct)
    {
        var result = await _client.ConnectAsync(Options(10), ct).ConfigureAwait(false);
        if (result.ResultCode != MqttClientConnectResultCode.Success)
        {
            throw new InvalidOperationException($"{clientId}: CONNACK {result.ResultCode}");
        }
        lock (_gate)
        {
            _online = NewOnline(completed: true);
        }
        _client.DisconnectedAsync += e =>
        {
            if (!e.ClientWasConnected || _closing)
            {
                return Task.CompletedTask;
            }
            lock (_gate)
            {
                _disconnects++;
                if (_online.Task.IsCompleted)
                {
                    _online = NewOnline(completed: false);
                }
            }
            var reason = e.Exception is null ? $"{e.Reason} {e.ReasonString}" : $"{e.Reason} ({e.Exception.GetType().Name})";
            Console.Error.WriteLine($"[failover] publisher {clientId} on port {port} disconnected: {reason}");
            _ = Task.Run(ReconnectAsync, CancellationToken.None);
            return Task.CompletedTask;
        };
        if (result.ReceiveMaximum is ushort rm and > 0)
        {
            window = Math.Min(window, rm);
        }
        return window;
    }

    private async Task ReconnectAsync()
    {
        while (!_closing)
        {
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(o.ReconnectTimeout));
                var result = await _client.ConnectAsync(Options(o.ReconnectTimeout), cts.Token).ConfigureAwait(false);
                if (result.ResultCode == MqttClientConnectResultCode.Success)
                {
                    lock (_gate)
                    {
                        if (KillTicks > 0 && ReconnectedTicks == 0)
                        {
                            ReconnectedTicks = Stopwatch.GetTimestamp();
                        }
                        _online.TrySetResult();
                    }
                    return;
                }
            }
            catch (Exception) when (!_closing)
            {
                // Not accepted yet: try again.
            }
            await Task.Delay(100).ConfigureAwait(false);
        }
    }

    private Task Online
    {
        get
        {
            lock (_gate)
            {
                return _online.Task;
            }
        }
    }

    /// <summary>Stops publishing new messages; <see cref="RunAsync"/> returns once the outstanding ones are done.</summary>
    public void Stop() => _stop = true;

    /// <summary>Publishes at <paramref name="rate"/> per second until <see cref="Stop"/> or <c>count</c> messages.</summary>
    public async Task RunAsync(long startTicks, int rate, CancellationToken ct)
    {
        using var sem = new SemaphoreSlim(window);
        var tasks = new List<Task>();
        try
        {
            for (var i = 0; i < count && !_stop; i++)
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
                await sem.WaitAsync(ct).ConfigureAwait(false);
                if (_stop)
                {
                    sem.Release();
                    break;
                }
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
        var t0 = Stopwatch.GetTimestamp();
        try
        {
            var msg = new MqttApplicationMessageBuilder()
                .WithTopic(topic)
                .WithPayload(Mqtt.Payload(64, 0, seq))
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
                .Build();
            for (var attempt = 0; ; attempt++)
            {
                await Online.WaitAsync(ct).ConfigureAwait(false);
                if (attempt > 0)
                {
                    Interlocked.Increment(ref _republished);
                }
                try
                {
                    var result = await _client.PublishAsync(msg, ct).ConfigureAwait(false);
                    if (result.IsSuccess)
                    {
                        Volatile.Write(ref _acked[seq], true);
                        var took = Stopwatch.GetTimestamp() - t0;
                        long max;
                        while (took > (max = Interlocked.Read(ref _maxAckTicks)) && Interlocked.CompareExchange(ref _maxAckTicks, took, max) != max)
                        {
                        }
                    }
                    else
                    {
                        // The broker answered with an error code: not retried, counted as failed.
                        Interlocked.Increment(ref _failed);
                        lock (_gate)
                        {
                            _failedSeqs.Add(seq);
                        }
                    }
                    return;
                }
                catch (Exception) when (!ct.IsCancellationRequested && !_closing)
                {
                    // The connection went away before the PUBACK: wait for the reconnect and publish again.
                    await Task.Delay(50, ct).ConfigureAwait(false);
                }
            }
        }
        catch (Exception)
        {
            Interlocked.Increment(ref _failed);
            lock (_gate)
            {
                _failedSeqs.Add(seq);
            }
        }
        finally
        {
            sem.Release();
        }
    }

    public async Task CloseAsync()
    {
        _closing = true;
        lock (_gate)
        {
            _online.TrySetCanceled();
        }
        await Mqtt.DisconnectAndDisposeAsync(_client).ConfigureAwait(false);
    }
}
