using Broker.Actors.Configuration;
using Broker.Actors.Sessions;
using Broker.Edge.Hosting;
using Broker.Edge.Mqtt;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace Broker.Edge.Tests.Mqtt;

public class MqttConnectHandshakeTests
{
    private const long Now = 1_700_000_000_000;
    private static readonly BrokerSettings Settings = BrokerSettings.From(BrokerConfig.Load());

    private static ConnectInfo Accept(MqttConnectHandshake handshake, MqttConnectPacket connect, MqttProtocolVersion version = MqttProtocolVersion.V500)
    {
        var info = handshake.OnConnect(connect, version, Settings, Now, out var refusal);
        Assert.True(info is not null, $"refused: {refusal}");
        return info;
    }

    private static ConnectRefusal Refuse(MqttConnectPacket connect, MqttProtocolVersion version)
    {
        var handshake = new MqttConnectHandshake();
        Assert.Null(handshake.OnConnect(connect, version, Settings, Now, out var refusal));
        Assert.Equal(ConnectPhase.AwaitingConnect, handshake.Phase);
        Assert.Equal("", handshake.ClientId);
        return refusal;
    }

    [Fact]
    public void An_accepted_connect_waits_for_the_session_with_the_client_id()
    {
        var handshake = new MqttConnectHandshake();
        var info = Accept(handshake, new MqttConnectPacket { ClientId = "c1", CleanSession = true }, MqttProtocolVersion.V311);

        Assert.Equal(ConnectPhase.AwaitingSession, handshake.Phase);
        Assert.Equal("c1", handshake.ClientId);
        Assert.False(handshake.IsV5);
        Assert.Equal(4, info.ProtocolLevel);
        Assert.True(info.CleanStart);
        Assert.Equal(Now, info.ConnectedAtMs);
    }

    [Fact]
    public void An_MQTT_5_client_without_client_id_gets_one_and_CONNACK_names_it()
    {
        var handshake = new MqttConnectHandshake();
        Accept(handshake, new MqttConnectPacket { ClientId = "", CleanSession = false });

        Assert.StartsWith("auto-", handshake.ClientId, StringComparison.Ordinal);
        Assert.Equal(handshake.ClientId, handshake.ConnAck(0x00, false, Settings).AssignedClientIdentifier);
    }

