using System.Text;
using Broker.Tests.Shared;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Broker.EndToEnd.Tests;

public sealed class SessionTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public async Task Persistent_session_keeps_subscriptions_and_queues_qos1_and_qos2_while_offline(MqttProtocolVersion version)
    {
        var id = Ids.New("persist");
        var topic = Ids.New("p");
        var sub = await TestClient.ConnectAsync(fixture.Port, id, version, clean: false, sessionExpiry: 3600);
        Assert.False(sub.LastConnect!.IsSessionPresent);
        await sub.SubscribeAsync(topic, MqttQualityOfServiceLevel.ExactlyOnce);
        await sub.DisposeAsync();

        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"), version);
        // QoS 0 first: the acknowledged QoS 1/2 publishes after it prove it was routed before the reconnect.
        await pub.PublishAsync(topic, "qos0 is not queued", MqttQualityOfServiceLevel.AtMostOnce);
        for (var i = 0; i < 30; i++)
        {
            await pub.PublishAsync(topic, "q" + i, i % 2 == 0 ? MqttQualityOfServiceLevel.AtLeastOnce : MqttQualityOfServiceLevel.ExactlyOnce);
        }

        await using var again = await TestClient.ConnectAsync(fixture.Port, id, version, clean: false, sessionExpiry: 3600);
        Assert.True(again.LastConnect!.IsSessionPresent);
        for (var i = 0; i < 30; i++)
        {
            Assert.Equal("q" + i, again.NextText());
        }
        again.ExpectNothing(TimeSpan.FromMilliseconds(300));
        // The subscription survived too: a new message arrives without subscribing again.
        await pub.PublishAsync(topic, "live");
        Assert.Equal("live", again.NextText());
    }

    [Fact]
    public async Task Session_expires_after_its_expiry_interval_and_publishes_a_pending_will()
    {
        var id = Ids.New("expiring");
        var willTopic = Ids.New("expired-will");
        await using var watcher = await WatchAsync(willTopic);
        // Will delay 60 s, session expiry 1 s: the will is published when the session ends, not after 60 s.
        var c = await TestClient.ConnectAsync(fixture.Port, id, clean: false, sessionExpiry: 1,
            configure: b => b.WithWillTopic(willTopic).WithWillPayload("session-ended").WithWillDelayInterval(60));
        await c.SubscribeAsync(Ids.New("t"));
        c.Client.Dispose(); // dropped without DISCONNECT
        Assert.Equal("session-ended", watcher.NextText(TimeSpan.FromSeconds(10)));
        await using var back = await TestClient.ConnectAsync(fixture.Port, id, clean: false, sessionExpiry: 60);
        Assert.False(back.LastConnect!.IsSessionPresent);
    }

    [Fact]
    public async Task Clean_start_discards_the_previous_session()
    {
        var id = Ids.New("clean");
        var topic = Ids.New("c");
        await TestClient.LeaveOfflineSessionAsync(fixture.Port, id, topic, sessionExpiry: 3600);
        await using var second = await TestClient.ConnectAsync(fixture.Port, id, clean: true, sessionExpiry: 0);
        Assert.False(second.LastConnect!.IsSessionPresent);
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        await pub.PublishAsync(topic, "x");
        second.ExpectNothing(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Same_client_id_takes_over_and_the_old_connection_gets_disconnect_0x8E()
    {
        var id = Ids.New("takeover");
        await using var old = await TestClient.ConnectAsync(fixture.Port, id);
        var reason = new TaskCompletionSource<MqttClientDisconnectReason>(TaskCreationOptions.RunContinuationsAsynchronously);
        old.Client.DisconnectedAsync += e =>
        {
            reason.TrySetResult(e.Reason);
            return Task.CompletedTask;
        };
        await using var fresh = await TestClient.ConnectAsync(fixture.Port, id);
        Assert.Equal(MqttClientDisconnectReason.SessionTakenOver, await reason.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(fresh.Client.IsConnected);
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V311)]
    [InlineData(MqttProtocolVersion.V500)]
    public async Task Will_is_published_when_the_connection_drops_but_not_on_disconnect(MqttProtocolVersion version)
    {
        var willTopic = Ids.New("will");
        await using var watcher = await WatchAsync(willTopic);

        var polite = await TestClient.ConnectAsync(fixture.Port, Ids.New("polite"), version,
            configure: b => b.WithWillTopic(willTopic).WithWillPayload("polite-gone").WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce));
        await polite.DisposeAsync();

        var rude = await TestClient.ConnectAsync(fixture.Port, Ids.New("rude"), version,
            configure: b => b.WithWillTopic(willTopic).WithWillPayload("rude-gone").WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce));
        await RawDrop(rude);

        Assert.Equal("rude-gone", watcher.NextText());
        watcher.ExpectNothing(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Will_delay_is_cancelled_by_a_reconnect_within_the_delay()
    {
        var willTopic = Ids.New("delayed");
        var id = Ids.New("flaky");
        await using var watcher = await WatchAsync(willTopic);
        var flaky = await TestClient.ConnectAsync(fixture.Port, id, clean: false, sessionExpiry: 60,
            configure: b => b.WithWillTopic(willTopic).WithWillPayload("late").WithWillDelayInterval(30));
        await RawDrop(flaky);
        await using var back = await TestClient.ConnectAsync(fixture.Port, id, clean: false, sessionExpiry: 60);
        watcher.ExpectNothing(TimeSpan.FromMilliseconds(500));

        var quick = await TestClient.ConnectAsync(fixture.Port, Ids.New("quick"), clean: false, sessionExpiry: 60,
            configure: b => b.WithWillTopic(willTopic).WithWillPayload("after-1s").WithWillDelayInterval(1));
        await RawDrop(quick);
        Assert.Equal("after-1s", watcher.NextText(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Retained_messages_are_stored_replaced_deleted_and_sent_on_subscribe()
    {
        var topic = Ids.New("ret") + "/state";
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        await pub.PublishAsync(topic, "v1", retain: true);
        await pub.PublishAsync(topic, "v2", retain: true);

        await using var sub = await TestClient.ConnectAsync(fixture.Port, Ids.New("sub"));
        await sub.SubscribeAsync(topic.Split('/')[0] + "/+");
        var m = sub.Next();
        Assert.Equal("v2", Encoding.UTF8.GetString(m.Payload));
        Assert.True(m.Retain);

        // A live message on an existing subscription: retain is cleared unless retain-as-published.
        await pub.PublishAsync(topic, "v3", retain: true);
        Assert.False(sub.Next().Retain);

        await using var rap = await TestClient.ConnectAsync(fixture.Port, Ids.New("rap"));
        await rap.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic(topic).WithRetainAsPublished(true).WithRetainHandling(MqttRetainHandling.DoNotSendOnSubscribe)).Build());
        rap.ExpectNothing(TimeSpan.FromMilliseconds(300));
        await pub.PublishAsync(topic, "v4", retain: true);
        Assert.True(rap.Next().Retain);

        await pub.PublishAsync(topic, "", retain: true);
        await using var late = await TestClient.ConnectAsync(fixture.Port, Ids.New("late"));
        await late.SubscribeAsync(topic);
        late.ExpectNothing(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Empty_client_id_gets_an_assigned_identifier_in_mqtt5_and_is_rejected_for_311_persistent()
    {
        await using var v5 = await TestClient.ConnectAsync(fixture.Port, "");
        Assert.False(string.IsNullOrEmpty(v5.LastConnect!.AssignedClientIdentifier));

        // MQTTnet refuses to send this CONNECT itself, so it goes over a raw socket.
        using var socket = new System.Net.Sockets.TcpClient();
        await socket.ConnectAsync("127.0.0.1", fixture.Port);
        var stream = socket.GetStream();
        byte[] connect =
        [
            0x10, 0x0C,                         // CONNECT, remaining length 12
            0x00, 0x04, (byte)'M', (byte)'Q', (byte)'T', (byte)'T',
            0x04,                               // protocol level 4 (3.1.1)
            0x00,                               // flags: clean session 0
            0x00, 0x3C,                         // keep alive 60 s
            0x00, 0x00,                         // empty client identifier
        ];
        await stream.WriteAsync(connect);
        var connack = new byte[4];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await stream.ReadExactlyAsync(connack, cts.Token);
        Assert.Equal(new byte[] { 0x20, 0x02, 0x00, 0x02 }, connack); // return code 2: identifier rejected
        Assert.Equal(0, await stream.ReadAsync(new byte[1], cts.Token)); // then the server closes
    }

    [Fact]
    public async Task Connack_carries_server_limits_and_response_information()
    {
        await using var c = await TestClient.ConnectAsync(fixture.Port, Ids.New("limits"), configure: b => b.WithRequestResponseInformation(true));
        var r = c.LastConnect!;
        Assert.Equal(1048576u, r.MaximumPacketSize);
        Assert.True(r.ReceiveMaximum > 0);
        Assert.True(r.TopicAliasMaximum > 0);
        Assert.True(r.SharedSubscriptionAvailable);
        Assert.True(r.SubscriptionIdentifiersAvailable);
        Assert.False(string.IsNullOrEmpty(r.ResponseInformation));
    }

    [Fact]
    public async Task Inbound_topic_alias_resolves_to_the_registered_topic()
    {
        var topic = Ids.New("alias");
        await using var sub = await TestClient.ConnectAsync(fixture.Port, Ids.New("sub"));
        await sub.SubscribeAsync(topic);
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        await pub.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithTopicAlias(3).WithPayload("first").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        await pub.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("").WithTopicAlias(3).WithPayload("second").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Equal("first", sub.NextText());
        var second = sub.Next();
        Assert.Equal(topic, second.Topic);
        Assert.Equal("second", Encoding.UTF8.GetString(second.Payload));
    }

    [Fact]
    public async Task Message_larger_than_the_client_maximum_packet_size_is_skipped()
    {
        var topic = Ids.New("big");
        await using var sub = await TestClient.ConnectAsync(fixture.Port, Ids.New("small"), configure: b => b.WithMaximumPacketSize(512));
        await sub.SubscribeAsync(topic);
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        await pub.PublishAsync(topic, new string('x', 2000));
        await pub.PublishAsync(topic, "fits");
        Assert.Equal("fits", sub.NextText());
    }

    [Fact]
    public async Task Expired_messages_are_not_delivered_from_the_offline_queue()
    {
        var id = Ids.New("exp");
        var topic = Ids.New("e");
        await TestClient.LeaveOfflineSessionAsync(fixture.Port, id, topic, sessionExpiry: 600);
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        await pub.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("short").WithMessageExpiryInterval(1).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        await pub.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload("long").WithMessageExpiryInterval(600).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        // The expiry interval has to pass in real time before the client comes back.
        await Task.Delay(TimeSpan.FromMilliseconds(1500));
        await using var back = await TestClient.ConnectAsync(fixture.Port, id, clean: false, sessionExpiry: 600);
        var m = back.Next();
        Assert.Equal("long", Encoding.UTF8.GetString(m.Payload));
        Assert.InRange(m.MessageExpiryInterval, 590u, 600u);
        back.ExpectNothing(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Receive_maximum_limits_unacknowledged_deliveries_and_the_rest_waits()
    {
        var topic = Ids.New("rm");
        var held = new List<MqttApplicationMessageReceivedEventArgs>();
        var factory = new MqttClientFactory();
        using var client = factory.CreateMqttClient();
        client.ApplicationMessageReceivedAsync += e =>
        {
            e.AutoAcknowledge = false;
            lock (held)
            {
                held.Add(e);
            }
            return Task.CompletedTask;
        };
        await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", fixture.Port).WithClientId(Ids.New("slow"))
            .WithProtocolVersion(MqttProtocolVersion.V500).WithReceiveMaximum(2).Build());
        await client.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        await using var pub = await TestClient.ConnectAsync(fixture.Port, Ids.New("pub"));
        for (var i = 0; i < 5; i++)
        {
            await pub.PublishAsync(topic, "m" + i);
        }
        int Count()
        {
            lock (held)
            {
                return held.Count;
            }
        }
        await Wait.UntilAsync(() => Count() == 2, TimeSpan.FromSeconds(10), "two deliveries");
        await Task.Delay(300);
        Assert.Equal(2, Count());
        MqttApplicationMessageReceivedEventArgs first;
        lock (held)
        {
            first = held[0];
        }
        await first.AcknowledgeAsync(CancellationToken.None);
        await Wait.UntilAsync(() => Count() == 3, TimeSpan.FromSeconds(10), "a third delivery after one ack");
        await client.DisconnectAsync();
    }

    [Fact]
    public async Task Silent_client_is_disconnected_after_one_and_a_half_keep_alives_with_0x8D_and_its_will()
    {
        var willTopic = Ids.New("ka");
        var id = Ids.New("silent");
        await using var watcher = await WatchAsync(willTopic);

        using var socket = new System.Net.Sockets.TcpClient();
        await socket.ConnectAsync("127.0.0.1", fixture.Port);
        var stream = socket.GetStream();
        var body = new List<byte> { 0x00, 0x04, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 0x05 };
        body.Add(0x06);                 // flags: clean start, will flag, will QoS 0
        body.AddRange([0x00, 0x01]);    // keep alive 1 s
        body.Add(0x00);                 // no CONNECT properties
        AddString(body, id);            // client identifier
        body.Add(0x00);                 // no will properties
        AddString(body, willTopic);     // will topic
        AddString(body, "timed-out");   // will payload
        await stream.WriteAsync(new byte[] { 0x10, (byte)body.Count }.Concat(body).ToArray());
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var header = new byte[2];
        await stream.ReadExactlyAsync(header, cts.Token);
        Assert.Equal(0x20, header[0]); // CONNACK
        await stream.ReadExactlyAsync(new byte[header[1]], cts.Token);

        // Silence: no PINGREQ. The broker closes after 1.5 × 1 s with DISCONNECT 0x8D.
        await stream.ReadExactlyAsync(header, cts.Token);
        Assert.Equal(0xE0, header[0]);
        var disconnect = new byte[header[1]];
        await stream.ReadExactlyAsync(disconnect, cts.Token);
        Assert.Equal(0x8D, disconnect[0]);
        Assert.Equal(0, await stream.ReadAsync(new byte[1], cts.Token));
        Assert.Equal("timed-out", watcher.NextText());
    }

    [Fact]
    public async Task Taken_over_connection_publishes_its_will_when_the_will_delay_is_zero()
    {
        var willTopic = Ids.New("tw");
        var id = Ids.New("twice");
        await using var watcher = await WatchAsync(willTopic);
        await using var first = await TestClient.ConnectAsync(fixture.Port, id, configure: b => b.WithWillTopic(willTopic).WithWillPayload("first-gone"));
        await using var second = await TestClient.ConnectAsync(fixture.Port, id);
        Assert.Equal("first-gone", watcher.NextText());
    }

    [Fact]
    public async Task Packet_over_the_maximum_size_is_refused_from_its_header_with_disconnect_0x95()
    {
        using var socket = new System.Net.Sockets.TcpClient();
        await socket.ConnectAsync("127.0.0.1", fixture.Port);
        var stream = socket.GetStream();
        var body = new List<byte> { 0x00, 0x04, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 0x05, 0x02, 0x00, 0x3C, 0x00 };
        AddString(body, Ids.New("huge"));
        await stream.WriteAsync(new byte[] { 0x10, (byte)body.Count }.Concat(body).ToArray());
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var header = new byte[2];
        await stream.ReadExactlyAsync(header, cts.Token);
        await stream.ReadExactlyAsync(new byte[header[1]], cts.Token);
        // PUBLISH declaring 2,000,000 bytes (remaining length 80 89 7A) and no body: the 1 MiB limit
        // is enforced from the header alone, before any of it is buffered.
        await stream.WriteAsync(new byte[] { 0x30, 0x80, 0x89, 0x7A });
        await stream.ReadExactlyAsync(header, cts.Token);
        Assert.Equal(0xE0, header[0]);
        var disconnect = new byte[header[1]];
        await stream.ReadExactlyAsync(disconnect, cts.Token);
        Assert.Equal(0x95, disconnect[0]);
    }

    /// <summary>A client subscribed to <paramref name="topic"/> that records what is published there.</summary>
    private async Task<TestClient> WatchAsync(string topic)
    {
        var watcher = await TestClient.ConnectAsync(fixture.Port, Ids.New("watch"));
        await watcher.SubscribeAsync(topic);
        return watcher;
    }

    private static void AddString(List<byte> bytes, string value)
    {
        var utf8 = Encoding.UTF8.GetBytes(value);
        bytes.Add((byte)(utf8.Length >> 8));
        bytes.Add((byte)utf8.Length);
        bytes.AddRange(utf8);
    }

    /// <summary>Closes the client's socket without DISCONNECT, as a crashing device would.</summary>
    private static async Task RawDrop(TestClient c)
    {
        // MQTTnet has no public "drop"; disposing a connected client closes its socket without DISCONNECT.
        c.Client.Dispose();
        await Task.CompletedTask;
    }
}
