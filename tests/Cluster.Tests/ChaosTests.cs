using System.Diagnostics;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Xunit.Abstractions;

namespace Broker.Cluster.Tests;

/// <summary>
/// Three node processes of the built executable; persistent MQTT 3.1.1 and 5.0 sessions spread over them;
/// QoS 1 and QoS 2 publishers; then a node is killed, stopped, or the whole cluster restarts. Each test
/// prints a "chaos:" line with what it measured. Runs on SQLite and on PostgreSQL.
/// </summary>
public abstract class ChaosTests(ITestOutputHelper output, string provider)
{
    private const int Subscribers = 8;
    private const int PerPublisher = 250;
    private static readonly TimeSpan PublishInterval = TimeSpan.FromMilliseconds(20);

    private void Report(string line)
    {
        output.WriteLine("chaos: " + line);
        Console.WriteLine("chaos: " + line);
    }

    private static List<ChaosSubscriber> Subscriber(string run, LivePorts ports) =>
        [.. Enumerable.Range(0, Subscribers).Select(i => NewSubscriber(run, i, ports))];

    private static ChaosSubscriber NewSubscriber(string run, int i, LivePorts ports) =>
        new($"{run}-s{i}", i % 2 == 0 ? MqttProtocolVersion.V311 : MqttProtocolVersion.V500, ports);

