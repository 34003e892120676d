using System.Globalization;
using System.Text;

namespace Broker.Bench;

/// <summary>Combines the results of two brokers into one markdown table (medians, ratio A/B).</summary>
internal static class Report
{
    public static string Markdown(BrokerResults a, BrokerResults b) => Markdown([a, b]);

    /// <summary>One value column per result set, the ratio of the first to the second, and each set's losses.</summary>
    public static string Markdown(IReadOnlyList<BrokerResults> all)
    {
        var sb = new StringBuilder();
        var a = all[0];
        var b = all[1];
        var o = a.Options;
        var amqp = all.SelectMany(x => x.Scenarios).All(s => s.Id.StartsWith("amqp-", StringComparison.Ordinal));
        var runs = all.SelectMany(x => x.Scenarios).Max(s => (int?)s.Runs.Count) ?? 0;
        var scale = all.SelectMany(x => x.Scenarios).All(s => Scale.CountsConnections(s.Id) || s.Id is "session-resume" or "restart");
        if (scale)
        {
            long Expected(string id) => all.SelectMany(x => x.Scenarios).Where(s => s.Id == id).SelectMany(s => s.Runs).Select(r => r.Expected).DefaultIfEmpty().Max();
            var sessions = all.SelectMany(x => x.Scenarios).Where(s => s.Id == "restart").SelectMany(s => s.Runs)
                .Select(r => r.Extra.GetValueOrDefault("sessions")).DefaultIfEmpty().Max();
            sb.Append(CultureInfo.InvariantCulture,
                $"Runs per scenario: {runs} (median shown), each on freshly started brokers. MQTT {o.Protocol}, {(o.Generator == "raw" ? "raw-socket clients" : "MQTTnet clients for connect-seq/-conc, raw-socket clients otherwise")}; ");
            var parts = new List<string>();
            var clients = new[] { "connect-seq", "connect-conc", "session-create", "session-resume" }.Max(Expected);
            if (clients > 0)
            {
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"connect and session scenarios: {clients:N0} clients, connect-conc and sessions {o.Concurrency} at a time"));
            }
            if (Expected("memory-20k") > 0)
            {
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"memory-20k: {Expected("memory-20k"):N0} idle connections, {o.PerAddress:N0} per source address"));
            }
            if (sessions > 0)
            {
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"restart: {sessions:N0} persistent sessions (our node only)"));
            }
            sb.AppendJoin("; ", parts).Append(".\n\n");
        }
        else if (amqp)
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"Runs per scenario: {runs} (median shown). Transient messages: {o.AmqpMessages:N0}, persistent messages: {o.AmqpPersistentMessages:N0}, ");
            sb.Append(CultureInfo.InvariantCulture,
                $"{Amqp.BodySize}-byte bodies; unconfirmed publishers at most {o.UnconfirmedWindow:N0} messages ahead of deliveries; confirm window {o.ConfirmWindow:N0}; ");
            sb.Append(CultureInfo.InvariantCulture,
                $"manual ack: prefetch {o.Prefetch}, {(o.AckEvery == 1 ? "every delivery acknowledged" : $"multiple ack every {o.AckEvery}")}; ");
            sb.Append(CultureInfo.InvariantCulture,
                $"latency: {o.LatencyRate:N0} msg/s for {o.LatencySeconds} s after {o.LatencyWarmup} s of warm-up; idle connections: {o.Clients:N0} (concurrency {o.Concurrency}). RabbitMQ.Client 7.\n\n");
        }
        else
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"Runs per scenario: {runs} (median shown). QoS 0 messages: {o.Messages:N0}, QoS 1 messages: {o.MessagesQos1:N0}, ");
            sb.Append(CultureInfo.InvariantCulture,
                $"publish window: {o.Window}, latency: {o.LatencyRate:N0} msg/s for {o.LatencySeconds} s after {o.LatencyWarmup} s of warm-up, clients: {o.Clients:N0} (concurrency {o.Concurrency}), MQTT {o.Protocol}.\n\n");
        }
        sb.Append("| Scenario | Metric | ").AppendJoin(" | ", all.Select(x => x.Name))
          .Append(CultureInfo.InvariantCulture, $" | {a.Name}/{b.Name} | ")
          .AppendJoin(" | ", all.Select(x => $"Lost ({x.Name})")).Append(" | Notes |\n");
        sb.Append("|---|---|").Append(string.Concat(Enumerable.Repeat("--:|", all.Count + 1 + all.Count))).Append("---|\n");
        var ids = all.SelectMany(x => x.Scenarios).Select(s => s.Id).Distinct();
        foreach (var id in ids)
        {
            var found = all.Select(x => x.Scenarios.FirstOrDefault(s => s.Id == id)).ToArray();
            var def = found.First(s => s is not null)!;
            var first = true;
            foreach (var m in def.Metrics)
            {
                var values = found.Select(s => Median(s, m.Key)).ToArray();
                var ratio = values[0] is double x && values[1] is double y && y != 0 ? (x / y).ToString("0.00", CultureInfo.InvariantCulture) + "×" : "-";
                var label = m.Label + (m.HigherIsBetter ? " ↑" : " ↓");
                sb.Append(first ? $"| {def.Title} | " : "| | ").Append(label).Append(" | ")
                  .AppendJoin(" | ", values.Select(Cell)).Append(" | ").Append(ratio).Append(" |");
                if (first)
                {
                    sb.Append(' ').AppendJoin(" | ", found.Select(Lost)).Append(" | ")
                      .Append(Notes(all.Select((r, i) => (r.Name, found[i])).ToArray())).Append(" |\n");
                    first = false;
                }
                else
                {
                    sb.Append(string.Concat(Enumerable.Repeat(" |", all.Count + 1))).Append('\n');
                }
            }
        }
        if (scale)
        {
            sb.Append("\n↑ higher is better, ↓ lower is better. Lost: for connect, session-create and memory-20k the failed connections; ")
              .Append("for session-resume the sessions that came back without session present or without their queued message; ")
              .Append("for restart the sampled sessions without session present after the restart; summed over all runs.\n");
        }
        else if (amqp)
        {
            sb.Append("\n↑ higher is better, ↓ lower is better. Lost = messages published (transient) or confirmed to the publisher ")
              .Append("(persistent) but never delivered to a consumer, summed over all runs; for idle memory it counts failed connections.\n");
        }
        else
        {
            sb.Append("\n↑ higher is better, ↓ lower is better. Lost = messages that were sent (QoS 0) or acknowledged to the publisher (QoS 1) ")
              .Append("but never reached a subscriber, summed over all runs; for connect and memory it counts failed connections.\n");
        }
        return sb.ToString();
    }

    /// <summary>The runs of the failover scenario, one row each, and the medians.</summary>
    public static string Failover(BrokerResults r)
    {
        var sb = new StringBuilder();
        var s = r.Scenarios.FirstOrDefault(x => x.Id == "failover");
        if (s is null || s.Runs.Count == 0)
        {
            return "no failover runs\n";
        }
        var o = r.Options;
        sb.Append(CultureInfo.InvariantCulture,
            $"{o.FailoverSubscribers} persistent MQTT 5 subscribers (ports {string.Join(", ", o.SubPorts)}, reconnecting to {o.ReconnectPort}), ");
        sb.Append(CultureInfo.InvariantCulture,
            $"one QoS 1 publisher (port {string.Join(", ", o.PubPorts)}) offering {o.FailoverRate} msg/s; SIGKILL of {o.KillNode}. Times in seconds from the kill.\n\n");
        (string Label, Func<RunResult, string> Cell)[] cols =
        [
            ("recovery s", x => M(x, "recovery")),
            ("broker closes first client s", x => E(x, "detect_s")),
            ("last reconnect s", x => E(x, "reconnect_s")),
            ("first new msg s (median / all)", x => $"{E(x, "first_new_median")} / {M(x, "first_msg")}"),
            ("publisher stall s", x => x.Extra.TryGetValue("max_puback_ms", out var v) ? Format.Number(v / 1000) : "-"),
            ("publisher reconnects / republished", x => $"{I(x, "publisher_disconnects")} / {I(x, "republished")}"),
            ("restart s", x => M(x, "restart")),
            ("clients reconnected", x => $"{I(x, "reconnected")} of {I(x, "subscribers")}"),
            ("sessions on killed node", x => I(x, "sessions_on_killed_node")),
            ("msg/s before kill", x => E(x, "publish_rate_before_kill")),
            ("acknowledged", x => I(x, "acked")),
            ("never acknowledged", x => I(x, "never_acked")),
            ("lost", x => x.Lost.ToString("N0", CultureInfo.InvariantCulture)),
            ("duplicates (arrived after kill / after restart)", x =>
                $"{x.Duplicates.ToString("N0", CultureInfo.InvariantCulture)} ({I(x, "duplicates_failover")} / {I(x, "duplicates_after_restart")})"),
        ];
        sb.Append("| run | ").AppendJoin(" | ", cols.Select(c => c.Label)).Append(" |\n");
        sb.Append("|---|").Append(string.Concat(Enumerable.Repeat("--:|", cols.Length))).Append('\n');
        for (var i = 0; i < s.Runs.Count; i++)
        {
            var run = s.Runs[i];
            sb.Append(CultureInfo.InvariantCulture, $"| {i + 1} | ").AppendJoin(" | ", cols.Select(c => c.Cell(run))).Append(" |\n");
        }
        string Med(string key, bool metric) => Cell(MedianOf(s.Runs.Select(x => (metric ? x.Metrics : x.Extra).TryGetValue(key, out var v) ? (double?)v : null)));
        sb.Append("| median | ").Append(Med("recovery", true)).Append(" | ").Append(Med("detect_s", false)).Append(" | ")
          .Append(Med("reconnect_s", false)).Append(" | ").Append(Med("first_new_median", false)).Append(" / ").Append(Med("first_msg", true))
          .Append(" | ").Append(Cell(MedianOf(s.Runs.Select(x => x.Extra.TryGetValue("max_puback_ms", out var v) ? (double?)(v / 1000) : null))))
          .Append(" | | ").Append(Med("restart", true)).Append(" | | | | | ")
          .Append(s.Runs.Sum(x => x.Extra.GetValueOrDefault("never_acked")).ToString("N0", CultureInfo.InvariantCulture)).Append(" (sum) | ")
          .Append(s.Runs.Sum(x => x.Lost).ToString("N0", CultureInfo.InvariantCulture)).Append(" (sum) | ")
          .Append(s.Runs.Sum(x => x.Duplicates).ToString("N0", CultureInfo.InvariantCulture)).Append(" (sum) |\n");
        foreach (var (run, i) in s.Runs.Select((x, i) => (x, i)).Where(p => p.x.Error is not null || p.x.TimedOut || p.x.Failed > 0))
        {
            sb.Append(CultureInfo.InvariantCulture, $"\nrun {i + 1}: ").Append(run.Error ?? "").Append(run.TimedOut ? " timeout" : "")
              .Append(run.Failed > 0 ? $" {run.Failed} publishes failed" : "").Append('\n');
        }
        return sb.ToString();

        static string M(RunResult x, string key) => x.Metrics.TryGetValue(key, out var v) ? Format.Number(v) : "-";
        static string E(RunResult x, string key) => x.Extra.TryGetValue(key, out var v) ? Format.Number(v) : "-";
        static string I(RunResult x, string key) => x.Extra.TryGetValue(key, out var v) ? v.ToString("N0", CultureInfo.InvariantCulture) : "-";
    }

    private static double? MedianOf(IEnumerable<double?> source)
    {
        var values = source.Where(v => v.HasValue).Select(v => v!.Value).Order().ToArray();
        if (values.Length == 0)
        {
            return null;
        }
        var mid = values.Length / 2;
        return values.Length % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    }

    private static string Cell(double? v) => v is double d ? Format.Number(d) : "-";

    private static double? Median(ScenarioResult? s, string key)
    {
        if (s is null)
        {
            return null;
        }
        return MedianOf(s.Runs.Select(r => r.Metrics.TryGetValue(key, out var v) ? (double?)v : null));
    }

    private static bool IsConnections(ScenarioResult s) => s.Id is "connect" or "memory" or "amqp-idle-memory" || Scale.CountsConnections(s.Id);

    private static string Lost(ScenarioResult? s)
    {
        if (s is null)
        {
            return "-";
        }
        if (IsConnections(s))
        {
            var failed = s.Runs.Sum(r => r.Failed);
            return failed == 0 ? "0" : $"{failed:N0} of {s.Runs.Sum(r => r.Expected):N0}";
        }
        var lost = s.Runs.Sum(r => r.Lost);
        var expected = s.Runs.Sum(r => r.Expected);
        if (lost == 0)
        {
            return "0";
        }
        var pct = expected > 0 ? 100.0 * lost / expected : 0;
        return string.Create(CultureInfo.InvariantCulture, $"{lost:N0} of {expected:N0} ({pct:0.##}%)");
    }

    private static string Notes((string Name, ScenarioResult? Result)[] sets)
    {
        var notes = new List<string>();
        void Add(string name, ScenarioResult? s)
        {
            if (s is null)
            {
                notes.Add($"{name}: not run");
                return;
            }
            var n = s.Runs.Count;
            var timeouts = s.Runs.Count(r => r.TimedOut);
            if (timeouts > 0)
            {
                notes.Add($"{name}: timeout in {timeouts}/{n} runs");
            }
            foreach (var e in s.Runs.Where(r => r.Error is not null).Select(r => r.Error).Distinct())
            {
                notes.Add($"{name}: error {e!.Replace('|', '/')}");
            }
            var dups = s.Runs.Sum(r => r.Duplicates);
            if (dups > 0)
            {
                notes.Add($"{name}: {dups:N0} duplicates");
            }
            if (!IsConnections(s))
            {
                var failed = s.Runs.Sum(r => r.Failed);
                if (failed > 0)
                {
                    notes.Add($"{name}: {failed:N0} publishes failed");
                }
            }
        }
        foreach (var (name, result) in sets)
        {
            Add(name, result);
        }
        return string.Join("; ", notes);
    }
}
