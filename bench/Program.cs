using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Broker.Bench;

try
{
    return args.FirstOrDefault() switch
    {
        "run" => await RunAsync(BenchOptions.Parse(args[1..])),
        "report" when args.Length >= 3 => Report(args[1..]),
        "report-failover" when args.Length == 2 => ReportFailover(args[1]),
        "freeport" => FreePort(),
        "wait-amqp" when args.Length is 2 or 3 => await WaitAmqpAsync(args[1..]),
        "list" => List(args.Length > 1 ? args[1] : "all"),
        _ => Usage(),
    };
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return Usage();
}

static int Usage()
{
    Console.Error.WriteLine(BenchOptions.Usage);
    return 2;
}

static int FreePort()
{
    using var l = new TcpListener(IPAddress.Loopback, 0);
    l.Start();
    Console.WriteLine(((IPEndPoint)l.LocalEndpoint).Port);
    return 0;
}

static int List(string spec)
{
    foreach (var s in Scenarios.Select(spec))
    {
        Console.WriteLine($"{s.Id}\t{s.Title}");
    }
    return 0;
}

static async Task<int> RunAsync(BenchOptions o)
{
    var scenarios = Scenarios.Select(o.Scenario);
    // The first broker and any --also brokers; each run of each scenario goes to every one in turn, so drift on a
    // shared machine hits them alike (run 1 starts with the first broker, run 2 with the second, ...).
    var targets = new List<(BenchOptions Options, BrokerResults Results)>();
    foreach (var t in (BenchOptions[])[o, .. o.Also.Select(o.For)])
    {
        var results = new BrokerResults
        {
            Name = t.Name, Host = t.Host, Port = t.Port, Pid = t.Pid, Started = DateTimeOffset.UtcNow, Options = t,
        };
        if (t.Append && t.Json is not null && File.Exists(t.Json))
        {
            // Add to the results of an earlier invocation (e.g. a scenario run on a freshly started broker).
            results = JsonSerializer.Deserialize<BrokerResults>(await File.ReadAllTextAsync(t.Json).ConfigureAwait(false), Json.Options)
                ?? throw new ArgumentException($"cannot read {t.Json}");
        }
        targets.Add((t, results));
    }
    var session = Guid.NewGuid().ToString("N")[..8];
    if (o.Warmup > 0)
    {
        foreach (var (t, _) in targets)
        {
            await WarmUpAsync(t, session, amqp: scenarios.All(s => Amqp.All.Contains(s)), scale: scenarios.All(s => Scale.All.Contains(s))).ConfigureAwait(false);
        }
    }
    foreach (var s in scenarios)
    {
        for (var run = 1; run <= o.Runs; run++)
        {
            // Every other run starts with another broker, so none is always the one measured right after a warm-up.
            foreach (var (t, results) in targets.Skip((run - 1) % targets.Count).Concat(targets.Take((run - 1) % targets.Count)))
            {
                var sr = results.Scenarios.FirstOrDefault(x => x.Id == s.Id);
                if (sr is null)
                {
                    sr = new ScenarioResult { Id = s.Id, Title = s.Title, Metrics = [.. s.Metrics] };
                    results.Scenarios.Add(sr);
                }
                var tag = $"{t.Name}-{session}-{s.Id}-{sr.Runs.Count + 1}";
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(t.Timeout));
                RunResult r;
                try
                {
                    // The scenario honours its token; the outer bound only guards against a hang in cleanup.
                    r = await s.Run(t, tag, cts.Token).WaitAsync(TimeSpan.FromSeconds(t.Timeout + 60)).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    r = new RunResult { TimedOut = true, Error = "scenario did not return" };
                }
                catch (Exception e)
                {
                    r = new RunResult { Error = $"{e.GetType().Name}: {e.Message}", TimedOut = cts.IsCancellationRequested };
                }
                sr.Runs.Add(r);
                Console.Error.WriteLine(Describe(t.Name, s, sr.Runs.Count, o.Runs, r));
                await Task.Delay(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            }
        }
    }
    foreach (var (t, results) in targets.Where(x => x.Options.Json is not null))
    {
        await File.WriteAllTextAsync(t.Json!, JsonSerializer.Serialize(results, Json.Options)).ConfigureAwait(false);
    }
    return 0;
}

