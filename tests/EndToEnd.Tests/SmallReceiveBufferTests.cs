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
    private const int Subscribers = 4;
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync();

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    /// <remarks>
    /// QoS 0, so that nothing but the socket paces the stream (a QoS 1 subscriber's in-flight window keeps the unsent
    /// bytes small enough that the stall did not show). Checked: with sends of up to 1,100 bytes (one frame each) this
    /// fails, every subscriber stuck at 1,495-2,903 of the 3,000; sends of 2 and 64 KiB, which stalled the benchmark's
    /// steadier stream in most runs, passed here.
    /// </remarks>
    [Fact]
    public async Task A_subscriber_with_an_8_KiB_receive_buffer_gets_a_stream_of_1_KiB_qos0_messages_at_full_speed()
    {
        const MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.AtMostOnce;
        var topic = Ids.New("small-window");
        // Whether a connection stalls depends on how its window evolves early on: four subscribers, four chances.
        var received = new int[Subscribers];
        var subscribers = new List<IMqttClient>();
        try
        {
            for (var s = 0; s < Subscribers; s++)
            {
                var index = s;
                var subscriber = new MqttClientFactory().CreateMqttClient();
                subscribers.Add(subscriber);
                subscriber.ApplicationMessageReceivedAsync += _ =>
                {
                    Interlocked.Increment(ref received[index]);
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
            }

            // 3 MB to each: within the QoS 0 backlog bounds (nothing may be dropped), far beyond a client's socket buffer.
            await using var publisher = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("pub"), MqttProtocolVersion.V311);
            var payload = Encoding.ASCII.GetBytes(new string('x', 1024));
            for (var i = 0; i < Messages; i++)
            {
                await publisher.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithQualityOfServiceLevel(qos).Build());
            }

            // At full speed this takes well under a second; stalled, 3 MB at one window per 200 ms would take minutes.
            try
            {
                await Wait.UntilAsync(() => Enumerable.Range(0, Subscribers).All(i => Volatile.Read(ref received[i]) == Messages),
                    TimeSpan.FromSeconds(30), $"all {Messages} messages at each subscriber with an 8 KiB receive buffer");
            }
            catch (TimeoutException ex)
            {
                throw new TimeoutException($"{ex.Message}; received {string.Join(", ", received)}", ex);
            }
        }
        finally
        {
            foreach (var subscriber in subscribers)
            {
                subscriber.Dispose();
            }
        }
    }
}
