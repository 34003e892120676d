using System.Net.Sockets;
using Broker.Actors.Messages;
using Broker.Tests.Shared;

namespace Broker.EndToEnd.Tests;

/// <summary>A node whose sessions drop QoS 0 messages as soon as more than one message waits for them.</summary>
public sealed class Qos0DropTests() : Qos0DropTestsBase("broker.mqtt.qos0-drop-backlog = 1");

/// <summary>
/// A node whose sessions drop QoS 0 messages as soon as more than 2 KiB of payload and topic wait for them (the message
/// count out of reach, so the drops are the byte bound's).
/// </summary>
public sealed class Qos0DropBytesTests() : Qos0DropTestsBase("broker.mqtt.qos0-drop-backlog = 1000000\nbroker.mqtt.qos0-drop-backlog-bytes = 2048");

/// <summary>A QoS 0 flood faster than its subscriber, against a node with <paramref name="config"/>.</summary>
public abstract class Qos0DropTestsBase(string config) : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync(config);

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    [Fact]
    public async Task A_qos0_flood_faster_than_its_subscriber_is_dropped_at_the_session_and_counted_while_qos1_still_arrives()
    {
        var topic = Ids.New("flood");
        await using var sub = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("sub"));
        await sub.SubscribeAsync(topic + "/#");
        var droppedBefore = BrokerCounters.Qos0Dropped.Value;

        // 20,000 QoS 0 PUBLISHes of 256 bytes in 64-packet writes from a raw 3.1.1 client.
        using var flooder = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await flooder.ConnectAsync("127.0.0.1", _node.MqttPort);
        byte[] connect = [0x10, 19, 0, 4, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 4, 0x02, 0, 0, 0, 7, .. "flooder"u8];
        await flooder.SendAsync(connect);
        var connack = new byte[4];
        await flooder.ReceiveAsync(connack);
        var t = System.Text.Encoding.UTF8.GetBytes(topic + "/q0");
        byte[] publish = [0x30, (byte)(0x80 | ((2 + t.Length + 256) & 0x7F)), (byte)((2 + t.Length + 256) >> 7), 0, (byte)t.Length, .. t, .. new byte[256]];
        var chunk = Enumerable.Repeat(publish, 64).SelectMany(p => p).ToArray();
        for (var i = 0; i < 20_000 / 64; i++)
        {
            await flooder.SendAsync(chunk);
        }

        await Wait.UntilAsync(() => BrokerCounters.Qos0Dropped.Value > droppedBefore, TimeSpan.FromSeconds(30), "QoS 0 messages to be dropped");
        // What the session takes on after the flood is delivered: a QoS 1 message is never dropped this way.
        await using var pub = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("pub"));
        Assert.True((await pub.PublishAsync(topic + "/q1", "after")).IsSuccess);
        await Wait.UntilAsync(() =>
        {
            while (sub.ReceivedCount > 0)
            {
                if (sub.Next().Topic == topic + "/q1")
                {
                    return true;
                }
            }
            return false;
        }, TimeSpan.FromSeconds(30), "the QoS 1 message after the flood");
    }
}

/// <summary>With the default bounds, a burst a client script sends at once reaches a subscriber whole.</summary>
public sealed class Qos0BurstTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync();

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    [Fact]
    public async Task A_burst_of_5000_qos0_messages_written_at_once_is_delivered_whole_with_the_default_bounds()
    {
        var topic = Ids.New("burst");
        await using var sub = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("sub"));
        await sub.SubscribeAsync(topic, MQTTnet.Protocol.MqttQualityOfServiceLevel.AtMostOnce);

        // 5,000 QoS 0 PUBLISHes of 64 bytes in one go from a raw 3.1.1 client: more than the session takes at once.
        using var burst = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await burst.ConnectAsync("127.0.0.1", _node.MqttPort);
        await burst.SendAsync(MqttWire.Connect("burst-" + topic, 4));
        Assert.Equal(0x20, (await MqttWire.ReadPacketAsync(burst)).Header);
        var t = System.Text.Encoding.UTF8.GetBytes(topic);
        Assert.True(2 + t.Length + 64 < 128, "one byte of remaining length");
        byte[] publish = [0x30, (byte)(2 + t.Length + 64), 0, (byte)t.Length, .. t, .. new byte[64]];
        await burst.SendAsync(Enumerable.Repeat(publish, 5000).SelectMany(p => p).ToArray());

        // Every one of them (the drop counters are the process's, shared with tests running beside this one).
        await Wait.UntilAsync(() => sub.ReceivedCount >= 5000, TimeSpan.FromSeconds(30), "the 5,000 messages");
        Assert.Equal(5000, sub.ReceivedCount);
    }
}