    [Fact]
    public void An_MQTT_311_client_without_client_id_gets_one_with_clean_session()
    {
        var handshake = new MqttConnectHandshake();
        Accept(handshake, new MqttConnectPacket { ClientId = "", CleanSession = true }, MqttProtocolVersion.V311);

        Assert.StartsWith("auto-", handshake.ClientId, StringComparison.Ordinal);
        Assert.Null(handshake.ConnAck(0x00, false, Settings).AssignedClientIdentifier);
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V311, false)]
    [InlineData(MqttProtocolVersion.V310, true)]
    public void An_MQTT_3_client_without_client_id_is_refused_with_identifier_rejected(MqttProtocolVersion version, bool cleanSession)
    {
        var refusal = Refuse(new MqttConnectPacket { ClientId = "", CleanSession = cleanSession }, version);

        Assert.Equal(new ConnectRefusal(0x02, "empty client id without clean session"), refusal);
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V500, "a/#", 0x90)]
    [InlineData(MqttProtocolVersion.V311, "a/+", 0x02)]
    [InlineData(MqttProtocolVersion.V500, "", 0x90)]
    public void A_will_topic_that_is_no_topic_name_is_refused(MqttProtocolVersion version, string willTopic, byte code)
    {
        var refusal = Refuse(new MqttConnectPacket { ClientId = "c1", WillFlag = true, WillTopic = willTopic }, version);

        Assert.Equal(new ConnectRefusal(code, "invalid will topic"), refusal);
    }

    [Fact]
    public void A_will_topic_beyond_max_topic_levels_is_refused()
    {
        var deep = string.Join('/', Enumerable.Repeat("l", Settings.MaxTopicLevels + 1));

        var refusal = Refuse(new MqttConnectPacket { ClientId = "c1", WillFlag = true, WillTopic = deep }, MqttProtocolVersion.V500);

        Assert.Equal(0x90, refusal.Code);
    }

    [Fact]
    public void The_will_keeps_its_MQTT_5_delay_and_expiry_and_names_its_client()
    {
        var connect = new MqttConnectPacket
        {
            ClientId = "c1",
            WillFlag = true,
            WillTopic = "last/words",
            WillMessage = [1, 2],
            WillQoS = MqttQualityOfServiceLevel.AtLeastOnce,
            WillRetain = true,
            WillDelayInterval = 30,
            WillMessageExpiryInterval = 60,
            WillUserProperties = [new MqttUserProperty("k", "v"u8.ToArray().AsMemory())],
        };

        var v5 = Accept(new MqttConnectHandshake(), connect).Will!;
        var v311 = Accept(new MqttConnectHandshake(), connect, MqttProtocolVersion.V311).Will!;

        Assert.Equal(("last/words", (byte)1, true, "c1"), (v5.Message.Topic, v5.Message.Qos, v5.Message.Retain, v5.Message.OriginClientId));
        Assert.Equal(new byte[] { 1, 2 }, v5.Message.Payload);
        Assert.Equal(("k", "v"), (v5.Message.UserProperties![0].Name, v5.Message.UserProperties[0].Value));
        Assert.Equal((30u, 60u), (v5.DelaySeconds, v5.ExpirySeconds));
        Assert.Equal((0u, 0u), (v311.DelaySeconds, v311.ExpirySeconds));
    }

    [Fact]
    public void MQTT_5_connect_properties_reach_the_session_and_MQTT_311_has_none()
    {
        var connect = new MqttConnectPacket
        {
            ClientId = "c1",
            SessionExpiryInterval = 60,
            ReceiveMaximum = 10,
            MaximumPacketSize = 2048,
            TopicAliasMaximum = 5,
            RequestResponseInformation = true,
            RequestProblemInformation = true,
        };

        var v5 = Accept(new MqttConnectHandshake(), connect);
        var v311 = Accept(new MqttConnectHandshake(), connect, MqttProtocolVersion.V311);

        Assert.Equal((60u, (ushort)10, 2048u, (ushort)5, true, true),
            (v5.SessionExpiry, v5.ReceiveMaximum, v5.MaxPacketSize, v5.TopicAliasMax, v5.RequestResponse, v5.RequestProblem));
        Assert.Equal((0u, (ushort)0, 0u, (ushort)0, false, false),
            (v311.SessionExpiry, v311.ReceiveMaximum, v311.MaxPacketSize, v311.TopicAliasMax, v311.RequestResponse, v311.RequestProblem));
    }

    [Fact]
    public void Packets_sent_before_the_session_answers_are_handed_back_in_order_when_it_accepts()
    {
        var handshake = new MqttConnectHandshake();
        Accept(handshake, new MqttConnectPacket { ClientId = "c1" });
        var first = new InboundPacket(new MqttPingReqPacket(), 2);
        var second = new InboundPacket(new MqttPublishPacket { Topic = "t" }, 5);
        handshake.Hold(first);
        handshake.Hold(second);

        var early = handshake.OnAccepted();

        Assert.Equal(ConnectPhase.Connected, handshake.Phase);
        Assert.Equal([first, second], early!);
        Assert.Null(handshake.OnAccepted());
    }

    [Fact]
    public void CONNACK_accepting_an_MQTT_5_client_states_the_server_limits_and_response_information()
    {
        var handshake = new MqttConnectHandshake();
        Accept(handshake, new MqttConnectPacket { ClientId = "c1", RequestResponseInformation = true });
        var settings = Settings with { ServerKeepAlive = 30 };

        var ack = handshake.ConnAck(0x00, sessionPresent: true, settings);

        Assert.Equal(MqttConnectReasonCode.Success, ack.ReasonCode);
        Assert.True(ack.IsSessionPresent);
        Assert.Equal((settings.ReceiveMaximum, (uint)settings.MaxPacketSize, settings.TopicAliasMaximum, (ushort)30),
            (ack.ReceiveMaximum, ack.MaximumPacketSize, ack.TopicAliasMaximum, ack.ServerKeepAlive));
        Assert.Equal(MqttQualityOfServiceLevel.ExactlyOnce, ack.MaximumQoS);
        Assert.Equal("response/c1", ack.ResponseInformation);
        Assert.Null(handshake.ConnAck(0x00, false, Settings).AssignedClientIdentifier);
    }

    [Fact]
    public void A_refusing_CONNACK_never_says_session_present_nor_states_limits()
    {
        var handshake = new MqttConnectHandshake();
        Accept(handshake, new MqttConnectPacket { ClientId = "c1", RequestResponseInformation = true });

        var ack = handshake.ConnAck(handshake.SessionTimeoutCode, sessionPresent: true, Settings);

        Assert.Equal(MqttConnectReasonCode.ServerUnavailable, ack.ReasonCode);
        Assert.False(ack.IsSessionPresent);
        Assert.Equal(0, ack.ReceiveMaximum);
        Assert.Null(ack.ResponseInformation);
    }

    [Fact]
    public void A_session_that_does_not_answer_is_server_unavailable_in_both_versions()
    {
        var v5 = new MqttConnectHandshake();
        Accept(v5, new MqttConnectPacket { ClientId = "c1" });
        var v311 = new MqttConnectHandshake();
        Accept(v311, new MqttConnectPacket { ClientId = "c1" }, MqttProtocolVersion.V311);

        Assert.Equal(0x88, v5.SessionTimeoutCode);
        Assert.Equal(0x03, v311.SessionTimeoutCode);
    }

    [Theory]
    [InlineData(0u, 0u, true)]
    [InlineData(0u, 60u, false)]
    [InlineData(60u, 0u, true)]
    [InlineData(60u, 120u, true)]
    public void DISCONNECT_may_change_the_session_expiry_but_not_raise_it_from_0(uint atConnect, uint atDisconnect, bool allowed)
    {
        var handshake = new MqttConnectHandshake();
        Accept(handshake, new MqttConnectPacket { ClientId = "c1", SessionExpiryInterval = atConnect });

        Assert.Equal(allowed, handshake.MaySetExpiryOnDisconnect(atDisconnect));
    }

    [Fact]
    public void The_raw_CONNACK_is_an_MQTT_311_CONNACK_with_the_return_code()
    {
        // 20: CONNACK; 02: remaining length; 00: no session present; 01: unacceptable protocol level.
        Assert.Equal(new byte[] { 0x20, 0x02, 0x00, 0x01 }, MqttConnectHandshake.RawConnAck(0x01));
    }
}
