using System.Text;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace Broker.EndToEnd.Tests;

public sealed class PublishSubscribeTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{

    [Theory]
    [InlineData(MqttProtocolVersion.V311, MqttQualityOfServiceLevel.AtMostOnce)]
    [InlineData(MqttProtocolVersion.V311, MqttQualityOfServiceLevel.AtLeastOnce)]
    [InlineData(MqttProtocolVersion.V311, MqttQualityOfServiceLevel.ExactlyOnce)]
    [InlineData(MqttProtocolVersion.V500, MqttQualityOfServiceLevel.AtMostOnce)]
    [InlineData(MqttProtocolVersion.V500, MqttQualityOfServiceLevel.AtLeastOnce)]
    [InlineData(MqttProtocolVersion.V500, MqttQualityOfServiceLevel.ExactlyOnce)]
    [InlineData(MqttProtocolVersion.V310, MqttQualityOfServiceLevel.AtLeastOnce)]
    public async Task Message_reaches_subscriber_at_each_qos(MqttProtocolVersion version, MqttQualityOfServiceLevel qos)
    {
        var topic = Ids.New("t") + "/x";
        await using var sub = await TestClient.ConnectAsync(fixture.Port, Ids.New("sub"), version);
        await sub.SubscribeAsync(topic, qos);
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"), version);
        for (var i = 0; i < 20; i++)
        {
            var result = await pub.PublishAsync(topic, "m" + i, qos);
            Assert.True(result.IsSuccess);
        }
        for (var i = 0; i < 20; i++)
        {
            var m = sub.Next();
            Assert.Equal(topic, m.Topic);
            Assert.Equal("m" + i, Encoding.UTF8.GetString(m.Payload));
            Assert.Equal(qos, m.QualityOfServiceLevel);
        }
        sub.ExpectNothing(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public async Task Qos_is_downgraded_to_the_subscription_maximum()
    {
        var topic = Ids.New("down");
        await using var sub = await TestClient.ConnectAsync(fixture.Port, Ids.New("sub"));
        await sub.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        await pub.PublishAsync(topic, "x", MqttQualityOfServiceLevel.ExactlyOnce);
        Assert.Equal(MqttQualityOfServiceLevel.AtLeastOnce, sub.Next().QualityOfServiceLevel);
    }

    [Fact]
    public async Task Wildcards_match_and_dollar_topics_are_not_matched_by_leading_wildcards()
    {
        var root = Ids.New("w");
        await using var sub = await TestClient.ConnectAsync(fixture.Port, Ids.New("sub"));
        await sub.SubscribeAsync(root + "/+/temp");
        await sub.SubscribeAsync("#");
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        await pub.PublishAsync("$SYS/" + root, "hidden");
        await pub.PublishAsync(root + "/room1/temp", "21");
        var m = sub.Next();
        Assert.Equal(root + "/room1/temp", m.Topic);
        Assert.Equal("21", Encoding.UTF8.GetString(m.Payload));
        // Two subscriptions match: an MQTT 5 client gets one copy.
        sub.ExpectNothing(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Overlapping_subscriptions_give_one_copy_with_every_subscription_identifier()
    {
        var root = Ids.New("ov");
        await using var sub = await TestClient.ConnectAsync(fixture.Port, Ids.New("sub"));
        await sub.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic(root + "/#").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtMostOnce))
            .WithSubscriptionIdentifier(7).Build());
        await sub.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic(root + "/a").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.ExactlyOnce))
            .WithSubscriptionIdentifier(9).Build());
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        await pub.PublishAsync(root + "/a", "x", MqttQualityOfServiceLevel.ExactlyOnce);
        var m = sub.Next();
        Assert.Equal(MqttQualityOfServiceLevel.ExactlyOnce, m.QualityOfServiceLevel);
        Assert.Equal(new uint[] { 7, 9 }, m.SubscriptionIdentifiers.Order().ToArray());
        sub.ExpectNothing(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Messages_from_one_publisher_arrive_in_order()
    {
        var topic = Ids.New("order");
        await using var sub = await TestClient.ConnectAsync(fixture.Port, Ids.New("sub"));
        await sub.SubscribeAsync(topic, MqttQualityOfServiceLevel.ExactlyOnce);
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        var sends = new List<Task>();
        for (var i = 0; i < 300; i++)
        {
            sends.Add(pub.PublishAsync(topic, i.ToString(System.Globalization.CultureInfo.InvariantCulture), (MqttQualityOfServiceLevel)(i % 3)));
        }
        await Task.WhenAll(sends);
        for (var i = 0; i < 300; i++)
        {
            Assert.Equal(i.ToString(System.Globalization.CultureInfo.InvariantCulture), sub.NextText());
        }
    }

    [Fact]
    public async Task Mqtt5_properties_pass_through_unchanged()
    {
        var topic = Ids.New("props");
        await using var sub = await TestClient.ConnectAsync(fixture.Port, Ids.New("sub"));
        await sub.SubscribeAsync(topic);
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        var msg = new MqttApplicationMessageBuilder()
            .WithTopic(topic)
            .WithPayload("{}")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
            .WithContentType("application/json")
            .WithResponseTopic("reply/" + topic)
            .WithCorrelationData([1, 2, 3])
            .WithPayloadFormatIndicator(MqttPayloadFormatIndicator.CharacterData)
            .WithUserProperty("k1", "v1"u8.ToArray().AsMemory())
            .WithUserProperty("k1", "v2"u8.ToArray().AsMemory())
            .WithMessageExpiryInterval(3600)
            .Build();
        await pub.Client.PublishAsync(msg);
        var m = sub.Next();
        Assert.Equal("application/json", m.ContentType);
        Assert.Equal("reply/" + topic, m.ResponseTopic);
        Assert.Equal(new byte[] { 1, 2, 3 }, m.CorrelationData);
        Assert.Equal(MqttPayloadFormatIndicator.CharacterData, m.PayloadFormatIndicator);
        Assert.Equal(["k1=v1", "k1=v2"], m.UserProperties.Select(p => p.Name + "=" + p.ReadValueAsString()).ToArray());
        Assert.InRange(m.MessageExpiryInterval, 3590u, 3600u);
    }

    [Fact]
    public async Task No_local_subscription_does_not_receive_own_messages()
    {
        var topic = Ids.New("nolocal");
        await using var c = await TestClient.ConnectAsync(fixture.Port, Ids.New("self"));
        await c.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic(topic).WithNoLocal(true).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)).Build());
        await using var other = await TestClient.ConnectAsync(fixture.Port, Ids.New("other"));
        await c.PublishAsync(topic, "mine");
        await other.PublishAsync(topic, "theirs");
        Assert.Equal("theirs", c.NextText());
        c.ExpectNothing(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Shared_subscription_gives_each_message_to_one_member_round_robin()
    {
        var topic = Ids.New("shared");
        var group = Ids.New("g");
        await using var a = await TestClient.ConnectAsync(fixture.Port, Ids.New("a"));
        await using var b = await TestClient.ConnectAsync(fixture.Port, Ids.New("b"));
        await a.SubscribeAsync($"$share/{group}/{topic}");
        await b.SubscribeAsync($"$share/{group}/{topic}");
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        for (var i = 0; i < 10; i++)
        {
            await pub.PublishAsync(topic, "m" + i);
        }
        await Wait.UntilAsync(() => a.ReceivedCount + b.ReceivedCount == 10, TimeSpan.FromSeconds(10), "10 shared deliveries");
        Assert.Equal(5, a.ReceivedCount);
        Assert.Equal(5, b.ReceivedCount);
        var all = Enumerable.Range(0, 5).Select(_ => a.Next()).Concat(Enumerable.Range(0, 5).Select(_ => b.Next()))
            .Select(m => Encoding.UTF8.GetString(m.Payload)).Order().ToArray();
        Assert.Equal(Enumerable.Range(0, 10).Select(i => "m" + i).Order().ToArray(), all);
        a.ExpectNothing(TimeSpan.FromMilliseconds(200));
        b.ExpectNothing(TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public async Task Shared_subscription_prefers_connected_members_over_a_disconnected_persistent_one()
    {
        var topic = Ids.New("shared-online");
        var group = Ids.New("g");
        var offlineId = Ids.New("offline");
        await TestClient.LeaveOfflineSessionAsync(fixture.Port, offlineId, $"$share/{group}/{topic}", sessionExpiry: 600);
        await using var online = await TestClient.ConnectAsync(fixture.Port, Ids.New("online"));
        await online.SubscribeAsync($"$share/{group}/{topic}");
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        for (var i = 0; i < 6; i++)
        {
            await pub.PublishAsync(topic, "m" + i);
        }
        Assert.Equal(Enumerable.Range(0, 6).Select(i => "m" + i), Enumerable.Range(0, 6).Select(_ => online.NextText()));

        // Back online, the persistent member shares the load again (and had nothing queued meanwhile).
        await using var back = await TestClient.ConnectAsync(fixture.Port, offlineId, clean: false, sessionExpiry: 600);
        for (var i = 0; i < 6; i++)
        {
            await pub.PublishAsync(topic, "n" + i);
        }
        await Wait.UntilAsync(() => back.ReceivedCount + online.ReceivedCount == 6, TimeSpan.FromSeconds(10), "six shared deliveries");
        Assert.Equal(3, back.ReceivedCount);
        Assert.Equal(3, online.ReceivedCount);
    }

    [Fact]
    public async Task Unsubscribe_stops_delivery()
    {
        var topic = Ids.New("unsub");
        await using var sub = await TestClient.ConnectAsync(fixture.Port, Ids.New("sub"));
        await sub.SubscribeAsync(topic);
        var result = await sub.Client.UnsubscribeAsync(new MqttClientUnsubscribeOptionsBuilder().WithTopicFilter(topic).WithTopicFilter("never/" + topic).Build());
        Assert.Equal(MqttClientUnsubscribeResultCode.Success, result.Items.First().ResultCode);
        Assert.Equal(MqttClientUnsubscribeResultCode.NoSubscriptionExisted, result.Items.Last().ResultCode);
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        var ack = await pub.PublishAsync(topic, "x");
        Assert.Equal(MqttClientPublishReasonCode.NoMatchingSubscribers, ack.ReasonCode);
        sub.ExpectNothing(TimeSpan.FromMilliseconds(300));
    }
}
