using Broker.Tests.Shared;
using MQTTnet;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Broker.EndToEnd.Tests;

/// <summary>The node as a separate process, stopped with SIGTERM: its clients are told why before their connections close.</summary>
public sealed class ShutdownTests
{
    [Fact]
    public async Task Sigterm_closes_amqp_connections_with_320_and_mqtt5_connections_with_server_shutting_down()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "broker-shutdown-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var node = await NodeProcess.StartAsync(dataDir, "shutdown-node");
            await using var amqp = await AmqpTestClient.ConnectAsync(node.AmqpPort, "shutdown-amqp");
            var amqpClosed = new TaskCompletionSource<ShutdownEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
            amqp.ConnectionShutdownAsync += (_, e) =>
            {
                amqpClosed.TrySetResult(e);
                return Task.CompletedTask;
            };
            await using var mqtt = await TestClient.ConnectAsync(node.MqttPort, "shutdown-mqtt");
            var mqttClosed = new TaskCompletionSource<MqttClientDisconnectedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
            mqtt.Client.DisconnectedAsync += e =>
            {
                mqttClosed.TrySetResult(e);
                return Task.CompletedTask;
            };

            Assert.True(node.Terminate(TimeSpan.FromSeconds(30)), "clean stop on SIGTERM");

            var amqpReason = await amqpClosed.Task.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(ShutdownInitiator.Peer, amqpReason.Initiator);
            Assert.Equal(320, amqpReason.ReplyCode);
            var mqttReason = await mqttClosed.Task.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(MqttClientDisconnectReason.ServerShuttingDown, mqttReason.Reason);
        }
        finally
        {
            try
            {
                Directory.Delete(dataDir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
