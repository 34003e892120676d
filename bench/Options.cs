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
    /// <summary>MQTTnet's socket buffer size for every MQTT client (0: MQTTnet's default, 8 KiB); shapes the window the broker sees.</summary>
    public int ClientBuffer { get; set; }
    /// <summary>
    /// MQTT throughput: publishers pause while more than this many messages are sent and not yet delivered to every
    /// subscriber (0 = no bound), so the rate is one the broker sustains, not one it buffers. AMQP: see UnconfirmedWindow.
    /// </summary>
    public int Backlog { get; set; }
    public int LatencyRate { get; set; } = 1000;
    public int LatencySeconds { get; set; } = 10;
    /// <summary>
    /// Latency scenarios: seconds of the same paced load on the same clients before the measured seconds, left out of
    /// the percentiles (a new connection's first second and cold code paths in the clients and the broker), and reported
    /// apart as p99_with_warmup.
    /// </summary>
    public int LatencyWarmup { get; set; } = 2;
    /// <summary>Latency scenarios: a file each run appends its latencies to (a "# run" line, then one ms value per message in send order).</summary>
    public string? LatencyOut { get; set; }
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
    /// <summary>MQTT ports of the publishers, assigned round-robin; empty = <see cref="Port"/>.</summary>
    public List<int> PubPorts { get; set; } = [];
    /// <summary>MQTT ports of the subscribers, assigned round-robin; empty = <see cref="Port"/>.</summary>
    public List<int> SubPorts { get; set; } = [];

    // Fail-over scenario (needs a running cluster; see Failover.cs).
    /// <summary>Admin HTTP port of a node that survives, asked for the sessions' state.</summary>
    public int AdminPort { get; set; } = 8082;
    /// <summary>MQTT port the disconnected subscribers reconnect to; 0 = the first subscriber port.</summary>
    public int ReconnectPort { get; set; }
    /// <summary>File with the pid of the node to SIGKILL (scripts/cluster.sh writes data/cluster/node-I.pid).</summary>
    public string? KillPidFile { get; set; }
    /// <summary>MQTT port of the killed node; 0 = the last subscriber port.</summary>
    public int KillPort { get; set; }
    /// <summary>Name of the killed node as the admin API reports it.</summary>
    public string KillNode { get; set; } = "node-3";
    /// <summary>Shell command that starts the killed node again and returns once it is ready; none = no restart.</summary>
    public string? RestartCommand { get; set; }
    /// <summary>Admin HTTP port of the killed node, polled for /ready after the restart command; 0 = none.</summary>
    public int RestartAdminPort { get; set; }
    public int FailoverSubscribers { get; set; } = 50;
    public int FailoverRate { get; set; } = 100;
    /// <summary>Seconds of steady publishing before the kill, after recovery and after the restart.</summary>
    public int FailoverSettle { get; set; } = 5;
    /// <summary>Seconds a reconnect attempt waits for its CONNACK before it gives up and tries again.</summary>
    public int ReconnectTimeout { get; set; } = 2;
    /// <summary>Seconds of publishing after the restarted node is ready, while shards move back to it.</summary>
    public int RejoinSeconds { get; set; } = 15;
    /// <summary>Seconds after the kill within which every session must answer again.</summary>
    public int RecoveryTimeout { get; set; } = 60;

    // AMQP scenarios (see Amqp.cs); they use --port as the AMQP port.
    /// <summary>Messages per transient AMQP throughput run (2→2: both publishers together).</summary>
    public int AmqpMessages { get; set; } = 100_000;
    /// <summary>Messages per persistent AMQP throughput run (2→2: both publishers together).</summary>
    public int AmqpPersistentMessages { get; set; } = 50_000;
    /// <summary>basic.qos prefetch count of manual-ack consumers.</summary>
    public int Prefetch { get; set; } = 100;
    /// <summary>A manual-ack consumer acknowledges every Nth delivery (with multiple when N &gt; 1).</summary>
    public int AckEvery { get; set; } = 1;
    /// <summary>Publishes a confirming publisher may have unconfirmed.</summary>
    public int ConfirmWindow { get; set; } = 500;
    /// <summary>Messages a publisher may be ahead of its consumers' deliveries (with confirms the confirm window bounds it too).</summary>
    public int UnconfirmedWindow { get; set; } = 2000;
    /// <summary>Seconds between opening the idle connections and reading the broker's RSS.</summary>
    public int MemorySettle { get; set; } = 5;
    /// <summary>session-resume-rest: seconds the sessions stay disconnected before they resume (ours rests them after 10 s).</summary>
    public int RestWait { get; set; } = 12;

    // Connection-scale scenarios (see Scale.cs).
    /// <summary>Client of connect-seq and connect-conc: raw (the lean socket client) or mqttnet.</summary>
    public string Generator { get; set; } = "raw";
    /// <summary>Persistent sessions the restart scenario creates before it stops the node.</summary>
    public int Sessions { get; set; } = 10_000;
    /// <summary>Idle connections per source address (127.0.0.2, 127.0.0.3, ...) in memory-20k.</summary>
    public int PerAddress { get; set; } = 5000;
    /// <summary>Keep alive of the raw clients, seconds (long: idle connections must outlive a slow run).</summary>
    public int KeepAlive { get; set; } = 600;
    /// <summary>The node's log after the restart (restart scenario): its " ready" line ends the restart.</summary>
    public string? ReadyLog { get; set; }
    /// <summary>Sessions resumed after the restart to check they survived (spread over all; 0 = none).</summary>
    public int RestartVerify { get; set; } = 500;

    /// <summary>Further brokers measured alternately with the first: every run of every scenario goes to each in turn.</summary>
    public List<BenchTarget> Also { get; set; } = [];

    /// <summary>These options aimed at another broker (one port for publishers and consumers).</summary>
    public BenchOptions For(BenchTarget t)
    {
        var c = (BenchOptions)MemberwiseClone();
        c.Name = t.Name;
        c.Port = t.Port;
        c.Pid = t.Pid;
        c.Json = t.Json;
        c.PubPorts = [];
        c.SubPorts = [];
        c.Also = [];
        return c;
    }

    /// <summary>A copy to change for a warm-up or a sub-run.</summary>
    public BenchOptions Copy() => (BenchOptions)MemberwiseClone();

    public int PubPort(int index) => PubPorts.Count == 0 ? Port : PubPorts[index % PubPorts.Count];
    public int SubPort(int index) => SubPorts.Count == 0 ? Port : SubPorts[index % SubPorts.Count];

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
            List<int> NextPorts() => [.. Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(p => int.Parse(p, NumberStyles.Integer, CultureInfo.InvariantCulture))];
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
                case "--client-buffer": o.ClientBuffer = NextInt(); break;
                case "--latency-rate": o.LatencyRate = NextInt(); break;
                case "--latency-seconds": o.LatencySeconds = NextInt(); break;
                case "--latency-warmup": o.LatencyWarmup = NextInt(); break;
                case "--latency-out": o.LatencyOut = Next(); break;
                case "--clients": o.Clients = NextInt(); break;
                case "--concurrency": o.Concurrency = NextInt(); break;
                case "--timeout": o.Timeout = NextInt(); break;
                case "--idle": o.Idle = NextInt(); break;
                case "--protocol": o.Protocol = Next(); break;
                case "--json": o.Json = Next(); break;
                case "--warmup": o.Warmup = NextInt(); break;
                case "--append": o.Append = true; break;
                case "--pub-port" or "--pub-ports": o.PubPorts = NextPorts(); break;
                case "--sub-port" or "--sub-ports": o.SubPorts = NextPorts(); break;
                case "--admin-port": o.AdminPort = NextInt(); break;
                case "--reconnect-port": o.ReconnectPort = NextInt(); break;
                case "--kill-pid-file": o.KillPidFile = Next(); break;
                case "--kill-node": o.KillNode = Next(); break;
                case "--kill-port": o.KillPort = NextInt(); break;
                case "--restart-cmd": o.RestartCommand = Next(); break;
                case "--restart-admin-port": o.RestartAdminPort = NextInt(); break;
                case "--failover-subscribers": o.FailoverSubscribers = NextInt(); break;
                case "--failover-rate": o.FailoverRate = NextInt(); break;
                case "--failover-settle": o.FailoverSettle = NextInt(); break;
                case "--rejoin-seconds": o.RejoinSeconds = NextInt(); break;
                case "--recovery-timeout": o.RecoveryTimeout = NextInt(); break;
                case "--reconnect-timeout": o.ReconnectTimeout = NextInt(); break;
                case "--amqp-messages": o.AmqpMessages = NextInt(); break;
                case "--amqp-persistent-messages": o.AmqpPersistentMessages = NextInt(); break;
                case "--prefetch": o.Prefetch = NextInt(); break;
                case "--ack-every": o.AckEvery = NextInt(); break;
                case "--confirm-window": o.ConfirmWindow = NextInt(); break;
                case "--unconfirmed-window": o.UnconfirmedWindow = NextInt(); break;
                // One bound for both protocols: MQTT's undelivered backlog and AMQP's publisher gap.
                case "--backlog": o.Backlog = o.UnconfirmedWindow = NextInt(); break;
                case "--memory-settle": o.MemorySettle = NextInt(); break;
                case "--rest-wait": o.RestWait = NextInt(); break;
                case "--generator": o.Generator = Next(); break;
                case "--sessions": o.Sessions = NextInt(); break;
                case "--per-address": o.PerAddress = NextInt(); break;
                case "--keep-alive": o.KeepAlive = NextInt(); break;
                case "--ready-log": o.ReadyLog = Next(); break;
                case "--restart-verify": o.RestartVerify = NextInt(); break;
                case "--also": o.Also.Add(BenchTarget.Parse(Next())); break;
                default: throw new ArgumentException($"unknown option {key}");
            }
        }
        if (o.Runs < 1 || o.Messages < 4 || o.MessagesQos1 < 4 || o.Window < 1 || o.Backlog < 0 || o.Clients < 1 || o.Concurrency < 1)
        {
            throw new ArgumentException("runs, window, clients and concurrency must be >= 1, messages >= 4");
        }
        if (o.ClientBuffer is < 0 or > 64 * 1024 * 1024)
        {
            throw new ArgumentException("--client-buffer takes 0 (MQTTnet's default) to 67108864 bytes");
        }
        if (o.PubPorts.Concat(o.SubPorts).Any(p => p is < 1 or > 65535))
        {
            throw new ArgumentException("--pub-ports and --sub-ports take ports 1..65535");
        }
        if (o.FailoverSubscribers < 1 || o.FailoverRate < 1 || o.FailoverSettle < 0 || o.RejoinSeconds < 0 || o.RecoveryTimeout < 1 || o.ReconnectTimeout < 1)
        {
            throw new ArgumentException("failover subscribers, rate and recovery timeout must be >= 1, settle >= 0");
        }
        if (o.AmqpMessages < 2 || o.AmqpPersistentMessages < 2 || o.Prefetch is < 1 or > 65535 || o.AckEvery < 1
            || o.AckEvery > o.Prefetch || o.ConfirmWindow < 1 || o.UnconfirmedWindow < 1 || o.MemorySettle < 0 || o.RestWait < 0)
        {
            throw new ArgumentException("AMQP messages must be >= 2; prefetch 1..65535; 1 <= ack-every <= prefetch; windows >= 1");
        }
        if (o.Generator is not ("raw" or "mqttnet") || o.Sessions < 1 || o.PerAddress < 1 || o.KeepAlive is < 0 or > 65535 || o.RestartVerify < 0)
        {
            throw new ArgumentException("--generator must be raw or mqttnet; sessions and per-address >= 1; keep-alive 0..65535; restart-verify >= 0");
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
                           [--window 100] [--client-buffer 0] [--latency-rate 1000] [--latency-seconds 10] [--latency-warmup 2] [--latency-out FILE]
                           [--clients 2000] [--concurrency 50] [--timeout 120] [--idle 5]
                           [--protocol 5|3.1.1] [--warmup 5000] [--json out.json [--append]]
                           [--pub-ports P[,P...]] [--sub-ports P[,P...]]      (round-robin; default --port)
          failover (not in "all"; needs a running cluster):
                           --scenario failover --pub-ports 1883 --sub-ports 1884,1885 --reconnect-port 1884
                           --admin-port 8082 --kill-pid-file data/cluster/node-3.pid [--kill-node node-3] [--kill-port 1885]
                           [--restart-cmd "scripts/cluster.sh start 3"] [--restart-admin-port 8084]
                           [--failover-subscribers 50] [--failover-rate 100] [--failover-settle 5] [--rejoin-seconds 15]
                           [--recovery-timeout 60] [--reconnect-timeout 2]
          AMQP 0.9.1 (not in "all"; --port is the AMQP port; --scenario amqp selects them all):
                           [--amqp-messages 100000] [--amqp-persistent-messages 50000] [--prefetch 100] [--ack-every 1]
                           [--confirm-window 500] [--unconfirmed-window 2000] [--memory-settle 5]
          connection scale (not in "all"; --scenario scale selects them all; raw socket clients, see docs/benchmarks.md):
                           connect-seq, connect-conc, session-create, session-resume, session-resume-rest [--rest-wait 12], memory-20k, restart
                           [--generator raw|mqttnet] (connect-seq/-conc) [--concurrency 50] [--clients 2000]
                           [--per-address 5000] [--keep-alive 600] [--memory-settle 5] (memory-20k)
                           restart (our node only): --pid PID --restart-cmd "CMD" --ready-log LOG [--sessions 10000] [--restart-verify 500]
          any scenarios, several brokers alternately (each run of each scenario goes to every broker in turn):
                           --also NAME,PORT,PID,JSON [--also ...]   (PID 0 = none)
          Broker.Bench report A.json B.json [C.json...]   markdown table of A against B (ratio A/B), more columns for C...
          Broker.Bench report-failover F.json   markdown table of the failover runs in F
          Broker.Bench freeport                 print a free TCP port of 127.0.0.1
          Broker.Bench wait-amqp PORT [SECONDS]  wait until guest/guest can open an AMQP connection on 127.0.0.1:PORT (default 60 s)
          Broker.Bench list [SPEC]              list the scenario ids SPEC selects (default all)
        """;
}

/// <summary>A broker measured alongside the first one of a run (<c>--also NAME,PORT,PID,JSON</c>).</summary>
internal sealed record BenchTarget(string Name, int Port, int Pid, string? Json)
{
    public static BenchTarget Parse(string spec)
    {
        var parts = spec.Split(',', 4, StringSplitOptions.TrimEntries);
        if (parts.Length < 3 || parts[0].Length == 0
            || !int.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535
            || !int.TryParse(parts[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid) || pid < 0)
        {
            throw new ArgumentException($"--also takes NAME,PORT,PID[,JSON], not '{spec}'");
        }
        return new BenchTarget(parts[0], port, pid, parts.Length == 4 && parts[3].Length > 0 ? parts[3] : null);
    }
}
