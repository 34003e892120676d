using System.Buffers;
using System.Net.Http.Json;
using System.Text.Json;
using Akka.Actor;
using Broker.Actors.Messages;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using RabbitMQ.Client;

namespace Broker.Cluster.Tests;

/// <summary>What a client on one node sees of clients on the others. Every test runs on SQLite and on PostgreSQL.</summary>
public abstract class CrossNodeTests(ClusterFixture cluster)
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    [Theory]
    [InlineData(MqttQualityOfServiceLevel.AtMostOnce)]
    [InlineData(MqttQualityOfServiceLevel.AtLeastOnce)]
    [InlineData(MqttQualityOfServiceLevel.ExactlyOnce)]
    public async Task A_subscriber_on_one_node_receives_what_a_client_on_another_publishes(MqttQualityOfServiceLevel qos)
    {
        var topic = Ids.New("cross/t");
        await using var sub = await TestClient.ConnectAsync(cluster.Port(0), Ids.New("sub"));
        await sub.SubscribeAsync(topic, qos);
        await using var pub = await TestClient.ConnectAsync(cluster.Port(1), Ids.New("pub"), MqttProtocolVersion.V311);

        for (var i = 0; i < 5; i++)
        {
            await pub.PublishAsync(topic, "m" + i, qos);
        }

        for (var i = 0; i < 5; i++)
        {
            Assert.Equal("m" + i, sub.NextText());
        }
        sub.ExpectNothing(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Amqp_queues_declared_on_one_node_take_confirmed_publishes_from_another_and_deliver_on_a_third()
    {
        var queue = Ids.New("cross-q");
        var exchange = Ids.New("cross-x");
        // The publisher is ready on another node before anything is declared, so it publishes right after bind-ok.
        await using var publisher = await AmqpTestClient.ConnectAsync(cluster.Nodes[1].AmqpPort);
        await using var confirms = await publisher.ConfirmChannelAsync();
        await using var declarer = await AmqpTestClient.ConnectAsync(cluster.Nodes[0].AmqpPort);
        await using (var channel = await declarer.CreateChannelAsync())
        {
            await channel.ExchangeDeclareAsync(exchange, "topic", durable: true);
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
            await channel.QueueBindAsync(queue, exchange, "orders.#");
        }
        // The binding is known on every node once bind-ok came back: the first publish routes.
        for (var i = 0; i < 20; i++)
        {
            await confirms.PublishTextAsync(exchange, "orders.eu", "m" + i, persistent: true);
        }
        await using var consumerConnection = await AmqpTestClient.ConnectAsync(cluster.Nodes[2].AmqpPort);
        await using var consumerChannel = await consumerConnection.CreateChannelAsync();
        var consumer = new RecordingConsumer(consumerChannel);
        await consumerChannel.BasicConsumeAsync(queue, false, consumer);
        for (var i = 0; i < 20; i++)
        {
            var d = consumer.Next();
            Assert.Equal("m" + i, d.Text);
            await consumerChannel.BasicAckAsync(d.Tag, false);
        }
        await consumerChannel.QueueDeleteAsync(queue);
        await consumerChannel.ExchangeDeleteAsync(exchange);
    }

    [Fact]
    public async Task Queues_on_every_node_hear_from_a_closed_consumer_s_node_that_its_acks_are_in_before_requeueing_the_rest()
    {
        var prefix = Ids.New("drain") + ".";
        var queues = Enumerable.Range(0, 6).Select(i => prefix + i).ToArray();
        await using var declarer = await AmqpTestClient.ConnectAsync(cluster.Nodes[0].AmqpPort);
        await using var channel = await declarer.CreateChannelAsync();
        foreach (var queue in queues)
        {
            await channel.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: false);
            for (var i = 0; i < 4; i++)
            {
                await channel.PublishTextAsync("", queue, queue + "/" + i);
            }
        }
        using var admin = new HttpClient { BaseAddress = new Uri(cluster.Nodes[0].AdminUrl) };
        var hosts = (await QueueRows(admin, prefix)).Select(q => q.GetProperty("node").GetString()).Distinct().ToArray();
        Assert.Contains(hosts, h => h != cluster.Nodes[2].Name);

        // A consumer on node 2 takes everything and acknowledges every other delivery, then closes its connection.
        var drained = BrokerCounters.QueueDrained.Value;
        var timeouts = BrokerCounters.QueueDrainTimeouts.Value;
        var connection = await AmqpTestClient.ConnectAsync(cluster.Nodes[2].AmqpPort);
        var consumerChannel = await connection.CreateChannelAsync();
        await consumerChannel.BasicQosAsync(0, 100, false);
        var consumer = new RecordingConsumer(consumerChannel);
        foreach (var queue in queues)
        {
            await consumerChannel.BasicConsumeAsync(queue, false, consumer);
        }
        for (var i = 0; i < queues.Length * 4; i++)
        {
            var d = consumer.Next();
            if (i % 2 == 0)
            {
                await consumerChannel.BasicAckAsync(d.Tag, false);
            }
        }
        await connection.CloseAsync();
        await connection.DisposeAsync();

        // Each queue, wherever it runs, hears of the connection's end, sends its marker through node 2's queue region
        // and gets it back well within broker.amqp.drain-wait (5 s): none waits it out.
        await Wait.UntilAsync(() => BrokerCounters.QueueDrained.Value - drained >= queues.Length, TimeSpan.FromSeconds(4),
            "every queue's drain marker to come back through the consumer's node");
        Assert.Equal(timeouts, BrokerCounters.QueueDrainTimeouts.Value);
        await Wait.UntilAsync(async () => (await QueueRows(admin, prefix)).All(q =>
                q.GetProperty("messages_unacknowledged").GetInt32() == 0 && q.GetProperty("consumers").GetInt32() == 0),
            TimeSpan.FromSeconds(10), "the queues to let go of the closed connection");
        var rows = await QueueRows(admin, prefix);
        Assert.Equal(queues.Length * 2, rows.Sum(q => q.GetProperty("messages_ready").GetInt32()));
        foreach (var queue in queues)
        {
            await channel.QueueDeleteAsync(queue);
        }
    }

    private static async Task<List<JsonElement>> QueueRows(HttpClient admin, string prefix)
    {
        var body = await admin.GetFromJsonAsync<JsonElement>("/api/v1/amqp/queues?prefix=" + Uri.EscapeDataString(prefix));
        return [.. body.GetProperty("queues").EnumerateArray()];
    }

    [Fact]
    public async Task An_mqtt_subscriber_on_one_node_gets_what_an_amqp_client_on_another_publishes_to_amq_topic()
    {
        var root = Ids.New("bridge").Replace("-", "", StringComparison.Ordinal);
        await using var sub = await TestClient.ConnectAsync(cluster.Port(0), Ids.New("sub"));
        await sub.SubscribeAsync(root + "/+/temp");
        await using var connection = await AmqpTestClient.ConnectAsync(cluster.Nodes[2].AmqpPort);
        await using var channel = await connection.ConfirmChannelAsync();
        await channel.PublishTextAsync("amq.topic", root + ".kitchen.temp", "21", persistent: true);
        var m = sub.Next();
        Assert.Equal(root + "/kitchen/temp", m.Topic);
        Assert.Equal(MqttQualityOfServiceLevel.AtLeastOnce, m.QualityOfServiceLevel);
    }

    [Fact]
    public async Task A_retained_message_published_on_one_node_reaches_a_subscriber_on_another()
    {
        var topic = Ids.New("cross/retained");
        await using (var pub = await TestClient.ConnectAsync(cluster.Port(2), Ids.New("pub")))
        {
            await pub.PublishAsync(topic, "kept", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);
        }

        await using var sub = await TestClient.ConnectAsync(cluster.Port(0), Ids.New("sub"));
        await sub.SubscribeAsync(topic);

        var m = sub.Next();
        Assert.True(m.Retain);
        Assert.Equal("kept", System.Text.Encoding.UTF8.GetString(m.Payload.ToArray()));
    }

    [Fact]
    public async Task A_will_of_a_client_on_one_node_reaches_a_subscriber_on_another()
    {
        var topic = Ids.New("cross/will");
        await using var sub = await TestClient.ConnectAsync(cluster.Port(0), Ids.New("sub"));
        await sub.SubscribeAsync(topic);
        var dying = await TestClient.ConnectAsync(cluster.Port(1), Ids.New("dying"), configure: b => b.WithWillTopic(topic).WithWillPayload("gone").WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce));

        await dying.Client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(MqttClientDisconnectOptionsReason.DisconnectWithWillMessage).Build());
        dying.Client.Dispose();

        Assert.Equal("gone", sub.NextText());
    }

    [Fact]
    public async Task A_shared_subscription_spanning_nodes_gives_each_message_to_exactly_one_member()
    {
        var topic = Ids.New("cross/shared");
        var group = "$share/" + Ids.New("g") + "/" + topic;
        await using var a = await TestClient.ConnectAsync(cluster.Port(0), Ids.New("member-a"));
        await using var b = await TestClient.ConnectAsync(cluster.Port(1), Ids.New("member-b"), MqttProtocolVersion.V500);
        await a.SubscribeAsync(group);
        await b.SubscribeAsync(group);
        await using var pub = await TestClient.ConnectAsync(cluster.Port(2), Ids.New("pub"));

        const int count = 20;
        for (var i = 0; i < count; i++)
        {
            await pub.PublishAsync(topic, "m" + i);
        }

        var received = new List<string>();
        await Wait.UntilAsync(() => a.ReceivedCount + b.ReceivedCount >= count, TimeSpan.FromSeconds(10), "every shared message");
        while (a.ReceivedCount > 0)
        {
            received.Add(a.NextText());
        }
        var toA = received.Count;
        while (b.ReceivedCount > 0)
        {
            received.Add(b.NextText());
        }
        Assert.Equal(Enumerable.Range(0, count).Select(i => "m" + i).Order(), received.Order());
        Assert.InRange(toA, 1, count - 1);
        a.ExpectNothing(TimeSpan.FromMilliseconds(200));
        b.ExpectNothing(TimeSpan.FromMilliseconds(1));
    }

    [Theory]
    [InlineData(MqttQualityOfServiceLevel.AtMostOnce)]
    [InlineData(MqttQualityOfServiceLevel.AtLeastOnce)]
    public async Task A_message_for_many_sessions_on_other_nodes_crosses_to_each_node_once_and_reaches_every_subscriber_in_order(MqttQualityOfServiceLevel qos)
    {
        await SessionShardsOnEveryNodeAsync();
        var topic = Ids.New("cross/fan");
        var subscribers = new List<TestClient>();
        try
        {
            for (var i = 0; i < 16; i++)
            {
                var sub = await TestClient.ConnectAsync(cluster.Port(0), Ids.New("fan-sub"));
                subscribers.Add(sub);
                await sub.SubscribeAsync(topic, qos);
            }
            // A SUBACK means every node routes the subscription, and so knows which node hosts the session.
            var hosts = cluster.Nodes[1].Node.Hosts;
            var remote = subscribers.Select(s => hosts.FanOutFor(s.ClientId)).OfType<IActorRef>().ToList();
            var remoteNodes = remote.Distinct().Count();
            Assert.True(remote.Count > remoteNodes, $"16 sessions over three nodes: {remote.Count} on {remoteNodes} other nodes than the publisher's");
            var batches = hosts.BatchesSent.Value;
            var batched = hosts.DeliveriesBatched.Value;
            await using var pub = await TestClient.ConnectAsync(cluster.Port(1), Ids.New("fan-pub"), MqttProtocolVersion.V311);

            for (var i = 0; i < 10; i++)
            {
                await pub.PublishAsync(topic, "m" + i, qos);
            }

            foreach (var sub in subscribers)
            {
                for (var i = 0; i < 10; i++)
                {
                    Assert.Equal("m" + i, sub.NextText());
                }
            }
            // Counted on the publisher's node: at most one message per other node per publish, each carrying several
            // sessions on average. (Bounds, not exact counts: rebalancing may still move a shard during the test.)
            var nodeMessages = hosts.BatchesSent.Value - batches;
            var carried = hosts.DeliveriesBatched.Value - batched;
            Assert.InRange(nodeMessages, 10, 10 * (cluster.Nodes.Count - 1));
            Assert.True(carried > nodeMessages, $"{carried} deliveries in {nodeMessages} node messages");
        }
        finally
        {
            foreach (var sub in subscribers)
            {
                await sub.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task The_same_client_id_on_another_node_takes_the_session_over()
    {
        var id = Ids.New("roamer");
        var topic = Ids.New("cross/takeover");
        var first = await TestClient.ConnectAsync(cluster.Port(0), id, clean: false, sessionExpiry: 600);
        MqttClientDisconnectedEventArgs? reason = null;
        first.Client.DisconnectedAsync += e =>
        {
            reason = e;
            return Task.CompletedTask;
        };
        await first.SubscribeAsync(topic);

        await using var second = await TestClient.ConnectAsync(cluster.Port(1), id, clean: false, sessionExpiry: 600);

        Assert.True(second.LastConnect!.IsSessionPresent);
        await Wait.UntilAsync(() => reason is not null, TimeSpan.FromSeconds(10), "the first connection to close");
        Assert.Equal(MqttClientDisconnectReason.SessionTakenOver, reason!.Reason);
        await using var pub = await TestClient.ConnectAsync(cluster.Port(2), Ids.New("pub"));
        await pub.PublishAsync(topic, "to the new connection");
        Assert.Equal("to the new connection", second.NextText());
        first.Client.Dispose();
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public async Task An_offline_session_collects_messages_from_any_node_and_delivers_them_on_a_third(MqttProtocolVersion version)
    {
        var id = Ids.New("offline");
        var topic = Ids.New("cross/offline");
        await TestClient.LeaveOfflineSessionAsync(cluster.Port(0), id, topic, version);
        await using (var pub = await TestClient.ConnectAsync(cluster.Port(1), Ids.New("pub")))
        {
            for (var i = 0; i < 5; i++)
            {
                await pub.PublishAsync(topic, "q" + i);
            }
        }

        await using var back = await TestClient.ConnectAsync(cluster.Port(2), id, version, clean: false, sessionExpiry: 600);

        Assert.True(back.LastConnect!.IsSessionPresent);
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal("q" + i, back.NextText());
        }
    }

    /// <summary>
    /// The first node starts with every session shard (its start-up probes allocate them) and rebalancing spreads them
    /// over the others a few at a time: waits until each node hosts some, so that sessions land on several nodes.
    /// </summary>
    private async Task SessionShardsOnEveryNodeAsync()
    {
        var region = Akka.Cluster.Sharding.ClusterSharding.Get(cluster.Nodes[0].Node.System).ShardRegion(Broker.Actors.BrokerServices.SessionTypeName);
        await Wait.UntilAsync(async () =>
        {
            var stats = await region.Ask<Akka.Cluster.Sharding.ClusterShardingStats>(
                new Akka.Cluster.Sharding.GetClusterShardingStats(TimeSpan.FromSeconds(3)), TimeSpan.FromSeconds(5));
            // Rebalancing moves a few shards at a time: wait until each node has at least half its fair share, so
            // that new sessions cannot all hash to the node that started with every shard.
            var counts = stats.Regions.Values.Select(r => r.Stats.Count).ToList();
            return counts.Count == cluster.Nodes.Count && counts.Min() * counts.Count * 2 >= counts.Sum();
        }, TimeSpan.FromSeconds(60), "session shards spread over every node");
    }

    [Fact]
    public async Task Any_node_pages_through_every_session_of_the_cluster_exactly_once()
    {
        await SessionShardsOnEveryNodeAsync();
        var prefix = Ids.New("page") + "-";
        var ids = Enumerable.Range(0, 24).Select(i => prefix + i.ToString("D2", System.Globalization.CultureInfo.InvariantCulture)).ToList();
        var clients = new List<TestClient>();
        try
        {
            for (var i = 0; i < ids.Count; i++)
            {
                clients.Add(await TestClient.ConnectAsync(cluster.Port(i % 3), ids[i], clean: false, sessionExpiry: 600));
            }

            foreach (var node in cluster.Nodes)
            {
                var seen = new List<string>();
                string? token = null;
                do
                {
                    var url = $"{node.AdminUrl}/api/v1/sessions?prefix={prefix}&limit=5" + (token is null ? "" : "&page_token=" + token);
                    using var doc = JsonDocument.Parse(await Http.GetStringAsync(url));
                    Assert.False(doc.RootElement.TryGetProperty("unreachable_nodes", out var missing) && missing.GetArrayLength() > 0);
                    seen.AddRange(doc.RootElement.GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("client_id").GetString()!));
                    token = doc.RootElement.TryGetProperty("next_page_token", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() != "" ? t.GetString() : null;
                }
                while (token is not null);
                Assert.Equal(ids, seen);
            }

            var hosts = new HashSet<string>();
            foreach (var id in ids)
            {
                var answers = new List<string>();
                foreach (var node in cluster.Nodes)
                {
                    var detail = await Http.GetFromJsonAsync<JsonElement>($"{node.AdminUrl}/api/v1/sessions/{id}");
                    Assert.Equal(id, detail.GetProperty("client_id").GetString());
                    Assert.True(detail.GetProperty("connected").GetBoolean());
                    answers.Add(detail.GetProperty("node").GetString()!);
                }
                Assert.Single(answers.Distinct());
                hosts.Add(answers[0]);
            }
            Assert.True(hosts.IsSubsetOf(cluster.Nodes.Select(n => n.Name)));
            Assert.True(hosts.Count > 1, "sessions spread over more than one node");
        }
        finally
        {
            foreach (var c in clients)
            {
                await c.DisposeAsync();
            }
        }
    }
}

[Collection(ClusterCollection.Name)]
public sealed class CrossNodeTestsOnSqlite(SqliteCluster cluster) : CrossNodeTests(cluster), IClassFixture<SqliteCluster>;

[Collection(ClusterCollection.Name)]
public sealed class CrossNodeTestsOnPostgres(PostgresCluster cluster) : CrossNodeTests(cluster), IClassFixture<PostgresCluster>;
