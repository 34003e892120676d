using Broker.Edge.Mqtt;

namespace Broker.Edge.Tests.Mqtt;

public class MqttInboundFlowTests
{
    private const long Now = 1_000_000;
    private const long Retry = 3_000;
    private const ushort AliasMaximum = 10;

    /// <summary>A QoS 2 publish routed to its targets and recorded by the session: PUBREC sent, waiting for PUBREL.</summary>
    private static MqttInboundFlow Recorded(ushort packetId)
    {
        var flow = new MqttInboundFlow();
        Assert.True(flow.Admit(receiveMaximum: 10));
        flow.Routing(packetId);
        flow.AwaitSession(packetId, release: false, Now);
        Assert.Equal(Qos2Answer.PubRec, flow.OnSessionAnswer(packetId, release: false));
        return flow;
    }

    // ------------------------------------------------------------------ topic aliases

    [Fact]
    public void A_topic_alias_set_with_a_topic_stands_for_it_in_later_publishes()
    {
        var flow = new MqttInboundFlow();

        Assert.Equal("a/b", flow.ResolveTopic("a/b", 3, AliasMaximum, out _));
        Assert.Equal("a/b", flow.ResolveTopic("", 3, AliasMaximum, out _));
        Assert.Equal("c", flow.ResolveTopic("c", 3, AliasMaximum, out _));
        Assert.Equal("c", flow.ResolveTopic(null, 3, AliasMaximum, out _));
    }

    [Fact]
    public void An_alias_never_set_is_a_protocol_error()
    {
        var flow = new MqttInboundFlow();
        flow.ResolveTopic("a", 1, AliasMaximum, out _);

        Assert.Null(flow.ResolveTopic("", 2, AliasMaximum, out var violation));
        Assert.Equal(new MqttViolation(0x82, "unknown topic alias"), violation);
    }

    [Fact]
    public void An_alias_above_the_maximum_is_topic_alias_invalid()
    {
        var flow = new MqttInboundFlow();

        Assert.Null(flow.ResolveTopic("a", AliasMaximum + 1, AliasMaximum, out var violation));
        Assert.Equal(new MqttViolation(0x94, "topic alias out of range"), violation);
    }

    // ------------------------------------------------------------------ receive maximum

    [Fact]
    public void One_publish_more_than_the_receive_maximum_is_refused()
    {
        var flow = new MqttInboundFlow();

        Assert.True(flow.Admit(2));
        Assert.True(flow.Admit(2));
        Assert.False(flow.Admit(2));
    }

    [Fact]
    public void A_PUBACK_makes_room_for_another_publish()
    {
        var flow = new MqttInboundFlow();
        flow.Admit(1);

        flow.Acknowledged();

        Assert.Equal(0, flow.Unacknowledged);
        Assert.True(flow.Admit(1));
    }

    [Fact]
    public void A_QoS_2_publish_counts_until_its_PUBCOMP()
    {
        var flow = Recorded(7);
        Assert.Equal(1, flow.Unacknowledged);

        Assert.True(flow.IsRecorded(7));
        flow.AwaitSession(7, release: true, Now);
        Assert.Equal(1, flow.Unacknowledged);

        Assert.Equal(Qos2Answer.PubComp, flow.OnSessionAnswer(7, release: true));
        Assert.Equal(0, flow.Unacknowledged);
        Assert.False(flow.IsRecorded(7));
        Assert.False(flow.IsResend(7, out _));
    }

    // ------------------------------------------------------------------ QoS 2

    [Fact]
    public void A_QoS_2_publish_resent_while_it_is_routed_is_neither_routed_nor_confirmed_again()
    {
        var flow = new MqttInboundFlow();
        flow.Admit(10);
        flow.Routing(7);

        Assert.True(flow.IsResend(7, out var confirm));
        Assert.False(confirm);
        Assert.False(flow.IsResend(8, out _));
    }

    [Fact]
    public void A_QoS_2_publish_resent_after_the_session_recorded_it_is_confirmed_again()
    {
        var flow = Recorded(7);

        Assert.True(flow.IsResend(7, out var confirm));
        Assert.True(confirm);
    }

    [Fact]
    public void A_PUBREL_for_an_id_never_recorded_is_answered_at_once()
    {
        var flow = new MqttInboundFlow();
        flow.Admit(10);
        flow.Routing(7);

        Assert.False(flow.IsRecorded(7));
    }

    [Fact]
    public void Ids_the_session_still_holds_from_an_earlier_connection_take_PUBREL()
    {
        var flow = new MqttInboundFlow();

        flow.Restore([3, 4]);

        Assert.True(flow.IsRecorded(3));
        Assert.True(flow.IsRecorded(4));
        Assert.True(flow.IsResend(4, out var confirm) && confirm);
    }

    [Fact]
    public void An_answer_the_connection_no_longer_waits_for_sends_nothing()
    {
        var flow = Recorded(7);

        Assert.Equal(Qos2Answer.Stale, flow.OnSessionAnswer(7, release: false));
        Assert.Equal(Qos2Answer.Stale, flow.OnSessionAnswer(7, release: true));
        flow.AwaitSession(7, release: true, Now);
        Assert.Equal(Qos2Answer.Stale, flow.OnSessionAnswer(7, release: false));
        Assert.True(flow.AwaitsSession);
    }

    [Fact]
    public void A_refused_QoS_2_publish_frees_its_id_and_its_place()
    {
        var flow = new MqttInboundFlow();
        flow.Admit(1);
        flow.Routing(7);

        flow.Refused(qos: 2, packetId: 7);

        Assert.False(flow.IsResend(7, out _));
        Assert.True(flow.Admit(1));
    }

    [Fact]
    public void Steps_the_session_has_not_answered_in_time_are_sent_again_and_their_clock_restarts()
    {
        var flow = new MqttInboundFlow();
        flow.AwaitSession(1, release: false, Now);
        flow.AwaitSession(2, release: true, Now + 2_000);

        Assert.Null(flow.TakeDue(Now + Retry - 1, Retry));
        Assert.Equal([(1, false)], flow.TakeDue(Now + Retry, Retry)!);
        Assert.Equal([(2, true)], flow.TakeDue(Now + Retry + 2_000, Retry)!);
        Assert.Equal([(1, false), (2, true)], flow.TakeDue(Now + 2 * Retry + 2_000, Retry)!);
    }

    [Fact]
    public void Nothing_awaits_the_session_once_every_step_is_answered()
    {
        var flow = new MqttInboundFlow();
        Assert.False(flow.AwaitsSession);
        flow.AwaitSession(1, release: false, Now);
        Assert.True(flow.AwaitsSession);

        flow.OnSessionAnswer(1, release: false);

        Assert.False(flow.AwaitsSession);
        Assert.Null(flow.TakeDue(Now + 10 * Retry, Retry));
    }
}
