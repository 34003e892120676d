using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Protocol;
using RabbitMQ.Client;

namespace Broker.Cluster.Tests;

/// <summary>
/// Messages of the largest size each protocol allows cross nodes whole: live, queued for an offline session,
/// retained (also more retained messages than one cluster frame holds) and through AMQP queues. Publisher
/// and subscriber sit on different nodes, so every message takes at least one hop between nodes.
/// </summary>
public abstract class LargeMessageTests(ClusterFixture cluster)
{
    private const int MaxPacketSize = 1048576;
    private const int AmqpMaxMessageSize = 16 * 1024 * 1024;

    /// <summary>Payload that makes an MQTT 5 QoS 1 PUBLISH exactly <see cref="MaxPacketSize"/> bytes on the wire.</summary>
    private static byte[] LargestPayload(string topic)
    {
        // fixed header (1 + 3 length bytes) + topic (2 + n) + packet id (2) + property length (1)
        var payload = new byte[MaxPacketSize - 4 - (2 + Encoding.UTF8.GetByteCount(topic)) - 2 - 1];
        RandomNumberGenerator.Fill(payload);
        return payload;
    }

    private static Task PublishAsync(TestClient client, string topic, byte[] payload, bool retain = false) =>
        client.Client.PublishAsync(new MqttApplicationMessageBuilder()
            .WithTopic(topic).WithPayload(payload).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag(retain).Build());

    private static void AssertPayload(byte[] expected, MqttApplicationMessage received) =>
        Assert.True(expected.AsSpan().SequenceEqual(received.Payload.ToArray()), $"payload of {received.Topic} differs ({received.Payload.Length} bytes)");

    [Fact]
    public async Task A_largest_mqtt_message_is_delivered_live_to_a_subscriber_on_another_node()
    {
        var topic = Ids.New("large/live");
        await using var sub = await TestClient.ConnectAsync(cluster.Port(0), Ids.New("sub"));
        await sub.SubscribeAsync(topic);
        await using var pub = await TestClient.ConnectAsync(cluster.Port(1), Ids.New("pub"));
        var payload = LargestPayload(topic);

        var result = await pub.Client.PublishAsync(new MqttApplicationMessageBuilder()
            .WithTopic(topic).WithPayload(payload).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

        Assert.True(result.IsSuccess, result.ReasonCode.ToString());
        AssertPayload(payload, sub.Next(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task A_largest_mqtt_message_queued_for_an_offline_session_is_delivered_on_a_third_node()
    {
        var topic = Ids.New("large/queued");
        var id = Ids.New("offline");
        await TestClient.LeaveOfflineSessionAsync(cluster.Port(0), id, topic);
        var payload = LargestPayload(topic);
        await using (var pub = await TestClient.ConnectAsync(cluster.Port(1), Ids.New("pub")))
        {
            await PublishAsync(pub, topic, payload);
        }

        await using var back = await TestClient.ConnectAsync(cluster.Port(2), id, clean: false, sessionExpiry: 600);

        Assert.True(back.LastConnect!.IsSessionPresent);
        AssertPayload(payload, back.Next(TimeSpan.FromSeconds(30)));
        await back.Client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithSessionExpiryInterval(0).Build());
    }

    [Fact]
    public async Task Retained_messages_larger_in_all_than_a_cluster_frame_reach_a_subscriber_on_another_node()
    {
        var root = Ids.New("large/retained");
        // 20 messages of 1 MiB: more than the 18 MiB frame between nodes, so the store answers in chunks.
        var topics = Enumerable.Range(0, 20).Select(i => $"{root}/{i:D2}").ToList();
        var payloads = topics.ToDictionary(t => t, LargestPayload);
        await using (var pub = await TestClient.ConnectAsync(cluster.Port(1), Ids.New("pub")))
        {
            foreach (var t in topics)
            {
                await PublishAsync(pub, t, payloads[t], retain: true);
            }
        }
        try
        {
            await using var sub = await TestClient.ConnectAsync(cluster.Port(0), Ids.New("sub"));
            await sub.SubscribeAsync(root + "/#");
            var received = new Dictionary<string, MqttApplicationMessage>();
            while (received.Count < topics.Count)
            {
                var m = sub.Next(TimeSpan.FromSeconds(30));
                Assert.True(m.Retain);
                received[m.Topic] = m;
            }
            foreach (var t in topics)
            {
                AssertPayload(payloads[t], received[t]);
            }
        }
        finally
        {
            await using var cleaner = await TestClient.ConnectAsync(cluster.Port(2), Ids.New("clean"));
            foreach (var t in topics)
            {
                await PublishAsync(cleaner, t, [], retain: true);
            }
        }
    }

    [Fact]
    public async Task A_largest_amqp_message_crosses_nodes_through_a_durable_queue()
    {
        var queue = Ids.New("large-q");
        await using var publisher = await AmqpTestClient.ConnectAsync(cluster.Nodes[1].AmqpPort);
        await using var confirms = await publisher.ConfirmChannelAsync();
        await confirms.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        var body = new byte[AmqpMaxMessageSize];
        RandomNumberGenerator.Fill(body);

        await confirms.BasicPublishAsync("", queue, true, new BasicProperties { DeliveryMode = DeliveryModes.Persistent }, body);

        await using var consumerConnection = await AmqpTestClient.ConnectAsync(cluster.Nodes[2].AmqpPort);
        await using var channel = await consumerConnection.CreateChannelAsync();
        var consumer = new RecordingConsumer(channel);
        await channel.BasicConsumeAsync(queue, false, consumer);
        var d = consumer.Next(TimeSpan.FromSeconds(60));
        Assert.True(body.AsSpan().SequenceEqual(d.Body));
        await channel.BasicAckAsync(d.Tag, false);
        await channel.QueueDeleteAsync(queue);
    }
}

[Collection(ClusterCollection.Name)]
public sealed class LargeMessageTestsOnSqlite(SqliteCluster cluster) : LargeMessageTests(cluster), IClassFixture<SqliteCluster>;

[Collection(ClusterCollection.Name)]
public sealed class LargeMessageTestsOnPostgres(PostgresCluster cluster) : LargeMessageTests(cluster), IClassFixture<PostgresCluster>;
