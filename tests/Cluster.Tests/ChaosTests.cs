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
            Assert.Equal(0, tally.Duplicates);
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
            Assert.Equal(2, paused.ExitCode);
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
public sealed class ChaosTestsOnSqlite(ITestOutputHelper output) : ChaosTests(output, "sqlite");

[Collection(ClusterCollection.Name)]
public sealed class ChaosTestsOnPostgres(ITestOutputHelper output) : ChaosTests(output, "postgresql")
{
    [Fact]
    public Task A_node_paused_longer_than_the_failure_detector_allows_loses_nothing_and_exits_when_resumed() =>
        PausedNodeLosesNothingAndExitsWhenResumedAsync();
}
