using System.Globalization;
using System.Text;

namespace Broker.Bench;

/// <summary>Combines the results of two brokers into one markdown table (medians, ratio A/B).</summary>
internal static class Report
{
    public static string Markdown(BrokerResults a, BrokerResults b)
    {
        var sb = new StringBuilder();
        var o = a.Options;
        sb.Append(CultureInfo.InvariantCulture,
            $"Runs per scenario: {a.Scenarios.Concat(b.Scenarios).Max(s => (int?)s.Runs.Count) ?? 0} (median shown). QoS 0 messages: {o.Messages:N0}, QoS 1 messages: {o.MessagesQos1:N0}, ");
        sb.Append(CultureInfo.InvariantCulture,
            $"publish window: {o.Window}, latency: {o.LatencyRate:N0} msg/s for {o.LatencySeconds} s, clients: {o.Clients:N0} (concurrency {o.Concurrency}), MQTT {o.Protocol}.\n\n");
        sb.Append(CultureInfo.InvariantCulture, $"| Scenario | Metric | {a.Name} | {b.Name} | {a.Name}/{b.Name} | Lost ({a.Name}) | Lost ({b.Name}) | Notes |\n");
        sb.Append("|---|---|--:|--:|--:|--:|--:|---|\n");
        var ids = a.Scenarios.Select(s => s.Id).Concat(b.Scenarios.Select(s => s.Id)).Distinct();
        foreach (var id in ids)
        {
            var sa = a.Scenarios.FirstOrDefault(s => s.Id == id);
            var sb2 = b.Scenarios.FirstOrDefault(s => s.Id == id);
            var def = sa ?? sb2!;
            var first = true;
            foreach (var m in def.Metrics)
            {
                var va = Median(sa, m.Key);
                var vb = Median(sb2, m.Key);
                var ratio = va is double x && vb is double y && y != 0 ? (x / y).ToString("0.00", CultureInfo.InvariantCulture) + "×" : "-";
                var label = m.Label + (m.HigherIsBetter ? " ↑" : " ↓");
                if (first)
                {
                    sb.Append(CultureInfo.InvariantCulture,
                        $"| {def.Title} | {label} | {Cell(va)} | {Cell(vb)} | {ratio} | {Lost(sa)} | {Lost(sb2)} | {Notes(a.Name, sa, b.Name, sb2)} |\n");
                    first = false;
                }
                else
                {
                    sb.Append(CultureInfo.InvariantCulture, $"| | {label} | {Cell(va)} | {Cell(vb)} | {ratio} | | | |\n");
                }
            }
        }
        sb.Append("\n↑ higher is better, ↓ lower is better. Lost = messages that were sent (QoS 0) or acknowledged to the publisher (QoS 1) ")
          .Append("but never reached a subscriber, summed over all runs; for connect and memory it counts failed connections.\n");
        return sb.ToString();
    }

    private static string Cell(double? v) => v is double d ? Format.Number(d) : "-";

    private static double? Median(ScenarioResult? s, string key)
    {
        if (s is null)
        {
            return null;
        }
        var values = s.Runs.Where(r => r.Metrics.ContainsKey(key)).Select(r => r.Metrics[key]).Order().ToArray();
        if (values.Length == 0)
        {
            return null;
        }
        var mid = values.Length / 2;
        return values.Length % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    }

    private static bool IsConnections(ScenarioResult s) => s.Id is "connect" or "memory";

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

    private static string Notes(string nameA, ScenarioResult? a, string nameB, ScenarioResult? b)
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
        Add(nameA, a);
        Add(nameB, b);
        return string.Join("; ", notes);
    }
}
