using System.Text;
using System.Text.Json;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using RabbitMQ.Client;

namespace Broker.EndToEnd.Tests.Amqp;

/// <summary>MQTTnet and RabbitMQ.Client on one node: amq.topic and MQTT topics are one namespace.</summary>
public sealed class MqttBridgeTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    private static string Word() => "w" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task An_mqtt_publish_reaches_an_amqp_queue_bound_to_amq_topic_with_its_properties()
    {
        var root = Word();
        await using var connection = await AmqpTestClient.ConnectAsync(fixture.Node.AmqpPort);
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        await channel.QueueBindAsync(queue, "amq.topic", root + ".*.temp");
        var consumer = new RecordingConsumer(channel);
        await channel.BasicConsumeAsync(queue, false, consumer);

        await using var mqtt = await TestClient.ConnectAsync(fixture.Port, "bridge-pub-" + root);
        var message = new MqttApplicationMessageBuilder()
            .WithTopic($"{root}/kitchen/temp")
            .WithPayload("21.5")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
            .WithContentType("text/plain")
            .WithCorrelationData("c-1"u8.ToArray())
            .WithUserProperty("unit", "celsius"u8.ToArray().AsMemory())
            .Build();
        var ack = await mqtt.Client.PublishAsync(message);
        Assert.True(ack.IsSuccess);

        var got = consumer.Next();
        Assert.Equal("21.5", got.Text);
        Assert.Equal("amq.topic", got.Exchange);
        Assert.Equal($"{root}.kitchen.temp", got.RoutingKey);
        Assert.Equal(DeliveryModes.Persistent, got.Properties.DeliveryMode);
        Assert.Equal("text/plain", got.Properties.ContentType);
        Assert.Equal("c-1", got.Properties.CorrelationId);
        Assert.Equal("celsius", Encoding.UTF8.GetString((byte[])got.Properties.Headers!["unit"]!));
        await channel.BasicAckAsync(got.Tag, false);
    }

    [Fact]
    public async Task A_client_id_that_spells_a_queue_key_and_that_queue_both_take_a_publish_and_it_is_acknowledged()
    {
        var root = Word();
        var queue = "q" + root;
        await using var connection = await AmqpTestClient.ConnectAsync(fixture.Node.AmqpPort);
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        await channel.QueueBindAsync(queue, "amq.topic", root + ".#");
        // Once "amqp:<queue>" keyed both this session and the queue in the publisher's table of targets.
        await using var lookalike = await TestClient.ConnectAsync(fixture.Port, "amqp:" + queue);
        await lookalike.SubscribeAsync(root + "/#");
        await using var pub = await TestClient.ConnectAsync(fixture.Port, "bridge-pub-" + root);

        for (var i = 0; i < 3; i++)
        {
            var ack = await pub.PublishAsync($"{root}/x", "m" + i);
            Assert.True(ack.IsSuccess, ack.ReasonCode.ToString());
        }

        Assert.True(pub.Client.IsConnected);
        Assert.Equal(["m0", "m1", "m2"], [lookalike.NextText(), lookalike.NextText(), lookalike.NextText()]);
        var consumer = new RecordingConsumer(channel);
        await channel.BasicConsumeAsync(queue, true, consumer);
        Assert.Equal(["m0", "m1", "m2"], [consumer.Next().Text, consumer.Next().Text, consumer.Next().Text]);
        await channel.QueueDeleteAsync(queue);
    }

    [Fact]
    public async Task An_amqp_publish_to_amq_topic_reaches_mqtt_subscribers_with_wildcards()
    {
        var root = Word();
        await using var sub = await TestClient.ConnectAsync(fixture.Port, "bridge-sub-" + root);
        await sub.SubscribeAsync($"{root}/+/events/#");
        await using var connection = await AmqpTestClient.ConnectAsync(fixture.Node.AmqpPort);
        await using var channel = await connection.ConfirmChannelAsync();
        var props = new BasicProperties
        {
            DeliveryMode = DeliveryModes.Persistent,
            ContentType = "application/json",
            CorrelationId = "req-7",
            Headers = new Dictionary<string, object?> { ["source"] = Encoding.UTF8.GetBytes("amqp") },
        };
        await channel.BasicPublishAsync("amq.topic", $"{root}.dev1.events.boot", false, props, "{\"ok\":true}"u8.ToArray());

        var got = sub.Next();
        Assert.Equal($"{root}/dev1/events/boot", got.Topic);
        Assert.Equal("{\"ok\":true}", Encoding.UTF8.GetString(got.Payload));
        Assert.Equal(MqttQualityOfServiceLevel.AtLeastOnce, got.QualityOfServiceLevel);
        Assert.Equal("application/json", got.ContentType);
        Assert.Equal("req-7", Encoding.UTF8.GetString(got.CorrelationData));
        Assert.Contains(got.UserProperties, p => p.Name == "source" && p.ReadValueAsString() == "amqp");
    }

    [Fact]
    public async Task An_amqp_routing_key_deeper_than_max_topic_levels_does_not_reach_mqtt_subscribers()
    {
        var root = Word();
        await using var sub = await TestClient.ConnectAsync(fixture.Port, "bridge-deep-" + root);
        await sub.SubscribeAsync(root + "/#");
        await using var connection = await AmqpTestClient.ConnectAsync(fixture.Node.AmqpPort);
        await using var channel = await connection.ConfirmChannelAsync();
        // Empty words keep the keys within AMQP's 255 bytes: 201 and 128 levels (max-topic-levels is 128).
        await channel.BasicPublishAsync("amq.topic", root + new string('.', 200), "too deep"u8.ToArray());
        await channel.BasicPublishAsync("amq.topic", root + new string('.', 127), "at the bound"u8.ToArray());

        // One publisher's messages reach a session in order: the first to arrive shows the deeper one was not routed.
        var got = sub.Next();
        Assert.Equal("at the bound", Encoding.UTF8.GetString(got.Payload));
        Assert.Equal(root + new string('/', 127), got.Topic);
    }

    [Fact]
    public async Task The_admin_api_lists_an_amqp_connection_with_its_consumers()
    {
        var name = "orders-" + Word();
        await using var connection = await AmqpTestClient.ConnectAsync(fixture.Node.AmqpPort, name);
        await using var channel = await connection.CreateChannelAsync();
        var manual = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        var auto = (await channel.QueueDeclareAsync(exclusive: true)).QueueName;
        await channel.BasicConsumeAsync(manual, false, new RecordingConsumer(channel));
        await channel.BasicConsumeAsync(auto, true, new RecordingConsumer(channel));

        using var http = new HttpClient { BaseAddress = new Uri(fixture.Node.AdminUrl) };
        JsonElement session = default;
        await Wait.UntilAsync(async () =>
        {
            using var page = JsonDocument.Parse(await http.GetStringAsync("/api/v1/sessions?prefix=amqp091:&limit=0"));
            foreach (var s in page.RootElement.GetProperty("sessions").EnumerateArray())
            {
                if (s.GetProperty("connection_name").GetString() == name)
                {
                    session = s.Clone();
                    return true;
                }
            }
            return false;
        }, TimeSpan.FromSeconds(10), "connection listed");

        var clientId = session.GetProperty("client_id").GetString()!;
        Assert.StartsWith("amqp091:", clientId, StringComparison.Ordinal);
        Assert.Equal("amqp0.9.1", session.GetProperty("protocol").GetString());
        Assert.Equal(0, session.GetProperty("version").GetInt32());
        Assert.Equal("connected", session.GetProperty("state").GetString());
        Assert.NotEqual(JsonValueKind.Null, session.GetProperty("connected_at").ValueKind);
        Assert.Equal(2, session.GetProperty("subscription_count").GetInt32());
        var subscriptions = session.GetProperty("subscriptions").EnumerateArray()
            .Select(s => (s.GetProperty("filter").GetString(), s.GetProperty("qos").GetInt32(), s.GetProperty("consumer_group").GetString()))
            .OrderBy(s => s.Item2).ToList();
        Assert.Equal([(auto, 0, ""), (manual, 1, "")], subscriptions);

        using var detail = JsonDocument.Parse(await http.GetStringAsync("/api/v1/sessions/" + Uri.EscapeDataString(clientId)));
        Assert.Equal(name, detail.RootElement.GetProperty("connection_name").GetString());

        await connection.CloseAsync();
        await Wait.UntilAsync(async () => (await http.GetAsync("/api/v1/sessions/" + Uri.EscapeDataString(clientId))).StatusCode == System.Net.HttpStatusCode.NotFound,
            TimeSpan.FromSeconds(10), "connection no longer listed");
    }
}
