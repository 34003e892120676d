using System.Diagnostics;
using System.Text;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using RabbitMQ.Client;

namespace Broker.EndToEnd.Tests.Security;

/// <summary>broker.limits.publish-rate-per-client = 5: MQTT 5 is told 0x96, MQTT 3.1.1 and AMQP publishers are slowed, nothing is lost.</summary>
public sealed class PublishRateTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync("broker.limits.publish-rate-per-client = 5");

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    [Fact]
    public async Task An_mqtt5_client_beyond_the_rate_is_disconnected_with_message_rate_too_high()
    {
        await using var client = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("fast"));
        var reason = new TaskCompletionSource<MqttClientDisconnectReason>();
        client.Client.DisconnectedAsync += e =>
        {
            reason.TrySetResult(e.Reason);
            return Task.CompletedTask;
        };
        for (var i = 0; i < 50 && client.Client.IsConnected; i++)
        {
            try
            {
                await client.PublishAsync("rate/x", "m" + i, MqttQualityOfServiceLevel.AtMostOnce);
            }
            catch (Exception ex) when (ex is MQTTnet.Exceptions.MqttCommunicationException or MQTTnet.Exceptions.MqttClientNotConnectedException)
            {
                break;
            }
        }
        Assert.Equal(MqttClientDisconnectReason.MessageRateTooHigh, await reason.Task.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Mqtt311_and_amqp_publishers_beyond_the_rate_are_slowed_and_lose_nothing()
    {
        await using var subscriber = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("sub"));
        await subscriber.SubscribeAsync("rate/slow/#");
        await using var publisher = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("slow"), MqttProtocolVersion.V311);
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < 15; i++)
        {
            await publisher.PublishAsync("rate/slow/mqtt", "m" + i);
        }
        // Five at once, then five a second: the last of fifteen cannot be acknowledged before two seconds.
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(1.5), $"15 publishes took {watch.Elapsed}");
        Assert.True(publisher.Client.IsConnected);
        Assert.Equal(Enumerable.Range(0, 15).Select(i => "m" + i), Enumerable.Range(0, 15).Select(_ => subscriber.NextText()));

        var factory = new ConnectionFactory { HostName = "127.0.0.1", Port = _node.AmqpPort };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        watch.Restart();
        for (var i = 0; i < 15; i++)
        {
            await channel.BasicPublishAsync("amq.topic", "rate.slow.amqp", Encoding.UTF8.GetBytes("a" + i));
        }
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(1.5), $"15 confirmed AMQP publishes took {watch.Elapsed}");
        Assert.Equal(Enumerable.Range(0, 15).Select(i => "a" + i), Enumerable.Range(0, 15).Select(_ => subscriber.NextText()));
    }
}
