using System.Buffers;
using System.Security.Cryptography;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Protocol;
using RabbitMQ.Client;
using Xunit.Abstractions;

namespace Broker.Cluster.Tests.Hostile;

/// <summary>
/// The largest message each protocol allows crosses between the two node processes (their Akka remoting frame is
/// sized from the limits at start-up): an MQTT PUBLISH of exactly 1 MiB live and retained, a 16 MiB AMQP message
/// through a durable queue, published on node B and received on node A.
/// </summary>
[Collection(HostileCollection.Name)]
public sealed class LargestMessageTests(HostileCluster cluster, ITestOutputHelper output)
{
    /// <summary>Payload that makes an MQTT 5 QoS 1 PUBLISH exactly 1 MiB: fixed header 4, topic 2 + n, packet id 2, properties 1.</summary>
    private static byte[] LargestPayload(string topic)
    {
        var payload = new byte[(1024 * 1024) - 4 - 2 - topic.Length - 2 - 1];
        RandomNumberGenerator.Fill(payload);
        return payload;
    }

    [Fact]
    public async Task The_largest_mqtt_and_amqp_messages_cross_between_node_processes_live_retained_and_queued()
    {
        var topic = Ids.New("largest") + "/live";
        var retainedTopic = Ids.New("largest") + "/retained";
        var live = LargestPayload(topic);
        var retained = LargestPayload(retainedTopic);
        await using var sub = await TestClient.ConnectAsync(cluster.A.MqttPort, Ids.New("largest-sub"));
        await sub.SubscribeAsync(topic);
        await using var pub = await TestClient.ConnectAsync(cluster.B.MqttPort, Ids.New("largest-pub"));

        var liveAck = await pub.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(live)
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        var retainAck = await pub.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(retainedTopic).WithPayload(retained)
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag().Build());

        Assert.True(liveAck.IsSuccess && retainAck.IsSuccess);
        Assert.True(live.AsSpan().SequenceEqual(sub.Next(TimeSpan.FromSeconds(30)).Payload.ToArray()));
        await sub.SubscribeAsync(retainedTopic);
        var got = sub.Next(TimeSpan.FromSeconds(30));
        Assert.True(got.Retain);
        Assert.True(retained.AsSpan().SequenceEqual(got.Payload.ToArray()));
        await pub.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(retainedTopic).WithPayload([]).WithRetainFlag()
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

        var queue = Ids.New("largest-q");
        var body = new byte[16 * 1024 * 1024];
        RandomNumberGenerator.Fill(body);
        await using (var publisher = await AmqpTestClient.ConnectAsync(cluster.B.AmqpPort))
        await using (var confirms = await publisher.ConfirmChannelAsync())
        {
            await confirms.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
            await confirms.BasicPublishAsync("", queue, true, new BasicProperties { DeliveryMode = DeliveryModes.Persistent }, body);
        }
        await using var consumerConnection = await AmqpTestClient.ConnectAsync(cluster.A.AmqpPort);
        await using var channel = await consumerConnection.CreateChannelAsync();
        var consumer = new RecordingConsumer(channel);
        await channel.BasicConsumeAsync(queue, false, consumer);
        var delivery = consumer.Next(TimeSpan.FromSeconds(60));
        Assert.True(body.AsSpan().SequenceEqual(delivery.Body));
        await channel.BasicAckAsync(delivery.Tag, false);
        await channel.QueueDeleteAsync(queue);

        var canary = await cluster.AssertHealthyAsync();
        HostileCluster.Report(output, $"largest_messages_across_nodes mqtt_live=1MiB mqtt_retained=1MiB amqp_queued=16MiB delivered=3/3 {canary}");
    }
}
