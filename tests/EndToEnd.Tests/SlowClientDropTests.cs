using System.Net.Sockets;
using System.Text.Json;
using Broker.Actors.Messages;
using Broker.Tests.Shared;

namespace Broker.EndToEnd.Tests;

/// <summary>
/// A subscriber that stops reading: once more than <c>mqtt.qos0-drop-pending-bytes</c> wait unsent for it, QoS 0
/// messages to it are dropped at its connection and counted (the admin API's <c>dropped.qos0_slow_client</c>); QoS 1 is
/// not dropped. The session's own backlog bound is set out of reach, so the drops are the connection's.
/// </summary>
public sealed class SlowClientDropTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() =>
        _node = await TestNode.StartAsync("broker.mqtt.qos0-drop-pending-bytes = 65536\nbroker.mqtt.qos0-drop-backlog = 1000000");

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    [Fact]
    public async Task Qos0_to_a_client_that_stops_reading_is_dropped_beyond_the_pending_bytes_bound_counted_and_qos1_still_arrives()
    {
        var topic = Ids.New("slow");
        var droppedBefore = BrokerCounters.Qos0SlowClientDropped.Value;

        // The slow subscriber: a raw 3.1.1 client with a small receive buffer that subscribes (QoS 1) and stops reading.
        using var slow = new Socket(SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096, NoDelay = true };
        await slow.ConnectAsync("127.0.0.1", _node.MqttPort);
        await slow.SendAsync(MqttWire.Connect("slow-" + topic, 4));
        Assert.Equal(0x20, (await MqttWire.ReadPacketAsync(slow)).Header);
        await slow.SendAsync(MqttWire.Subscribe(4, 1, (topic, 1)));
        Assert.Equal([0x01], await MqttWire.ReadSubAckAsync(slow, 4, 1));

        // 4,000 QoS 0 messages of 4 KiB (16 MB): far more than the client's socket buffers and the 64 KiB bound hold;
        // then one QoS 1 message, which the bound does not drop.
        await using var publisher = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("pub"));
        var payload = new string('x', 4096);
        for (var i = 0; i < 4000; i++)
        {
            await publisher.PublishAsync(topic, payload, MQTTnet.Protocol.MqttQualityOfServiceLevel.AtMostOnce);
        }
        Assert.True((await publisher.PublishAsync(topic, "last", MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce)).IsSuccess);
        await Wait.UntilAsync(() => BrokerCounters.Qos0SlowClientDropped.Value > droppedBefore, TimeSpan.FromSeconds(20),
            "QoS 0 messages dropped for the client that stopped reading");

        // It reads again: what it gets and what was dropped make up every QoS 0 message, and the QoS 1 message comes.
        var qos0 = 0;
        while (true)
        {
            var (header, _) = await MqttWire.ReadPacketAsync(slow);
            if ((header & 0xF6) == 0x30 && (header & 0x06) == 0)
            {
                qos0++;
            }
            else if ((header & 0xF0) == 0x30)
            {
                break;
            }
        }
        var dropped = BrokerCounters.Qos0SlowClientDropped.Value - droppedBefore;
        Assert.True(dropped > 0 && qos0 > 0, $"received {qos0}, dropped {dropped}");
        Assert.Equal(4000, qos0 + dropped);

        using var http = new HttpClient();
        var stats = JsonDocument.Parse(await http.GetStringAsync(_node.AdminUrl + "/api/v1/stats")).RootElement;
        Assert.True(stats.GetProperty("dropped").GetProperty("qos0_slow_client").GetInt64() >= dropped);
    }
}