    /// <summary>Node hosting each session, as the admin API of <paramref name="asker"/> says (sessions whose shard is moving are left out).</summary>
    private static async Task<Dictionary<string, string>> HostsAsync(NodeProcess asker, IEnumerable<string> ids)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var hosts = new Dictionary<string, string>();
        foreach (var id in ids)
        {
            using var response = await http.GetAsync($"{asker.AdminUrl}/api/v1/sessions/{id}");
            if (response.IsSuccessStatusCode)
            {
                using var doc = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                hosts[id] = doc.RootElement.GetProperty("node").GetString()!;
            }
        }
        return hosts;
    }

    /// <summary>
    /// Waits until shards stopped moving (the same complete placement twice, a second apart), then adds
    /// subscribers until at least one session lives on <paramref name="node"/>, so the failure hits sessions.
    /// </summary>
    private static async Task<int> EnsureSessionsOnAsync(NodeProcess asker, List<ChaosSubscriber> subs, string node, Func<int, Task<ChaosSubscriber>> addOne)
    {
        Dictionary<string, string>? last = null;
        await Wait.UntilAsync(async () =>
        {
            await Task.Delay(1000);
            var now = await HostsAsync(asker, subs.Select(s => s.ClientId));
            var stable = now.Count == subs.Count && last is not null && now.OrderBy(p => p.Key).SequenceEqual(last.OrderBy(p => p.Key));
            last = now;
            return stable;
        }, TimeSpan.FromSeconds(90), "shards to settle");
        while (last!.Values.Count(v => v == node) == 0 && subs.Count < 40)
        {
            var sub = await addOne(subs.Count);
            subs.Add(sub);
            await Wait.UntilAsync(async () => (await HostsAsync(asker, [sub.ClientId])).Count == 1, TimeSpan.FromSeconds(30), "the new session to be listed");
            last = await HostsAsync(asker, subs.Select(s => s.ClientId));
        }
        var count = last.Values.Count(v => v == node);
        Assert.True(count > 0, $"no session landed on {node}");
        return count;
    }

    /// <summary>
    /// Subscribers (added to <paramref name="subs"/>, which the caller disposes) connected to node-1 and node-2 only, with
    /// at least one session on node-3, and QoS 1 and QoS 2 publishers on node-1 and node-2 running once 50 are
    /// acknowledged. Returns how many sessions are on node-3, the publishers and their runs (3 minutes at most).
    /// </summary>
    private static async Task<(int OnThird, List<ChaosPublisher> Publishers, List<Task> Publishing)> ClientsOnTwoNodesSessionsOnThirdAsync(
        ProcessCluster cluster, string run, List<ChaosSubscriber> subs)
    {
        var staying = new LivePorts();
        staying.Set([cluster.Nodes[0]!.MqttPort, cluster.Nodes[1]!.MqttPort]);
        subs.AddRange(Subscriber(run, staying));
        foreach (var sub in subs)
        {
            await sub.StartAsync(staying.Next(), run + "/#");
        }
        var onThird = await EnsureSessionsOnAsync(cluster.Nodes[0]!, subs, "node-3", async i =>
        {
            var sub = NewSubscriber(run, i, staying);
            await sub.StartAsync(staying.Next(), run + "/#");
            return sub;
        });
        var publishers = new List<ChaosPublisher>
        {
            new(run + "-p1", run + "/q1", MqttQualityOfServiceLevel.AtLeastOnce, staying),
            new(run + "-p2", run + "/q2", MqttQualityOfServiceLevel.ExactlyOnce, staying),
        };
        var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var publishing = publishers.Select(p => p.RunAsync(PerPublisher, PublishInterval, deadline.Token)).ToList();
        _ = Task.WhenAll(publishing).ContinueWith(_ => deadline.Dispose(), TaskScheduler.Default);
        await Wait.UntilAsync(() => publishers[0].Acked.Count >= 50, TimeSpan.FromSeconds(60), "publishing to start")
            .ContinueWith(t => Assert.True(t.IsCompletedSuccessfully, $"publishing did not start: {publishers[0].Acked.Count} acknowledged\n{cluster.Logs}"), TaskScheduler.Default);
        return (onThird, publishers, publishing);
    }

    [Fact]
    public async Task Killing_a_node_loses_no_acknowledged_message_and_the_node_rejoins()
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var cluster = await ProcessCluster.StartAsync(db, 3);
        var run = Ids.New("kill");
        var everywhere = new LivePorts();
        everywhere.Set(cluster.Live.Select(n => n.MqttPort));
        var subs = Subscriber(run, everywhere);
        try
        {
            for (var i = 0; i < subs.Count; i++)
            {
                await subs[i].StartAsync(cluster.Nodes[i % 3]!.MqttPort, run + "/#");
            }
            var onVictim = await EnsureSessionsOnAsync(cluster.Nodes[1]!, subs, "node-1", async i =>
            {
                var sub = NewSubscriber(run, i, everywhere);
                await sub.StartAsync(cluster.Nodes[i % 3]!.MqttPort, run + "/#");
                return sub;
            });
            var ids = subs.Select(s => s.ClientId).ToList();
            var publishers = new List<ChaosPublisher>
            {
                new(run + "-p1", run + "/q1", MqttQualityOfServiceLevel.AtLeastOnce, everywhere),
                new(run + "-p2", run + "/q2", MqttQualityOfServiceLevel.ExactlyOnce, everywhere),
            };
            using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            var publishing = publishers.Select(p => p.RunAsync(PerPublisher, PublishInterval, deadline.Token)).ToList();
            await Wait.UntilAsync(() => publishers[0].Acked.Count >= 50, TimeSpan.FromSeconds(60), "publishing to start")
                .ContinueWith(t => Assert.True(t.IsCompletedSuccessfully, $"publishing did not start: {publishers[0].Acked.Count} acknowledged\n{cluster.Logs}"), TaskScheduler.Default);

            // node-1 is the oldest member: it also runs the shard coordinators.
            var sinceKill = Stopwatch.StartNew();
            cluster.Kill(0);
            everywhere.Set(cluster.Live.Select(n => n.MqttPort));
            var survivor = cluster.Nodes[1]!;
            // Until node-1 is downed, pages come back without its sessions and name it.
            using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) })
            {
                using var page = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync($"{survivor.AdminUrl}/api/v1/sessions?prefix={run}"));
                Assert.Equal(["node-1"], page.RootElement.GetProperty("unreachable_nodes").EnumerateArray().Select(e => e.GetString()));
            }
            await Wait.UntilAsync(() => Admin.AllAnswerAsync(survivor, ids), TimeSpan.FromSeconds(60), "every session to answer on a survivor");
            var recovered = Clock.Seconds(sinceKill);
            await Wait.UntilAsync(() => subs.All(s => s.IsConnected), TimeSpan.FromSeconds(60), "every subscriber to be connected again");
            var reconnected = Clock.Seconds(sinceKill);
            foreach (var node in cluster.Live)
            {
                await Wait.UntilAsync(() => Admin.ListsAllAsync(node, run, ids, connected: true), TimeSpan.FromSeconds(60), $"{node.Name} to list every session");
            }
            var listed = Clock.Seconds(sinceKill);
            await Task.WhenAll(publishing);
            await Wait.UntilAsync(() => ChaosTally.Of(publishers, subs).Lost == 0, TimeSpan.FromSeconds(60), "every acknowledged message to arrive")
                .ContinueWith(_ => { }, TaskScheduler.Default);
            foreach (var e in subs.SelectMany(s => s.Events))
            {
                output.WriteLine(e);
            }
            var tally = ChaosTally.Of(publishers, subs);
            Report($"sigkill [{provider}] sessions={subs.Count} on_killed_node={onVictim} acknowledged={tally.Acknowledged} lost={tally.Lost} duplicates={tally.Duplicates} out_of_order={tally.OutOfOrder} " +
                $"recovery={recovered}s reconnected={reconnected}s all_listed_connected={listed}s publisher_retries={publishers.Sum(p => p.Retries)} subscriber_reconnects={subs.Sum(s => s.Disconnects)}");
            Assert.True(tally.Lost == 0, tally.Detail + "\n" + cluster.Logs);
            Assert.Equal(0, tally.OutOfOrder);
            Assert.True(subs.All(s => s.SessionsLost == 0), string.Join("\n", subs.SelectMany(s => s.Events)) + "\n" + cluster.Logs);

            var sinceStart = Stopwatch.StartNew();
            var back = await cluster.StartNodeAsync(0);
            await Wait.UntilAsync(() => Admin.ListsAllAsync(back, run, ids, connected: true), TimeSpan.FromSeconds(60), "the restarted node to list every session");
            Report($"rejoin [{provider}] ready_and_listing={Clock.Seconds(sinceStart)}s");
            var before = subs.Select(s => s.Received.Count).ToList();
            await using (var check = await TestClient.ConnectAsync(back.MqttPort, run + "-check"))
            {
                await check.PublishAsync(run + "/check", "check:0");
            }
            await Wait.UntilAsync(() => subs.Select((s, i) => s.Received.Count > before[i]).All(x => x), TimeSpan.FromSeconds(20), "a publish through the rejoined node to reach everyone");
        }
        finally
        {
            foreach (var s in subs)
            {
                await s.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_node_leaving_with_sigterm_loses_and_duplicates_nothing_and_other_clients_see_no_error()
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var cluster = await ProcessCluster.StartAsync(db, 3);
        var run = Ids.New("leave");
        // Clients stay on node-1 and node-2; node-3 only hosts sessions, which move when it leaves.
        var subs = new List<ChaosSubscriber>();
        try
        {
            var (onLeaving, publishers, publishing) = await ClientsOnTwoNodesSessionsOnThirdAsync(cluster, run, subs);
            var ids = subs.Select(s => s.ClientId).ToList();

            var sinceStop = Stopwatch.StartNew();
            Assert.True(cluster.Terminate(2, TimeSpan.FromSeconds(60)), "node-3 exits after SIGTERM");
            var stopped = Clock.Seconds(sinceStop);
            await Task.WhenAll(publishing);
            await Wait.UntilAsync(() => ChaosTally.Of(publishers, subs).Lost == 0, TimeSpan.FromSeconds(60), "every acknowledged message to arrive")
                .ContinueWith(_ => { }, TaskScheduler.Default);
            var tally = ChaosTally.Of(publishers, subs);
            Report($"sigterm [{provider}] sessions={subs.Count} on_leaving_node={onLeaving} acknowledged={tally.Acknowledged} lost={tally.Lost} duplicates={tally.Duplicates} out_of_order={tally.OutOfOrder} " +
                $"leave={stopped}s publisher_retries={publishers.Sum(p => p.Retries)} subscriber_disconnects={subs.Sum(s => s.Disconnects)}");
            Assert.True(tally.Lost == 0, tally.Detail + "\n" + cluster.Logs);
            // Which messages came twice, to which sessions, and what the nodes logged: a graceful leave must not duplicate.
            Assert.True(tally.Duplicates == 0, $"{tally.Duplicates} duplicates\n{tally.Detail}\n{cluster.Logs}");
            Assert.Equal(0, tally.OutOfOrder);
            Assert.All(subs, s => Assert.Equal(0, s.Disconnects));
            Assert.Equal(0, publishers.Sum(p => p.Retries));
            foreach (var node in cluster.Live)
            {
                await Wait.UntilAsync(() => Admin.ListsAllAsync(node, run, ids, connected: true), TimeSpan.FromSeconds(30), $"{node.Name} to list every session");
            }
        }
        finally
        {
            foreach (var s in subs)
            {
                await s.DisposeAsync();
            }
        }
    }

    /// <summary>Longer than the failure detector (3 s) and the split brain resolver (2 s) allow together.</summary>
    private static readonly TimeSpan Pause = TimeSpan.FromSeconds(12);

    /// <summary>
    /// A node stopped with SIGSTOP for longer than the failure detector allows, then resumed. Run on PostgreSQL only
    /// (see <see cref="ChaosTestsOnPostgres"/>), where nodes on several machines meet frozen VMs and long pauses, to
    /// keep the suite's time.
    /// </summary>
    protected async Task PausedNodeLosesNothingAndExitsWhenResumedAsync()
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var cluster = await ProcessCluster.StartAsync(db, 3);
        var run = Ids.New("pause");
        // Clients stay on node-1 and node-2; node-3 hosts sessions and is paused with SIGSTOP.
        var subs = new List<ChaosSubscriber>();
        try
        {
            var (onPaused, publishers, publishing) = await ClientsOnTwoNodesSessionsOnThirdAsync(cluster, run, subs);
            var ids = subs.Select(s => s.ClientId).ToList();

            var paused = cluster.Nodes[2]!;
            var sincePause = Stopwatch.StartNew();
            paused.Pause();
            double failover;
            try
            {
                await Wait.UntilAsync(() => Admin.AllAnswerAsync(cluster.Nodes[0]!, ids), TimeSpan.FromSeconds(60), "every session to answer on a survivor");
                failover = Clock.Seconds(sincePause);
                // The pause itself is the scenario: it lasts its full length whatever happens meanwhile.
                var left = Pause - sincePause.Elapsed;
                if (left > TimeSpan.Zero)
                {
                    await Task.Delay(left);
                }
            }
            finally
            {
                paused.Resume();
            }
            var sinceResume = Stopwatch.StartNew();
            // Downed while it was stopped: on waking it notices the gap (or learns it was downed) and exits with a
            // line that says why, for its supervisor to start it again.
            await Wait.UntilAsync(() => paused.HasExited, TimeSpan.FromSeconds(60), "the resumed node to exit");
            var exited = Clock.Seconds(sinceResume);
            Assert.True(paused.ExitCode == 2, $"exit code {paused.ExitCode}, log:\n{paused.Log}");
            Assert.True(paused.Log.Contains("longer than the cluster tolerates", StringComparison.Ordinal)
                || paused.Log.Contains("downed by the cluster", StringComparison.Ordinal), paused.Log);

            await Task.WhenAll(publishing);
            await Wait.UntilAsync(() => ChaosTally.Of(publishers, subs).Lost == 0, TimeSpan.FromSeconds(60), "every acknowledged message to arrive")
                .ContinueWith(_ => { }, TaskScheduler.Default);
            var tally = ChaosTally.Of(publishers, subs);
            // The paused node's sessions were taken over while it was stopped. If it acted as their owner on waking, its
            // journal writes were refused (a sequence number exists once) and so were their effects: counted, not asserted.
            var logs = cluster.Logs;
            var conflicts = CountOf(logs, "UNIQUE constraint failed") + CountOf(logs, "duplicate key value");
            Report($"sigstop [{provider}] pause={Pause.TotalSeconds}s sessions={subs.Count} on_paused_node={onPaused} acknowledged={tally.Acknowledged} lost={tally.Lost} " +
                $"duplicates={tally.Duplicates} out_of_order={tally.OutOfOrder} failover={failover}s exit_after_resume={exited}s stale_writes_refused={conflicts} " +
                $"subscriber_disconnects={subs.Sum(s => s.Disconnects)} publisher_retries={publishers.Sum(p => p.Retries)}");
            Assert.True(tally.Lost == 0, tally.Detail + "\n" + logs);
            Assert.Equal(0, tally.OutOfOrder);
            Assert.True(subs.All(s => s.SessionsLost == 0), string.Join("\n", subs.SelectMany(s => s.Events)) + "\n" + logs);
        }
        finally
        {
            foreach (var s in subs)
            {
                await s.DisposeAsync();
            }
        }
    }

    /// <summary>A client ID whose session the cluster places on node <paramref name="index"/> (a clean connection to it, then gone).</summary>
    private static async Task<string> IdHostedOnAsync(ProcessCluster cluster, string prefix, int index)
    {
        var node = $"node-{index + 1}";
        for (var i = 0; i < 60; i++)
        {
            var id = prefix + i;
            await using var probe = await TestClient.ConnectAsync(cluster.Nodes[index]!.MqttPort, id);
            if ((await HostsAsync(cluster.Nodes[0]!, [id])).GetValueOrDefault(id) == node)
            {
                return id;
            }
        }
        throw new InvalidOperationException($"no client ID of 60 placed its session on {node}");
    }

    /// <summary>
    /// A network partition between node processes, not a crash: node-3 is cut off from node-1 and node-2 (relays in front
    /// of their remoting hold every byte both ways), while clients and the database still reach every node. So node-3
    /// keeps running its sessions, and a witness (a client of node-3 whose session is on node-3, and a publisher on
    /// node-3 writing to it alone) keeps getting messages acknowledged there, each written to the session's journal.
    /// The minority must stop those sessions before the majority starts them: the majority's incarnation of a session
    /// writes to the same journal as soon as it starts (its connection on node-3 is gone), so two owners at once would
    /// show as a refused write (a journal takes each sequence number once). Then node-3 exits with code 2 and a line that
    /// says why, every message it acknowledged reaches the witness on the majority, the clients of node-1 and node-2
    /// lose nothing and are not disconnected, and node-3 started again after the partition heals joins cleanly.
    /// </summary>
    protected async Task PartitionedNodeStopsItsSessionsBeforeTheMajorityStartsThemAsync()
    {
        var total = Stopwatch.StartNew();
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var links = new RemotingLinks(3);
        await using var cluster = await ProcessCluster.StartAsync(db, 3, links);
        var run = Ids.New("partition");
        var subs = new List<ChaosSubscriber>();
        ChaosSubscriber? witness = null;
        try
        {
            var (onIsolated, publishers, publishing) = await ClientsOnTwoNodesSessionsOnThirdAsync(cluster, run, subs);
            var ids = subs.Select(s => s.ClientId).ToList();

            var isolated = cluster.Nodes[2]!;
            var witnessId = await IdHostedOnAsync(cluster, run + "-w", 2);
            var witnessPorts = new LivePorts();
            witnessPorts.Set([isolated.MqttPort]);
            witness = new ChaosSubscriber(witnessId, MqttProtocolVersion.V500, witnessPorts);
            await witness.StartAsync(isolated.MqttPort, run + "-w/m");
            var witnessPublisher = new ChaosPublisher(run + "-wp", run + "-w/m", MqttQualityOfServiceLevel.AtLeastOnce, witnessPorts);
            using var witnessStop = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            var witnessPublishing = witnessPublisher.RunAsync(100_000, TimeSpan.FromMilliseconds(10), witnessStop.Token);
            await Wait.UntilAsync(() => witnessPublisher.Acked.Count >= 20, TimeSpan.FromSeconds(30), "the witness publisher to start");
            // Where the publishers' own sessions live, for the failure message should a publisher stall.
            var publisherHosts = await HostsAsync(cluster.Nodes[0]!, publishers.Select(p => p.Name));

            var beforeCut = Clock.Seconds(total);
            var sinceCut = Stopwatch.StartNew();
            var ackedAtCut = witnessPublisher.Acked.Count;
            links.Isolate(2);
            // The witness comes back on the majority once node-3 is gone; until then its connection to node-3 stays.
            witnessPorts.Set([cluster.Nodes[0]!.MqttPort, cluster.Nodes[1]!.MqttPort]);
            await Wait.UntilAsync(() => Admin.AllAnswerAsync(cluster.Nodes[0]!, ids), TimeSpan.FromSeconds(60), "every session to answer on the majority");
            var failover = Clock.Seconds(sinceCut);
            await Wait.UntilAsync(() => isolated.HasExited, TimeSpan.FromSeconds(60), "the isolated node to exit");
            var exited = Clock.Seconds(sinceCut);
            var ackedByIsolated = witnessPublisher.Acked.Count;
            await witnessStop.CancelAsync();
            await witnessPublishing.ContinueWith(_ => { }, TaskScheduler.Default);
            Assert.Equal(2, isolated.ExitCode);
            // Downed by its own resolver; on a starved machine its pause detector may see the stall first. Either way it
            // says why, for its supervisor to start it again.
            Assert.True(isolated.Log.Contains("downed by the cluster", StringComparison.Ordinal)
                || isolated.Log.Contains("longer than the cluster tolerates", StringComparison.Ordinal), isolated.Log);

            await Task.WhenAll(publishing).ContinueWith(t => Assert.True(t.IsCompletedSuccessfully,
                $"a publisher did not finish: {t.Exception?.GetBaseException().Message}; publisher sessions on " +
                $"{string.Join(", ", publisherHosts.Select(h => $"{h.Key}={h.Value}"))}; acknowledged " +
                $"{string.Join(", ", publishers.Select(p => $"{p.Name}={p.Acked.Count}"))}\n{cluster.Logs}\n--- node-3\n{isolated.Log}"),
                TaskScheduler.Default);
            var published = Clock.Seconds(sinceCut);
            var everyone = subs.Append(witness).ToList();
            await Wait.UntilAsync(() => ChaosTally.Of(publishers, subs).Lost + ChaosTally.Of([witnessPublisher], [witness]).Lost == 0,
                TimeSpan.FromSeconds(60), "every acknowledged message to arrive").ContinueWith(_ => { }, TaskScheduler.Default);
            var tally = ChaosTally.Of(publishers, subs);
            var witnessTally = ChaosTally.Of([witnessPublisher], [witness]);
            var logs = cluster.Logs + "\n--- node-3\n" + isolated.Log;
            var refused = CountOf(logs, "UNIQUE constraint failed") + CountOf(logs, "duplicate key value");
            // The two decisions in the nodes' own logs (one clock): node-3 stopped its session region before the majority's
            // coordinator removed node-3, and the coordinator moves a removed node's shards only after the removal margin.
            var stopped = LogTime(isolated.Log, "session: Self downed, stopping ShardRegion");
            var removed = LogTime(cluster.Logs, "sessionCoordinator] Member removed");
            var lead = Math.Round((removed - stopped).TotalSeconds, 2);

            links.Heal();
            cluster.Nodes[2]!.Dispose();
            cluster.Nodes[2] = null;
            var sinceRestart = Stopwatch.StartNew();
            var back = await cluster.StartNodeAsync(2);
            await Wait.UntilAsync(() => Admin.ListsAllAsync(back, run, ids, connected: true), TimeSpan.FromSeconds(60), "the restarted node to list every session");
            var rejoined = Clock.Seconds(sinceRestart);
            var before = subs.Select(s => s.Received.Count).ToList();
            await using (var check = await TestClient.ConnectAsync(back.MqttPort, run + "-check"))
            {
                await check.PublishAsync(run + "/check", "check:0");
            }
            await Wait.UntilAsync(() => subs.Select((s, i) => s.Received.Count > before[i]).All(x => x), TimeSpan.FromSeconds(20), "a publish through the rejoined node to reach everyone");

            Report($"partition [{provider}] sessions={subs.Count} on_isolated_node={onIsolated} witness_acked_during_partition={ackedByIsolated - ackedAtCut} " +
                $"acknowledged={tally.Acknowledged + witnessTally.Acknowledged} lost={tally.Lost + witnessTally.Lost} duplicates={tally.Duplicates + witnessTally.Duplicates} " +
                $"failover={failover}s isolated_node_exit={exited}s sessions_stopped_before_removal={lead}s writes_refused={refused} " +
                $"subscriber_disconnects={subs.Sum(s => s.Disconnects)} rejoin={rejoined}s unidentified_links={links.Unidentified} " +
                $"before_cut={beforeCut}s publishers_done={published}s total={Clock.Seconds(total)}s");
            Assert.True(ackedByIsolated > ackedAtCut, "node-3 kept acknowledging the witness's messages while it was cut off");
            // The removal margin of cluster.hocon (akka.cluster.down-removal-margin).
            Assert.True(lead + 1.5 > 0, $"node-3 stopped its sessions {-lead} s after the majority removed it, later than the removal margin\n" + logs);
            Assert.True(refused == 0, "a session ran on both sides of the partition: its journal refused a write\n" + logs);
            Assert.True(tally.Lost == 0, tally.Detail + "\n" + logs);
            Assert.True(witnessTally.Lost == 0, "the witness lost messages node-3 acknowledged: " + witnessTally.Detail + "\n" + logs);
            Assert.Equal(0, tally.OutOfOrder + witnessTally.OutOfOrder);
            Assert.True(everyone.All(s => s.SessionsLost == 0), string.Join("\n", everyone.SelectMany(s => s.Events)) + "\n" + logs);
            // A failure of node-3 disconnects only node-3's clients: those of node-1 and node-2 kept their connections.
            Assert.True(subs.All(s => s.Disconnects == 0), string.Join("\n", subs.SelectMany(s => s.Events)) + "\n" + logs);
        }
        finally
        {
            foreach (var s in subs)
            {
                await s.DisposeAsync();
            }
            if (witness is not null)
            {
                await witness.DisposeAsync();
            }
        }
    }

    /// <summary>The earliest time stamp of the log lines containing <paramref name="what"/> (the nodes share one clock).</summary>
    private static DateTime LogTime(string log, string what)
    {
        var stamps = log.Split('\n').Where(l => l.Contains(what, StringComparison.Ordinal))
            .Select(l => System.Text.RegularExpressions.Regex.Match(l, @"\[(\d\d/\d\d/\d{4} \d\d:\d\d:\d\d\.\d{3})Z\]"))
            .Where(m => m.Success)
            .Select(m => DateTime.ParseExact(m.Groups[1].Value, "MM/dd/yyyy HH:mm:ss.fff", System.Globalization.CultureInfo.InvariantCulture))
            .ToList();
        Assert.True(stamps.Count > 0, $"no time-stamped log line contains '{what}'");
        return stamps.Min();
    }

    private static int CountOf(string text, string what)
    {
        var count = 0;
        for (var i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + what.Length, StringComparison.Ordinal))
        {
            count++;
        }
        return count;
    }

    [Fact]
    public async Task Restarting_the_whole_cluster_keeps_every_persistent_session()
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var cluster = await ProcessCluster.StartAsync(db, 3);
        var run = Ids.New("restart");
        var ids = Enumerable.Range(0, Subscribers).Select(i => $"{run}-s{i}").ToList();
        MqttProtocolVersion VersionOf(int i) => i % 2 == 0 ? MqttProtocolVersion.V311 : MqttProtocolVersion.V500;
        for (var i = 0; i < ids.Count; i++)
        {
            await TestClient.LeaveOfflineSessionAsync(cluster.Nodes[i % 3]!.MqttPort, ids[i], run + "/#", VersionOf(i));
        }
        await using (var pub = await TestClient.ConnectAsync(cluster.Nodes[1]!.MqttPort, run + "-pub"))
        {
            for (var m = 0; m < 20; m++)
            {
                await pub.PublishAsync(run + "/offline", "m" + m, MqttQualityOfServiceLevel.AtLeastOnce);
            }
        }

        var sinceStop = Stopwatch.StartNew();
        for (var i = 2; i >= 0; i--)
        {
            Assert.True(cluster.Terminate(i, TimeSpan.FromSeconds(60)), $"node-{i + 1} exits after SIGTERM");
        }
        for (var i = 0; i < 3; i++)
        {
            await cluster.StartNodeAsync(i);
        }
        Report($"restart [{provider}] stop_and_start_all={Clock.Seconds(sinceStop)}s");

        for (var i = 0; i < ids.Count; i++)
        {
            // Each client comes back on a different node than before.
            await using var c = await TestClient.ConnectAsync(cluster.Nodes[(i + 1) % 3]!.MqttPort, ids[i], VersionOf(i), clean: false, sessionExpiry: 600);
            Assert.True(c.LastConnect!.IsSessionPresent, ids[i] + " kept its session");
            for (var m = 0; m < 20; m++)
            {
                Assert.Equal("m" + m, c.NextText());
            }
            await using (var pub = await TestClient.ConnectAsync(cluster.Nodes[i % 3]!.MqttPort, Ids.New("pub")))
            {
                await pub.PublishAsync(run + "/after", "after");
            }
            Assert.Equal("after", c.NextText());
        }
    }
}

[Collection(ClusterCollection.Name)]
public sealed class ChaosTestsOnSqlite(ITestOutputHelper output) : ChaosTests(output, "sqlite")
{
    [Fact]
    public Task A_partitioned_node_stops_its_sessions_before_the_majority_starts_them_and_loses_nothing() =>
        PartitionedNodeStopsItsSessionsBeforeTheMajorityStartsThemAsync();
}

[Collection(ClusterCollection.Name)]
public sealed class ChaosTestsOnPostgres(ITestOutputHelper output) : ChaosTests(output, "postgresql")
{
    [Fact]
    public Task A_node_paused_longer_than_the_failure_detector_allows_loses_nothing_and_exits_when_resumed() =>
        PausedNodeLosesNothingAndExitsWhenResumedAsync();
}
