using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Broker.EndToEnd.Tests;

/// <summary>A node whose cluster keeps at most two retained messages: a third is refused, not dropped.</summary>
public sealed class RetainedLimitTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync("broker.retained.max-messages = 2");

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _node.DeleteData();
    }

    private static Task<MqttClientPublishResult> Retain(TestClient c, string topic, string payload) =>
        c.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload)
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag().Build());

    [Fact]
    public async Task A_retained_publish_beyond_the_limit_is_refused_with_0x97_and_still_reaches_subscribers()
    {
        await using var live = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("live"));
        await live.SubscribeAsync("lim/#");
        await using var pub = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("pub"));
        Assert.True((await Retain(pub, "lim/a", "1")).IsSuccess);
        Assert.True((await Retain(pub, "lim/b", "1")).IsSuccess);

        var refused = await Retain(pub, "lim/c", "1");

        Assert.Equal(MqttClientPublishReasonCode.QuotaExceeded, refused.ReasonCode);
        Assert.True(pub.Client.IsConnected);
        Assert.Equal(["lim/a", "lim/b", "lim/c"], [live.Next().Topic, live.Next().Topic, live.Next().Topic]);
        // Replacing a retained topic and deleting one still work; the freed place takes a new topic.
        Assert.True((await Retain(pub, "lim/a", "2")).IsSuccess);
        Assert.True((await Retain(pub, "lim/b", "")).IsSuccess);
        Assert.True((await Retain(pub, "lim/c", "1")).IsSuccess);
        await using var late = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("late"));
        await late.SubscribeAsync("lim/#");
        var retained = new[] { late.Next(), late.Next() }.Select(m => m.Topic + "=" + m.ConvertPayloadToString()).Order(StringComparer.Ordinal);
        Assert.Equal(["lim/a=2", "lim/c=1"], retained);
        late.ExpectNothing(TimeSpan.FromMilliseconds(300));

        await using var v311 = await TestClient.ConnectAsync(_node.MqttPort, Ids.New("v311"), MqttProtocolVersion.V311);
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await Retain(v311, "lim/d", "1");
            // 3.1.1 has no refusal code: the broker closes the connection instead of acknowledging.
            await Wait.UntilAsync(() => !v311.Client.IsConnected, TimeSpan.FromSeconds(10), "the 3.1.1 publisher to be disconnected");
            throw new InvalidOperationException("disconnected");
        });
        Assert.False(v311.Client.IsConnected);
    }
}
