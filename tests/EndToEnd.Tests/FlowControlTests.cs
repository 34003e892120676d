using System.Text;
using Broker.Tests.Shared;
using MQTTnet.Protocol;

namespace Broker.EndToEnd.Tests;

/// <summary>A node with a tiny in-flight window and queue bound, so the bound is reached by a short burst.</summary>
public sealed class FlowControlTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() =>
        _node = await TestNode.StartAsync("broker.mqtt.max-inflight = 2\nbroker.mqtt.max-queued-messages = 5");

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    [Fact]
    public async Task Connected_subscriber_loses_no_acknowledged_message_beyond_the_queue_bound()
    {
        var topic = Ids.New("burst");
        await using var sub = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("sub"));
        await sub.SubscribeAsync(topic);
        await using var pub = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("pub"));
        // 60 publishes at once against a window of 2 and a queue of 5: the broker slows the publisher
        // down (held PUBACKs) instead of dropping what it acknowledged.
        var acks = await Task.WhenAll(Enumerable.Range(0, 60).Select(i => pub.PublishAsync(topic, "m" + i, MqttQualityOfServiceLevel.AtLeastOnce)));
        Assert.All(acks, a => Assert.True(a.IsSuccess));
        var got = Enumerable.Range(0, 60).Select(_ => sub.NextText()).ToList();
        Assert.Equal(Enumerable.Range(0, 60).Select(i => "m" + i), got);
    }

    [Fact]
    public async Task Offline_session_queue_keeps_the_oldest_messages_up_to_its_bound()
    {
        var id = Ids.New("offline");
        var topic = Ids.New("q");
        await TestClient.LeaveOfflineSessionAsync(_node.MqttPort, id, topic, sessionExpiry: 600);
        await using var pub = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("pub"));
        for (var i = 0; i < 10; i++)
        {
            await pub.PublishAsync(topic, "m" + i);
        }
        await using var back = await TestClient.ConnectAsync(_node.MqttPort, id, clean: false, sessionExpiry: 600);
        var got = Enumerable.Range(0, 5).Select(_ => back.NextText()).ToList();
        Assert.Equal(["m0", "m1", "m2", "m3", "m4"], got);
        back.ExpectNothing(TimeSpan.FromMilliseconds(300));
    }
}
