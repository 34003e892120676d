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

            // Clients that keep connecting while the node stops must not break its shutdown.
            using var storm = new CancellationTokenSource();
            var connecting = ConnectRepeatedlyAsync(node.MqttPort, storm.Token);

            Assert.True(node.Terminate(TimeSpan.FromSeconds(30)), "clean stop on SIGTERM");
            await storm.CancelAsync();
            await connecting;

            Assert.Equal(0, node.ExitCode);
            Assert.DoesNotContain("Unhandled exception", node.Log, StringComparison.Ordinal);
            Assert.DoesNotContain("Cannot create child", node.Log, StringComparison.Ordinal);

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

    /// <summary>Opens MQTT connections and sends a CONNECT on each, one after another, until cancelled or refused.</summary>
    private static async Task ConnectRepeatedlyAsync(int port, CancellationToken ct)
    {
        // CONNECT, MQTT 3.1.1, clean session, keep alive 60, client id "storm".
        byte[] connect = [0x10, 17, 0, 4, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 4, 0x02, 0, 60, 0, 5, (byte)'s', (byte)'t', (byte)'o', (byte)'r', (byte)'m'];
        while (!ct.IsCancellationRequested)
        {
            try
            {
                using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                await socket.ConnectAsync("127.0.0.1", port, ct);
                await socket.SendAsync(connect, ct);
            }
            catch (Exception ex) when (ex is System.Net.Sockets.SocketException or OperationCanceledException)
            {
                if (ct.IsCancellationRequested)
                {
                    return;
                }
                // Refused once the listener closed: keep trying until the node is gone, as reconnecting clients do.
                await Task.Delay(20, CancellationToken.None);
            }
        }
    }
}
