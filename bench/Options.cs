using System.Globalization;

namespace Broker.Bench;

/// <summary>Command-line options of the <c>run</c> command.</summary>
internal sealed class BenchOptions
{
    public string Host { get; set; } = "127.0.0.1";
    public int Port { get; set; } = 1883;
    public int Pid { get; set; }
    public string Name { get; set; } = "broker";
    public int Runs { get; set; } = 3;
    public string Scenario { get; set; } = "all";
    /// <summary>Messages per QoS 0 throughput run (fan-in/fan-out: total deliveries).</summary>
    public int Messages { get; set; } = 100_000;
    /// <summary>Messages per QoS 1 throughput run (fan-in/fan-out: total deliveries).</summary>
    public int MessagesQos1 { get; set; } = 50_000;
    /// <summary>Outstanding PublishAsync calls per publisher.</summary>
    public int Window { get; set; } = 100;
    public int LatencyRate { get; set; } = 1000;
    public int LatencySeconds { get; set; } = 10;
    public int Clients { get; set; } = 2000;
    public int Concurrency { get; set; } = 50;
    /// <summary>Hard limit of one scenario run, seconds.</summary>
    public int Timeout { get; set; } = 120;
    /// <summary>A receiver that got nothing new for this long after publishing ended is done, seconds.</summary>
    public int Idle { get; set; } = 5;
    public string Protocol { get; set; } = "5";
    public string? Json { get; set; }
    /// <summary>Messages of the untimed warm-up (QoS 0 and QoS 1 1→1) before the first scenario; 0 = none.</summary>
    public int Warmup { get; set; } = 5000;
    /// <summary>Add to the runs already in the --json file instead of replacing it.</summary>
    public bool Append { get; set; }

    public static BenchOptions Parse(string[] args)
    {
        var o = new BenchOptions();
        for (var i = 0; i < args.Length; i++)
        {
            var key = args[i];
            string Next()
            {
                if (i + 1 >= args.Length)
                {
                    throw new ArgumentException($"option {key} needs a value");
                }
                return args[++i];
            }
            int NextInt() => int.Parse(Next(), NumberStyles.Integer, CultureInfo.InvariantCulture);
            switch (key)
            {
                case "--host": o.Host = Next(); break;
                case "--port": o.Port = NextInt(); break;
                case "--pid": o.Pid = NextInt(); break;
                case "--name": o.Name = Next(); break;
                case "--runs": o.Runs = NextInt(); break;
                case "--scenario": o.Scenario = Next(); break;
                case "--messages": o.Messages = NextInt(); break;
                case "--messages-qos1": o.MessagesQos1 = NextInt(); break;
                case "--window": o.Window = NextInt(); break;
                case "--latency-rate": o.LatencyRate = NextInt(); break;
                case "--latency-seconds": o.LatencySeconds = NextInt(); break;
                case "--clients": o.Clients = NextInt(); break;
                case "--concurrency": o.Concurrency = NextInt(); break;
                case "--timeout": o.Timeout = NextInt(); break;
                case "--idle": o.Idle = NextInt(); break;
                case "--protocol": o.Protocol = Next(); break;
                case "--json": o.Json = Next(); break;
                case "--warmup": o.Warmup = NextInt(); break;
                case "--append": o.Append = true; break;
                default: throw new ArgumentException($"unknown option {key}");
            }
        }
        if (o.Runs < 1 || o.Messages < 4 || o.MessagesQos1 < 4 || o.Window < 1 || o.Clients < 1 || o.Concurrency < 1)
        {
            throw new ArgumentException("runs, window, clients and concurrency must be >= 1, messages >= 4");
        }
        if (o.Protocol is not ("5" or "3.1.1"))
        {
            throw new ArgumentException("--protocol must be 5 or 3.1.1");
        }
        return o;
    }

    public const string Usage = """
        usage:
          Broker.Bench run --host 127.0.0.1 --port P [--pid PID] [--name ours] [--runs 3]
                           [--scenario all|ID|PREFIX[,...]] [--messages 100000] [--messages-qos1 50000]
                           [--window 100] [--latency-rate 1000] [--latency-seconds 10]
                           [--clients 2000] [--concurrency 50] [--timeout 120] [--idle 5]
                           [--protocol 5|3.1.1] [--warmup 5000] [--json out.json [--append]]
          Broker.Bench report A.json B.json     markdown table of A against B (ratio A/B)
          Broker.Bench freeport                 print a free TCP port of 127.0.0.1
          Broker.Bench list [SPEC]              list the scenario ids SPEC selects (default all)
        """;
}
