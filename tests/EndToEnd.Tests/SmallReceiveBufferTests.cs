using System.Text;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Broker.EndToEnd.Tests;

/// <summary>
/// A subscriber with a small socket receive buffer (MQTTnet's default, 8 KiB) reading a steady stream of 1 KiB messages.
/// On loopback the kernel's segment size is 64 KiB, far above such a client's window (about 5.5 KiB): with sends of
/// a whole frame or more the client's window fell below one segment, the node's socket waited on the persist timer
/// and the subscriber got about 30 messages a second (docs/benchmarks.md, "Why the sends stay at 512 bytes"). This is
/// the guard on the send size of the node's socket output.
/// </summary>
public sealed class SmallReceiveBufferTests : IAsyncLifetime
{
    private const int Messages = 3000;
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync();

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    /// <remarks>
    /// QoS 0, so that nothing but the socket paces the stream (a QoS 1 subscriber's in-flight window keeps the unsent
    /// bytes small enough that the stall did not show). Checked: with sends of up to 1,100 bytes this fails.
    /// </remarks>
    [Fact]
    public async Task A_subscriber_with_an_8_KiB_receive_buffer_gets_a_stream_of_1_KiB_qos0_messages_at_full_speed()
    {
        const MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.AtMostOnce;
        var topic = Ids.New("small-window");
        using var subscriber = new MqttClientFactory().CreateMqttClient();
        var received = 0;
        subscriber.ApplicationMessageReceivedAsync += _ =>
        {
            Interlocked.Increment(ref received);
            return Task.CompletedTask;
        };
        var options = new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", _node.MqttPort)
            .WithClientId(Ids.New("sub"))
            .WithProtocolVersion(MqttProtocolVersion.V311)
            .WithTimeout(TimeSpan.FromSeconds(10))
            .Build();
        ((MqttClientTcpOptions)options.ChannelOptions).BufferSize = 8192;
        await subscriber.ConnectAsync(options);
        await subscriber.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter(topic, qos).Build());

        // 3 MB in all: within the QoS 0 backlog bounds (nothing may be dropped), far beyond the client's socket buffer.
        await using var publisher = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("pub"), MqttProtocolVersion.V311);
        var payload = Encoding.ASCII.GetBytes(new string('x', 1024));
        for (var i = 0; i < Messages; i++)
        {
            await publisher.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithQualityOfServiceLevel(qos).Build());
        }

        // At full speed this takes well under a second; stalled, 3 MB at one window per 200 ms would take minutes.
        await Wait.UntilAsync(() => Volatile.Read(ref received) == Messages, TimeSpan.FromSeconds(30),
            $"all {Messages} messages at the subscriber with an 8 KiB receive buffer");
        await subscriber.DisconnectAsync();
    }
}
