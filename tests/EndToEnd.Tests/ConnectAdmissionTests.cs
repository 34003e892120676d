using Broker.Actors.Messages;
using Broker.Tests.Shared;
using MQTTnet.Formatter;

namespace Broker.EndToEnd.Tests;

/// <summary>A node that lets two CONNECTs at a time reach their sessions.</summary>
public sealed class ConnectAdmissionTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync("broker.mqtt.max-connects-in-flight = 2");

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    [Fact]
    public async Task A_burst_of_connects_beyond_the_admission_limit_waits_its_turn_and_every_client_gets_its_session()
    {
        var run = Ids.New("storm");
        // Persistent sessions first, left with a queued message each, so the burst resumes them as a reconnect storm does.
        var ids = Enumerable.Range(0, 60).Select(i => $"{run}-{i}").ToList();
        await Task.WhenAll(ids.Select(id => TestClient.LeaveOfflineSessionAsync(_node.MqttPort, id, run + "/" + id, MqttProtocolVersion.V500)));
        await using (var pub = await TestClient.ConnectAsync(_node.MqttPort, run + "-pub"))
        {
            foreach (var id in ids)
            {
                Assert.True((await pub.PublishAsync(run + "/" + id, "queued")).IsSuccess);
            }
        }

        var queuedBefore = BrokerCounters.ConnectsQueued.Value;
        var clients = await Task.WhenAll(ids.Select(id => TestClient.ConnectAsync(_node.MqttPort, id, MqttProtocolVersion.V500, clean: false, sessionExpiry: 600)));
        try
        {
            Assert.True(BrokerCounters.ConnectsQueued.Value > queuedBefore, "some CONNECTs waited for a slot");
            Assert.All(clients, c => Assert.True(c.LastConnect!.IsSessionPresent, c.ClientId));
            Assert.All(clients, c => Assert.Equal("queued", c.NextText()));
            // Every slot was given back: a clean client still connects at once.
            await using var after = await TestClient.ConnectAsync(_node.MqttPort, run + "-after");
            Assert.True(after.Client.IsConnected);
        }
        finally
        {
            foreach (var c in clients)
            {
                await c.DisposeAsync();
            }
        }
    }
}