// Untimed: JIT-compiles the client paths (and warms the broker) before the first measured run. The scale scenarios
// warm up with --warmup clean connects, 100 at a time (they leave nothing behind on the broker).
static async Task WarmUpAsync(BenchOptions o, string session, bool amqp, bool scale)
{
    var w = o.Copy();
    w.Idle = 2;
    w.Messages = w.MessagesQos1 = w.AmqpMessages = w.AmqpPersistentMessages = o.Warmup;
    w.Clients = o.Warmup;
    var warmers = scale ? "connect-conc" : amqp ? "amqp-transient-autoack-1to1,amqp-persistent-confirms-1to1" : "qos0-64,qos1-64";
    foreach (var s in Scenarios.Select(warmers))
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(o.Timeout));
        try
        {
            var r = await s.Run(w, $"{o.Name}-{session}-warmup-{s.Id}", cts.Token).WaitAsync(TimeSpan.FromSeconds(o.Timeout + 60)).ConfigureAwait(false);
            Console.Error.WriteLine(Describe(o.Name + " warm-up", s, 1, 1, r));
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"[{o.Name} warm-up] {s.Id}: {e.GetType().Name}: {e.Message}");
        }
    }
}

static async Task<int> WaitAmqpAsync(string[] args)
{
    var port = int.Parse(args[0], CultureInfo.InvariantCulture);
    var seconds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 60;
    return await Amqp.WaitReadyAsync("127.0.0.1", port, TimeSpan.FromSeconds(seconds)).ConfigureAwait(false) ? 0 : 1;
}

static string Describe(string name, Scenario s, int run, int runs, RunResult r)
{
    var parts = new List<string> { $"[{name}] {s.Id} run {run}/{runs}:" };
    foreach (var m in s.Metrics)
    {
        parts.Add(r.Metrics.TryGetValue(m.Key, out var v) ? $"{Format.Number(v)} {m.Label}" : $"- {m.Label}");
    }
    parts.Add($"received {r.Received}/{r.Expected}");
    if (r.Lost > 0)
    {
        parts.Add($"LOST {r.Lost}");
    }
    if (r.Duplicates > 0)
    {
        parts.Add($"duplicates {r.Duplicates}");
    }
    if (r.Failed > 0)
    {
        parts.Add($"failed {r.Failed}");
    }
    parts.AddRange(r.Extra.Select(kv => $"{kv.Key}={Format.Number(kv.Value)}"));
    if (r.TimedOut)
    {
        parts.Add("TIMEOUT");
    }
    if (r.Error is not null)
    {
        parts.Add($"ERROR {r.Error}");
    }
    return string.Join(' ', parts);
}

static BrokerResults Load(string path) =>
    JsonSerializer.Deserialize<BrokerResults>(File.ReadAllText(path), Json.Options) ?? throw new ArgumentException($"cannot read {path}");

static int Report(string[] paths)
{
    Console.Write(Broker.Bench.Report.Markdown([.. paths.Select(Load)]));
    return 0;
}

static int ReportFailover(string path)
{
    Console.Write(Broker.Bench.Report.Failover(Load(path)));
    return 0;
}

namespace Broker.Bench
{
    internal static class Json
    {
        public static readonly JsonSerializerOptions Options = new()
        {
            WriteIndented = true,
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        };
    }

    internal static class Format
    {
        public static string Number(double v) => Math.Abs(v) switch
        {
            >= 1000 => v.ToString("#,0", CultureInfo.InvariantCulture),
            >= 100 => v.ToString("0", CultureInfo.InvariantCulture),
            >= 10 => v.ToString("0.0", CultureInfo.InvariantCulture),
            _ => v.ToString("0.00", CultureInfo.InvariantCulture),
        };
    }
}
