using System.Diagnostics;
using Broker.Tests.Shared;
using RabbitMQ.Client;
using Xunit.Abstractions;

namespace Broker.Cluster.Tests;

/// <summary>
/// Three node processes of the built executable; durable queues bound to a durable topic exchange, manual-ack
/// consumers spread over the nodes, and a confirmed persistent publisher; then a node is killed or leaves. Each
/// test prints a "chaos:" line with what it measured. Runs on SQLite and on PostgreSQL.
/// <para>
/// Every confirmed message must reach a consumer of each of its queues; duplicates are counted, not refused (a
/// delivery whose acknowledgement died with a connection or a queue entity comes again). Order: a queue delivers
/// in the order messages reached it, and the publisher keeps up to <see cref="Window"/> publishes unconfirmed, so a
/// publish that the broker had to send again (dropped while its queue moved) can arrive after later ones. What must
/// hold is that a consumer never gets a message after a later one unless it is flagged redelivered or may have been
/// sent again: unconfirmed while the node failed or left, or confirmed only after the broker's first resend.
/// </para>
/// </summary>
public abstract class AmqpChaosTests(ITestOutputHelper output, string provider)
{
    private const int Queues = 4;
    private const ushort Prefetch = 50;
    private const int Messages = 3000;
    private const int Window = 100;
    private static readonly TimeSpan PublishInterval = TimeSpan.FromMilliseconds(5);

    private void Report(string line)
    {
        output.WriteLine("chaos: " + line);
        Console.WriteLine("chaos: " + line);
    }

    /// <summary>Message n goes to two queues, n % 4 and (n + 1) % 4, so each confirm waits for two queue entities.</summary>
    private static string RoutingKey(int n) => $"{n % Queues}.{(n + 1) % Queues}";

    private static IEnumerable<int> QueuesOf(int n) => [n % Queues, (n + 1) % Queues];

    /// <summary>The exchange and the queues, declared through <paramref name="port"/>: queue i takes keys "i.*" and "*.i".</summary>
    private static async Task<List<string>> DeclareAsync(int port, string run)
    {
        var queues = Enumerable.Range(0, Queues).Select(i => $"{run}-q{i}").ToList();
        await using var connection = await AmqpTestClient.ConnectAsync(port, run + "-declare");
        await using var channel = await connection.CreateChannelAsync();
        await channel.ExchangeDeclareAsync(run, ExchangeType.Topic, durable: true);
        for (var i = 0; i < Queues; i++)
        {
            await channel.QueueDeclareAsync(queues[i], durable: true, exclusive: false, autoDelete: false);
            await channel.QueueBindAsync(queues[i], run, $"{i}.*");
            await channel.QueueBindAsync(queues[i], run, $"*.{i}");
        }
        return queues;
    }

    private void Dump(IEnumerable<AmqpChaosConsumer> consumers, AmqpChaosPublisher publisher)
    {
        foreach (var c in consumers)
        {
            var got = c.Received.ToArray();
            output.WriteLine($"{c.Name} ({c.Queue}): {got.Length} deliveries, {got.Length - got.Select(r => r.Seq).Distinct().Count()} repeated, {got.Count(r => r.Redelivered)} redelivered");
        }
        foreach (var e in consumers.SelectMany(c => c.Events).Concat(publisher.Events).Order(StringComparer.Ordinal))
        {
            output.WriteLine(e);
        }
    }

    /// <summary>Consumers as (queue, node); <paramref name="reconnectTo"/> are the AMQP ports a consumer reconnects to.</summary>
    private static List<AmqpChaosConsumer> Consumers(string run, List<string> queues, (int Queue, int Node)[] placement, LivePorts reconnectTo) =>
        [.. placement.Select((p, i) => new AmqpChaosConsumer($"{run}-c{i}", queues[p.Queue], reconnectTo, Prefetch))];

    private static LivePorts Ports(ProcessCluster cluster, params int[] nodes)
    {
        var ports = new LivePorts();
        ports.Set(nodes.Select(n => cluster.Nodes[n]!.AmqpPort));
        return ports;
    }

    private void Failed(ProcessCluster cluster, string run, IEnumerable<AmqpChaosConsumer> consumers, AmqpChaosPublisher publisher)
    {
        Dump(consumers, publisher);
        output.WriteLine($"confirmed {publisher.Confirmed.Count}");
        var file = Path.Combine(Path.GetTempPath(), run + ".log");
        File.WriteAllText(file, cluster.Logs);
        output.WriteLine("node logs in " + file);
    }

    [Fact]
    public async Task Killing_a_node_loses_no_confirmed_amqp_message_and_the_node_rejoins()
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var cluster = await ProcessCluster.StartAsync(db, 3);
        var run = Ids.New("amqp-kill");
        var queues = await DeclareAsync(cluster.Nodes[1]!.AmqpPort, run);
        // Two consumers on node-1, which is killed; queues 0 and 2 have two consumers each.
        (int Queue, int Node)[] placement = [(0, 0), (1, 1), (2, 2), (3, 0), (0, 2), (2, 1)];
        var consumers = Consumers(run, queues, placement, Ports(cluster, 1, 2));
        var onVictim = consumers.Where((_, i) => placement[i].Node == 0).ToList();
        var publisher = new AmqpChaosPublisher(run + "-pub", run, RoutingKey, Ports(cluster, 1), Window);
        try
        {
            for (var i = 0; i < consumers.Count; i++)
            {
                await consumers[i].StartAsync(cluster.Nodes[placement[i].Node]!.AmqpPort);
            }
            using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            var publishing = publisher.RunAsync(Messages, PublishInterval, deadline.Token);
            await Wait.UntilAsync(() => publisher.Confirmed.Count >= Messages / 4 || publishing.IsCompleted, TimeSpan.FromSeconds(60), "a quarter of the messages to be confirmed");
            Assert.False(publishing.IsCompleted, $"the publisher stopped early: {publishing.Exception}");

            // node-1 is the oldest member: it runs the shard coordinators, and likely the topology owner.
            var killedAt = Stopwatch.GetTimestamp();
            var sinceKill = Stopwatch.StartNew();
            cluster.Kill(0);
            await Wait.UntilAsync(() => onVictim.All(c => c.Reconnects > 0) && consumers.All(c => c.IsConsuming), TimeSpan.FromSeconds(60), "every consumer to consume again");
            var consumersBack = Clock.Seconds(sinceKill);
            await publishing;
            var streamDone = Clock.Seconds(sinceKill);
            var confirmed = publisher.Confirmed.ToDictionary();
            var inFlight = InFlightAtFault(publisher, killedAt, killedAt);
            await Wait.UntilAsync(() => AmqpChaosTally.Of(confirmed, QueuesOf, consumers, queues, inFlight).Lost == 0, TimeSpan.FromSeconds(30), "every confirmed message to arrive")
                .ContinueWith(_ => { }, TaskScheduler.Default);
            Dump(consumers, publisher);
            var tally = AmqpChaosTally.Of(confirmed, QueuesOf, consumers, queues, inFlight);
            Report($"amqp-sigkill [{provider}] queues={Queues} consumers={consumers.Count} on_killed_node={onVictim.Count} confirmed={tally.Confirmed} lost={tally.Lost} " +
                $"duplicates={tally.Duplicates} redelivered={tally.Redelivered} reordered={tally.Reordered} recovery={RecoverySeconds(publisher, killedAt)}s " +
                $"consumers_back={consumersBack}s stream_done={streamDone}s slowest_confirm={SlowestConfirm(publisher)}s " +
                $"publisher_retries={publisher.Retries} consumer_reconnects={consumers.Sum(c => c.Reconnects)}");
            Assert.Equal(Messages, tally.Confirmed);
            Assert.True(tally.Lost == 0, tally.Detail);
            Assert.True(tally.ReorderedPromptly == 0, tally.Detail);

            // The node comes back, takes part again (shards rebalance onto it), and AMQP works through it.
            var sinceStart = Stopwatch.StartNew();
            var back = await cluster.StartNodeAsync(0);
            await using (var connection = await AmqpTestClient.ConnectAsync(back.AmqpPort, run + "-check"))
            await using (var channel = await connection.ConfirmChannelAsync())
            {
                for (var i = 0; i < Queues; i++)
                {
                    // "i.i" reaches queue i only.
                    await channel.PublishTextAsync(run, $"{i}.{i}", (Messages + i).ToString(System.Globalization.CultureInfo.InvariantCulture), persistent: true);
                }
            }
            await Wait.UntilAsync(() => Enumerable.Range(0, Queues).All(q => consumers.Any(c => c.Queue == queues[q] && c.Received.Any(r => r.Seq == Messages + q))),
                TimeSpan.FromSeconds(30), "a publish through the rejoined node to reach every queue's consumers");
            // The topology takes changes through it, and a consumer on it gets what is published there.
            await using (var connection = await AmqpTestClient.ConnectAsync(back.AmqpPort, run + "-after"))
            await using (var channel = await connection.ConfirmChannelAsync())
            {
                await channel.QueueDeclareAsync(run + "-after", durable: true, exclusive: false, autoDelete: false);
                await channel.QueueBindAsync(run + "-after", run, "after");
                var consumer = new RecordingConsumer(channel);
                await channel.BasicConsumeAsync(run + "-after", false, consumer);
                await channel.PublishTextAsync(run, "after", "after the rejoin", persistent: true);
                var d = consumer.Next(TimeSpan.FromSeconds(20));
                Assert.Equal("after the rejoin", d.Text);
                await channel.BasicAckAsync(d.Tag, false);
            }
            Report($"amqp-rejoin [{provider}] ready_and_delivering={Clock.Seconds(sinceStart)}s");
        }
        catch
        {
            Failed(cluster, run, consumers, publisher);
            throw;
        }
        finally
        {
            foreach (var c in consumers)
            {
                await c.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_node_leaving_with_sigterm_loses_no_confirmed_amqp_message()
    {
        await using var db = await TestDatabase.CreateAsync(provider);
        await using var cluster = await ProcessCluster.StartAsync(db, 3);
        var run = Ids.New("amqp-leave");
        var queues = await DeclareAsync(cluster.Nodes[1]!.AmqpPort, run);
        // Two consumers on node-3, which leaves; the others and the publisher stay on node-1 and node-2.
        (int Queue, int Node)[] placement = [(0, 0), (1, 1), (2, 2), (3, 2), (0, 1), (2, 0)];
        var consumers = Consumers(run, queues, placement, Ports(cluster, 0, 1));
        var onLeaving = consumers.Where((_, i) => placement[i].Node == 2).ToList();
        var publisher = new AmqpChaosPublisher(run + "-pub", run, RoutingKey, Ports(cluster, 1), Window);
        try
        {
            for (var i = 0; i < consumers.Count; i++)
            {
                await consumers[i].StartAsync(cluster.Nodes[placement[i].Node]!.AmqpPort);
            }
            using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            var publishing = publisher.RunAsync(Messages, PublishInterval, deadline.Token);
            await Wait.UntilAsync(() => publisher.Confirmed.Count >= Messages / 4 || publishing.IsCompleted, TimeSpan.FromSeconds(60), "a quarter of the messages to be confirmed");
            Assert.False(publishing.IsCompleted, $"the publisher stopped early: {publishing.Exception}");

            var stoppedAt = Stopwatch.GetTimestamp();
            var sinceStop = Stopwatch.StartNew();
            Assert.True(cluster.Terminate(2, TimeSpan.FromSeconds(60)), "node-3 exits after SIGTERM");
            var goneAt = Stopwatch.GetTimestamp();
            var left = Clock.Seconds(sinceStop);
            await Wait.UntilAsync(() => onLeaving.All(c => c.Reconnects > 0) && consumers.All(c => c.IsConsuming), TimeSpan.FromSeconds(60), "every consumer to consume again");
            var consumersBack = Clock.Seconds(sinceStop);
            await publishing;
            var confirmed = publisher.Confirmed.ToDictionary();
            var inFlight = InFlightAtFault(publisher, stoppedAt, goneAt);
            await Wait.UntilAsync(() => AmqpChaosTally.Of(confirmed, QueuesOf, consumers, queues, inFlight).Lost == 0, TimeSpan.FromSeconds(30), "every confirmed message to arrive")
                .ContinueWith(_ => { }, TaskScheduler.Default);
            Dump(consumers, publisher);
            var tally = AmqpChaosTally.Of(confirmed, QueuesOf, consumers, queues, inFlight);
            Report($"amqp-sigterm [{provider}] queues={Queues} consumers={consumers.Count} on_leaving_node={onLeaving.Count} confirmed={tally.Confirmed} lost={tally.Lost} " +
                $"duplicates={tally.Duplicates} redelivered={tally.Redelivered} reordered={tally.Reordered} leave={left}s consumers_back={consumersBack}s " +
                $"slowest_confirm={SlowestConfirm(publisher)}s publisher_retries={publisher.Retries} consumer_reconnects={consumers.Sum(c => c.Reconnects)}");
            Assert.Equal(Messages, tally.Confirmed);
            Assert.True(tally.Lost == 0, tally.Detail);
            Assert.True(tally.ReorderedPromptly == 0, tally.Detail);
            // Only the clients of the leaving node notice it.
            Assert.Equal(0, publisher.Retries);
            Assert.All(consumers.Except(onLeaving), c => Assert.Equal(0, c.Reconnects));
        }
        catch
        {
            Failed(cluster, run, consumers, publisher);
            throw;
        }
        finally
        {
            foreach (var c in consumers)
            {
                await c.DisposeAsync();
            }
        }
    }

    private static double SlowestConfirm(AmqpChaosPublisher publisher) => Math.Round(publisher.Confirmed.Values.Max() / 1000.0, 1);

    /// <summary>Seconds from <paramref name="since"/> until every queue had confirmed a message published after it.</summary>
    private static double RecoverySeconds(AmqpChaosPublisher publisher, long since)
    {
        var recovered = RecoveredAt(publisher, since);
        return recovered == long.MaxValue ? double.NaN : Math.Round(Stopwatch.GetElapsedTime(since, recovered).TotalSeconds, 1);
    }

    /// <summary>When every queue had confirmed a message published after <paramref name="since"/>, as a <see cref="Stopwatch"/> timestamp.</summary>
    private static long RecoveredAt(AmqpChaosPublisher publisher, long since) =>
        Enumerable.Range(0, Queues).Select(q => publisher.Times
            .Where(t => t.Value.Published > since && QueuesOf(t.Key).Contains(q))
            .Select(t => t.Value.Confirmed)
            .DefaultIfEmpty(long.MaxValue)
            .Min()).Max();

    /// <summary>
    /// Messages the broker may have had to send to their queue again because of the fault: still unconfirmed when it
    /// began (<paramref name="faultAt"/>), and published before the node was gone (<paramref name="goneAt"/>) and
    /// every queue confirmed again. A message confirmed before the fault, or published after it was over, keeps its order.
    /// </summary>
    private static Func<int, bool> InFlightAtFault(AmqpChaosPublisher publisher, long faultAt, long goneAt)
    {
        var over = Math.Max(goneAt, RecoveredAt(publisher, faultAt));
        var times = publisher.Times.ToDictionary();
        return seq => times.TryGetValue(seq, out var t) && t.Confirmed >= faultAt && t.Published <= over;
    }
}

[Collection(ClusterCollection.Name)]
public sealed class AmqpChaosTestsOnSqlite(ITestOutputHelper output) : AmqpChaosTests(output, "sqlite");

[Collection(ClusterCollection.Name)]
public sealed class AmqpChaosTestsOnPostgres(ITestOutputHelper output) : AmqpChaosTests(output, "postgresql");
