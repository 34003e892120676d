using System.Text;
using Broker.Actors.Messages;
using Broker.Actors.Sessions;

namespace Broker.Actors.Tests.Sessions;

public class SessionStateTests
{
    private const string Me = "client-1";
    private const long Now = 1_700_000_000_000;
    private static readonly SessionLimits Limits = new(MaxInflight: 10, MaxQueue: 100, QueueQos0: false);

    private static ConnectInfo Info(byte level = 5, bool clean = true, uint expiry = 0, ushort receiveMaximum = 0, WillMessage? will = null) =>
        new(level, clean, expiry, receiveMaximum, 0, 0, false, true, will, Now);

    private static PublishedMessage Msg(string topic, string payload, byte qos = 1, bool retain = false, long expiresAt = 0, string? origin = null) =>
        new(topic, Encoding.UTF8.GetBytes(payload), qos, retain, ExpiresAtUnixMs: expiresAt, OriginClientId: origin);

    private static string Text(SendPublish p) => Encoding.UTF8.GetString(p.Message.Payload);

    private static List<SendPublish> Publishes(SessionDecision d) => [.. d.Effects.OfType<SendPublish>()];

    /// <summary>Runs decisions one after the other and keeps every event, as the session actor journals them.</summary>
    private sealed class Run(SessionState start, SessionLimits limits)
    {
        public SessionState State = start;
        public readonly List<ISessionEvent> Journal = [];
        public SessionLimits Limits = limits;

        public SessionDecision Do(Func<SessionState, SessionDecision> decide)
        {
            var d = decide(State);
            Journal.AddRange(d.Events);
            State = d.State;
            return d;
        }

        public SessionDecision Connect(ConnectInfo info, uint expiry = 0, long now = Now) =>
            Do(s => s.OnConnect("conn", info, expiry, Limits, now));

        public SessionDecision Subscribe(params Subscription[] subs) => Do(s => s.OnSubscribe(1, subs, Limits));

        public SessionDecision Deliver(PublishedMessage m, long now = Now) => Do(s => s.OnDeliver(m, true, null, Limits, now));

        public SessionDecision Ack(AckKind kind, ushort packetId, long now = Now) => Do(s => s.OnClientAck(kind, packetId, Limits, now));

        public SessionDecision Close(bool graceful = true) => Do(s => s.OnConnectionClosed(graceful, false, null, Now));
    }

    private static Run Connected(SessionLimits? limits = null, ConnectInfo? info = null, uint expiry = 0)
    {
        var run = new Run(SessionState.Empty(Me), limits ?? Limits);
        run.Connect(info ?? Info(expiry: expiry), expiry);
        return run;
    }

    // ------------------------------------------------------------------ connect

    [Fact]
    public void First_connect_creates_the_session_without_session_present()
    {
        var d = SessionState.Empty(Me).OnConnect("conn", Info(clean: false, expiry: 60), 60, Limits, Now);
        var accepted = Assert.Single(d.Effects.OfType<ConnectAccepted>());
        Assert.Equal("conn", accepted.ConnectionId);
        Assert.False(accepted.SessionPresent);
        Assert.IsType<SessionConnected>(Assert.Single(d.Events));
        Assert.True(d.State.Exists);
        Assert.True(d.State.Connected);
        Assert.True(d.State.IsPersistent);
        Assert.Equal(60u, d.State.EffectiveExpiry);
    }

    [Fact]
    public void Reconnect_without_clean_start_keeps_subscriptions_and_queue_and_reports_session_present()
    {
        var run = Connected(expiry: 60);
        run.Subscribe(new Subscription("t", 1));
        run.Close();
        run.Deliver(Msg("t", "m1"));
        var d = run.Connect(Info(clean: false, expiry: 60), 60);
        Assert.True(Assert.Single(d.Effects.OfType<ConnectAccepted>()).SessionPresent);
        Assert.True(d.State.Subscriptions.ContainsKey("t"));
        Assert.Equal("m1", Text(Assert.Single(Publishes(d))));
    }

    [Fact]
    public void Clean_start_resets_subscriptions_queue_and_inflight()
    {
        var run = Connected(expiry: 60);
        run.Subscribe(new Subscription("t", 1));
        run.Deliver(Msg("t", "inflight"));
        run.Close();
        run.Deliver(Msg("t", "queued"));
        Assert.Equal(1, run.State.QueueCount);
        Assert.Single(run.State.Inflight);

        var d = run.Connect(Info(clean: true, expiry: 60), 60);
        Assert.False(Assert.Single(d.Effects.OfType<ConnectAccepted>()).SessionPresent);
        Assert.Empty(d.State.Subscriptions);
        Assert.Equal(0, d.State.QueueCount);
        Assert.Empty(d.State.Queue);
        Assert.Empty(d.State.Inflight);
        Assert.Empty(Publishes(d));
        Assert.Empty(Publishes(run.Deliver(Msg("t", "after"))));
    }

    [Fact]
    public void Clean_start_does_not_reuse_a_packet_id_of_the_previous_session()
    {
        var run = Connected(expiry: 60);
        run.Subscribe(new Subscription("t", 1));
        var first = Assert.Single(Publishes(run.Deliver(Msg("t", "a")))).PacketId;
        run.Close();
        run.Connect(Info(clean: true), 0);
        run.Subscribe(new Subscription("t", 1));
        var second = Assert.Single(Publishes(run.Deliver(Msg("t", "b")))).PacketId;
        Assert.NotEqual(first, second);
    }

    [Fact]
    public void Graceful_close_drops_the_will_and_unclean_close_keeps_it()
    {
        var will = new WillMessage(Msg("will", "bye"), 0);
        var graceful = Connected(info: Info(will: will), expiry: 0);
        Assert.NotNull(graceful.State.Will);
        graceful.Close(graceful: true);
        Assert.Null(graceful.State.Will);

        var broken = Connected(info: Info(will: will), expiry: 0);
        broken.Close(graceful: false);
        Assert.False(broken.State.Connected);
        Assert.Equal(will, broken.State.Will);
        var d = broken.Do(s => s.OnWillPublished());
        Assert.IsType<WillCleared>(Assert.Single(d.Events));
        Assert.Null(d.State.Will);
        Assert.Empty(d.State.OnWillPublished().Events);
    }

    [Fact]
    public void Disconnect_with_will_message_keeps_the_will_and_can_change_the_expiry()
    {
        var run = Connected(info: Info(will: new WillMessage(Msg("will", "bye"), 5)), expiry: 10);
        var d = run.Do(s => s.OnConnectionClosed(graceful: true, publishWill: true, newExpiry: 99, Now + 1));
        Assert.NotNull(d.State.Will);
        Assert.Equal(99u, d.State.EffectiveExpiry);
        Assert.Equal(Now + 1, d.State.DisconnectedAtMs);
    }

    // ------------------------------------------------------------------ subscribe

    [Fact]
    public void Subscribe_grants_at_most_the_server_maximum_qos()
    {
        var run = Connected(Limits with { MaxQos = 1 });
        var d = run.Subscribe(new Subscription("a", 2), new Subscription("b", 0), new Subscription("c", 1));
        Assert.Equal([1, 0, 1], Assert.Single(d.Effects.OfType<SubscribeDone>()).ReasonCodes);
        Assert.Equal(1, d.State.Subscriptions["a"].Qos);
    }

    [Theory]
    [InlineData(5, 0x8F)]
    [InlineData(4, 0x80)]
    [InlineData(3, 0x80)]
    public void Invalid_filter_is_refused_with_the_code_of_the_protocol_version(byte level, byte code)
    {
        var run = Connected(info: Info(level: level));
        var d = run.Subscribe(new Subscription("a/#/b", 1), new Subscription("ok/+", 2), new Subscription("$share/g", 1));
        var done = Assert.Single(d.Effects.OfType<SubscribeDone>());
        Assert.Equal(1, done.PacketId);
        Assert.Equal([code, 2, code], done.ReasonCodes);
        Assert.Equal(["ok/+"], d.State.Subscriptions.Keys);
        Assert.Single(d.Events);
    }

    [Fact]
    public void Resubscribing_replaces_the_options_of_the_same_filter()
    {
        var run = Connected();
        run.Subscribe(new Subscription("t", 2, SubscriptionId: 1));
        var d = run.Subscribe(new Subscription("t", 0, SubscriptionId: 2));
        Assert.Single(d.State.Subscriptions);
        Assert.Equal(new Subscription("t", 0, SubscriptionId: 2), d.State.Subscriptions["t"]);
    }

    [Fact]
    public void Retain_handling_0_always_requests_retained_messages()
    {
        var run = Connected();
        var sub = new Subscription("t/#", 1, RetainHandling: 0);
        Assert.Equal(sub, Assert.Single(run.Subscribe(sub).Effects.OfType<RetainedRequestEffect>()).Subscription);
        Assert.Single(run.Subscribe(sub).Effects.OfType<RetainedRequestEffect>());
    }

    [Fact]
    public void Retain_handling_1_requests_retained_messages_only_for_a_new_subscription()
    {
        var run = Connected();
        var sub = new Subscription("t/#", 1, RetainHandling: 1);
        Assert.Single(run.Subscribe(sub).Effects.OfType<RetainedRequestEffect>());
        Assert.Empty(run.Subscribe(sub).Effects.OfType<RetainedRequestEffect>());
    }

    [Fact]
    public void Retain_handling_2_never_requests_retained_messages()
    {
        var run = Connected();
        var d = run.Subscribe(new Subscription("t/#", 1, RetainHandling: 2));
        Assert.Empty(d.Effects.OfType<RetainedRequestEffect>());
        Assert.Single(d.Effects.OfType<SubscribeDone>());
    }

    [Fact]
    public void Shared_subscription_gets_no_retained_messages()
    {
        var run = Connected();
        Assert.Empty(run.Subscribe(new Subscription("$share/g/t", 1)).Effects.OfType<RetainedRequestEffect>());
    }

    [Fact]
    public void Retained_request_carries_the_granted_qos()
    {
        var run = Connected(Limits with { MaxQos = 0 });
        var effect = Assert.Single(run.Subscribe(new Subscription("t", 2)).Effects.OfType<RetainedRequestEffect>());
        Assert.Equal(0, effect.Subscription.Qos);
    }

    [Fact]
    public void Unsubscribe_answers_success_or_no_subscription_existed()
    {
        var run = Connected();
        run.Subscribe(new Subscription("a", 1));
        var d = run.Do(s => s.OnUnsubscribe(9, ["a", "b"], run.Limits));
        var done = Assert.Single(d.Effects.OfType<UnsubscribeDone>());
        Assert.Equal(9, done.PacketId);
        Assert.Equal([0x00, 0x11], done.ReasonCodes);
        Assert.Empty(d.State.Subscriptions);
        Assert.Empty(Publishes(run.Deliver(Msg("a", "x"))));
    }

    private static readonly SessionLimits Bounded = Limits with { MaxTopicLength = 16, MaxTopicLevels = 3, MaxSubscriptions = 2 };

    [Theory]
    [InlineData(5, 0x8F)]   // Topic Filter invalid
    [InlineData(4, 0x80)]   // Failure
    public void Subscribe_refuses_only_the_filters_beyond_the_topic_bounds(byte level, byte refused)
    {
        var run = Connected(Bounded, Info(level: level));
        var d = run.Subscribe(
            new Subscription("a/b/c", 1),                  // 3 levels: the bound
            new Subscription("a/b/c/d", 1),                // 4 levels
            new Subscription("abcdefghijklmnopq", 1),      // 17 bytes
            new Subscription("é/ééééééé", 0));             // 9 chars but 17 UTF-8 bytes
        Assert.Equal([0x01, refused, refused, refused], Assert.Single(d.Effects.OfType<SubscribeDone>()).ReasonCodes);
        Assert.Equal(["a/b/c"], d.State.Subscriptions.Keys);
    }

    [Theory]
    [InlineData(5, 0x97)]   // Quota exceeded
    [InlineData(4, 0x80)]   // Failure
    public void Subscribe_beyond_the_subscription_quota_is_refused_but_replacing_a_filter_is_not(byte level, byte refused)
    {
        var run = Connected(Bounded, Info(level: level));
        var d = run.Subscribe(new Subscription("a", 0), new Subscription("b", 0), new Subscription("c", 0), new Subscription("a", 1));
        Assert.Equal([0x00, 0x00, refused, 0x01], Assert.Single(d.Effects.OfType<SubscribeDone>()).ReasonCodes);
        Assert.Equal(["a", "b"], d.State.Subscriptions.Keys);
        Assert.Equal(1, d.State.Subscriptions["a"].Qos);

        run.Do(s => s.OnUnsubscribe(2, ["b"], run.Limits));
        Assert.Equal([0x00], Assert.Single(run.Subscribe(new Subscription("c", 0)).Effects.OfType<SubscribeDone>()).ReasonCodes);
    }

    [Fact]
    public void Unsubscribe_of_a_filter_beyond_the_topic_bounds_answers_topic_filter_invalid()
    {
        var run = Connected(Bounded);
        var d = run.Do(s => s.OnUnsubscribe(3, ["a/b/c/d", "a"], run.Limits));
        Assert.Equal([0x8F, 0x11], Assert.Single(d.Effects.OfType<UnsubscribeDone>()).ReasonCodes);
    }

    [Fact]
    public void A_filter_held_from_before_the_bounds_were_lowered_can_still_be_unsubscribed()
    {
        var run = Connected();
        run.Subscribe(new Subscription("a/b/c/d", 1));
        run.Limits = Bounded;
        var d = run.Do(s => s.OnUnsubscribe(3, ["a/b/c/d"], run.Limits));
        Assert.Equal([0x00], Assert.Single(d.Effects.OfType<UnsubscribeDone>()).ReasonCodes);
        Assert.Empty(d.State.Subscriptions);
    }

    // ------------------------------------------------------------------ delivery while connected

    [Fact]
    public void Deliver_while_connected_sends_publish_with_a_packet_id_and_acks_the_router()
    {
        var run = Connected();
        run.Subscribe(new Subscription("t", 1));
        var d = run.Deliver(Msg("t", "hello"));
        var p = Assert.Single(Publishes(d));
        Assert.NotEqual(0, p.PacketId);
        Assert.Equal(1, p.Qos);
        Assert.False(p.Dup);
        Assert.Equal("hello", Text(p));
        Assert.Contains(AckDeliverEffect.Instance, d.Effects);
        Assert.Equal(InflightStage.AwaitPubAck, d.State.Inflight[p.PacketId].Stage);
        Assert.Equal(0, d.State.QueueCount);
    }

    [Fact]
    public void Qos0_is_sent_without_packet_id_and_without_state()
    {
        var run = Connected();
        run.Subscribe(new Subscription("t", 0));
        var d = run.Deliver(Msg("t", "x", qos: 1));
        var p = Assert.Single(Publishes(d));
        Assert.Equal(0, p.PacketId);
        Assert.Equal(0, p.Qos);
        Assert.Empty(d.Events);
        Assert.Empty(d.State.Inflight);
    }

    [Fact]
    public void Message_qos_is_the_minimum_of_published_and_subscribed()
    {
        var run = Connected();
        run.Subscribe(new Subscription("t", 2));
        Assert.Equal(1, Assert.Single(Publishes(run.Deliver(Msg("t", "x", qos: 1)))).Qos);
    }

    [Fact]
    public void Unmatched_message_is_only_acknowledged()
    {
        var run = Connected();
        run.Subscribe(new Subscription("t", 1));
        var d = run.Deliver(Msg("other", "x"));
        Assert.Empty(d.Events);
        Assert.Equal([AckDeliverEffect.Instance], d.Effects);
    }

    [Fact]
    public void Packet_ids_wrap_and_skip_ids_in_flight()
    {
        var run = Connected();
        run.Subscribe(new Subscription("t", 1));
        run.State = run.State with { LastPacketId = 65534 };
        Assert.Equal(65535, Publishes(run.Deliver(Msg("t", "a")))[0].PacketId);
        Assert.Equal(1, Publishes(run.Deliver(Msg("t", "b")))[0].PacketId);
        run.Ack(AckKind.PubAck, 65535);
        run.State = run.State with { LastPacketId = 65535 };
        Assert.Equal(2, Publishes(run.Deliver(Msg("t", "c")))[0].PacketId);
    }

    [Fact]
    public void Server_inflight_limit_queues_the_excess_and_acks_release_it_in_order()
    {
        var run = Connected(Limits with { MaxInflight = 2 });
        run.Subscribe(new Subscription("t", 1));
        var sent = new List<SendPublish>();
        for (var i = 1; i <= 5; i++)
        {
            sent.AddRange(Publishes(run.Deliver(Msg("t", "m" + i))));
        }
        Assert.Equal(["m1", "m2"], sent.Select(Text));
        Assert.Equal(2, run.State.Inflight.Count);
        Assert.Equal(3, run.State.QueueCount);

        var next = Publishes(run.Ack(AckKind.PubAck, sent[0].PacketId));
        Assert.Equal(["m3"], next.Select(Text));
        sent.AddRange(next);
        Assert.Equal(["m4"], Publishes(run.Ack(AckKind.PubAck, sent[1].PacketId)).Select(Text));
        Assert.Equal(["m5"], Publishes(run.Ack(AckKind.PubAck, sent[2].PacketId)).Select(Text));
        Assert.Equal(0, run.State.QueueCount);
    }

    [Fact]
    public void Client_receive_maximum_narrows_the_window()
    {
        var run = Connected(Limits with { MaxInflight = 10 }, Info(receiveMaximum: 1));
        run.Subscribe(new Subscription("t", 1));
        var first = Assert.Single(Publishes(run.Deliver(Msg("t", "m1"))));
        Assert.Empty(Publishes(run.Deliver(Msg("t", "m2"))));
        Assert.Equal(1, run.State.Window(run.Limits));
        Assert.Equal(["m2"], Publishes(run.Ack(AckKind.PubAck, first.PacketId)).Select(Text));
    }

    [Fact]
    public void Qos0_behind_queued_messages_keeps_its_place()
    {
        var run = Connected(Limits with { MaxInflight = 1 });
        run.Subscribe(new Subscription("t", 1));
        var first = Assert.Single(Publishes(run.Deliver(Msg("t", "m1"))));
        Assert.Empty(Publishes(run.Deliver(Msg("t", "m2"))));
        Assert.Empty(Publishes(run.Deliver(Msg("t", "m3", qos: 0))));
        // m2 takes the freed window slot; m3 (QoS 0) needs no slot and follows it at once.
        var released = Publishes(run.Ack(AckKind.PubAck, first.PacketId));
        Assert.Equal(["m2", "m3"], released.Select(Text));
        Assert.Equal(0, released[1].Qos);
        Assert.Equal(0, run.State.QueueCount);
    }

    [Fact]
    public void Ack_for_unknown_packet_or_wrong_stage_changes_nothing()
    {
        var run = Connected();
        run.Subscribe(new Subscription("t", 2));
        var p = Assert.Single(Publishes(run.Deliver(Msg("t", "x", qos: 2))));
        var before = run.State;
        Assert.Empty(run.Ack(AckKind.PubAck, p.PacketId).Events);
        Assert.Empty(run.Ack(AckKind.PubComp, p.PacketId).Events);
        Assert.Empty(run.Ack(AckKind.PubAck, 999).Events);
        Assert.Same(before, run.State);
    }

    [Fact]
    public void Qos2_outbound_flow_goes_pubrec_pubrel_pubcomp()
    {
        var run = Connected(Limits with { MaxInflight = 1 });
        run.Subscribe(new Subscription("t", 2));
        var p = Assert.Single(Publishes(run.Deliver(Msg("t", "m1", qos: 2))));
        Assert.Equal(2, p.Qos);
        Assert.Equal(InflightStage.AwaitPubRec, run.State.Inflight[p.PacketId].Stage);
        Assert.Empty(Publishes(run.Deliver(Msg("t", "m2", qos: 2))));

        var rec = run.Ack(AckKind.PubRec, p.PacketId);
        Assert.Equal([new SendPubRel(p.PacketId)], rec.Effects);
        Assert.Equal(InflightStage.AwaitPubComp, run.State.Inflight[p.PacketId].Stage);

        // A repeated PUBREC is answered with PUBREL again and changes nothing.
        var again = run.Ack(AckKind.PubRec, p.PacketId);
        Assert.Empty(again.Events);
        Assert.Equal([new SendPubRel(p.PacketId)], again.Effects);

        var comp = run.Ack(AckKind.PubComp, p.PacketId);
        Assert.Equal(["m2"], Publishes(comp).Select(Text));
        Assert.Equal(["m2"], run.State.Inflight.Values.Select(i => Encoding.UTF8.GetString(i.Entry.Message.Payload)));
    }

    // ------------------------------------------------------------------ offline

    [Fact]
    public void Offline_persistent_session_queues_qos1_and_drops_qos0()
    {
        var run = Connected(expiry: 60);
        run.Subscribe(new Subscription("t", 1));
        run.Close();
        var d1 = run.Deliver(Msg("t", "q1", qos: 1));
        Assert.IsType<MessageQueued>(Assert.Single(d1.Events));
        Assert.Empty(Publishes(d1));
        Assert.Contains(AckDeliverEffect.Instance, d1.Effects);
        var d0 = run.Deliver(Msg("t", "q0", qos: 0));
        Assert.Empty(d0.Events);
        Assert.Equal(1, run.State.QueueCount);
    }

    [Fact]
    public void Offline_qos0_is_queued_when_configured()
    {
        var run = Connected(Limits with { QueueQos0 = true }, expiry: 60);
        run.Subscribe(new Subscription("t", 1));
        run.Close();
        run.Deliver(Msg("t", "q0", qos: 0));
        Assert.Equal(1, run.State.QueueCount);
        var d = run.Connect(Info(clean: false, expiry: 60), 60);
        var p = Assert.Single(Publishes(d));
        Assert.Equal(0, p.Qos);
        Assert.Equal(0, p.PacketId);
        Assert.Equal(0, d.State.QueueCount);
    }

    [Fact]
    public void Full_queue_drops_the_newest_message()
    {
        var run = Connected(Limits with { MaxQueue = 3 }, expiry: 60);
        run.Subscribe(new Subscription("t", 1));
        run.Close();
        for (var i = 1; i <= 5; i++)
        {
            var d = run.Deliver(Msg("t", "m" + i));
            Assert.Contains(AckDeliverEffect.Instance, d.Effects);
        }
        Assert.Equal(3, run.State.QueueCount);
        Assert.Equal(["m1", "m2", "m3"], run.State.Queue.Select(e => Encoding.UTF8.GetString(e.Message.Payload)));
    }

    [Fact]
    public void Connected_session_queues_qos1_beyond_the_bound_but_drops_qos0_behind_a_full_queue()
    {
        var run = Connected(Limits with { MaxInflight = 1, MaxQueue = 2 });
        run.Subscribe(new Subscription("t", 1));
        for (var i = 1; i <= 4; i++)
        {
            run.Deliver(Msg("t", "m" + i));
        }
        run.Deliver(Msg("t", "q0", qos: 0));
        Assert.Single(run.State.Inflight);
        // Nothing acknowledged is dropped while the client is connected: the actor holds the publishers'
        // acknowledgements back instead (flow control), and QoS 0 behind the full queue is dropped.
        Assert.Equal(["m2", "m3", "m4"], run.State.Queue.Select(e => Encoding.UTF8.GetString(e.Message.Payload)));
    }

    [Fact]
    public void Reconnect_resends_inflight_with_dup_and_pubrel_for_await_pubcomp_then_the_queue()
    {
        var run = Connected(expiry: 60);
        run.Subscribe(new Subscription("one", 1), new Subscription("two", 2));
        var p1 = Assert.Single(Publishes(run.Deliver(Msg("one", "a", qos: 1))));
        var p2 = Assert.Single(Publishes(run.Deliver(Msg("two", "b", qos: 2))));
        run.Ack(AckKind.PubRec, p2.PacketId);
        var p3 = Assert.Single(Publishes(run.Deliver(Msg("two", "c", qos: 2))));
        run.Close(graceful: false);
        run.Deliver(Msg("one", "d", qos: 1));

        var d = run.Connect(Info(clean: false, expiry: 60), 60);
        Assert.True(Assert.Single(d.Effects.OfType<ConnectAccepted>()).SessionPresent);
        var resent = d.Effects.Where(e => e is SendPublish or SendPubRel).ToList();
        Assert.Equal(4, resent.Count);
        var r1 = Assert.IsType<SendPublish>(resent[0]);
        Assert.Equal((p1.PacketId, true, "a"), (r1.PacketId, r1.Dup, Text(r1)));
        Assert.Equal(new SendPubRel(p2.PacketId), resent[1]);
        var r3 = Assert.IsType<SendPublish>(resent[2]);
        Assert.Equal((p3.PacketId, true, (byte)2, "c"), (r3.PacketId, r3.Dup, r3.Qos, Text(r3)));
        var fresh = Assert.IsType<SendPublish>(resent[3]);
        Assert.False(fresh.Dup);
        Assert.Equal("d", Text(fresh));
        Assert.DoesNotContain(fresh.PacketId, new[] { p1.PacketId, p2.PacketId, p3.PacketId });
    }

    [Fact]
    public void A_connection_kept_across_its_sessions_node_failure_gets_what_is_in_flight_again_then_the_queue()
    {
        var run = Connected(expiry: 60);
        run.Subscribe(new Subscription("one", 1), new Subscription("two", 2));
        var p1 = Assert.Single(Publishes(run.Deliver(Msg("one", "a", qos: 1))));
        var p2 = Assert.Single(Publishes(run.Deliver(Msg("two", "b", qos: 2))));
        run.Ack(AckKind.PubRec, p2.PacketId);

        // The state as a survivor recovers it; the client never left, so nothing is journaled for the resume itself.
        var d = run.Do(s => s.OnResumeAfterFailure(Limits, Now));
        Assert.DoesNotContain(d.Events, e => e is not MessageSent);
        var resent = d.Effects.Where(e => e is SendPublish or SendPubRel).ToList();
        var r1 = Assert.IsType<SendPublish>(resent[0]);
        Assert.Equal((p1.PacketId, true, "a"), (r1.PacketId, r1.Dup, Text(r1)));
        Assert.Equal(new SendPubRel(p2.PacketId), resent[1]);
        Assert.Equal(2, resent.Count);
    }

    [Fact]
    public void Reconnect_reports_pending_inbound_qos2_ids()
    {
        var run = Connected(expiry: 60);
        run.Do(s => s.OnInboundQos2(7, release: false));
        run.Close(graceful: false);
        var d = run.Connect(Info(clean: false, expiry: 60), 60);
        Assert.Equal([7], Assert.Single(d.Effects.OfType<ConnectAccepted>()).PendingInboundQos2);
    }

    [Fact]
    public void Expired_message_is_not_delivered()
    {
        var run = Connected();
        run.Subscribe(new Subscription("t", 1));
        var d = run.Deliver(Msg("t", "old", expiresAt: Now));
        Assert.Empty(d.Events);
        Assert.Equal([AckDeliverEffect.Instance], d.Effects);
        Assert.Single(Publishes(run.Deliver(Msg("t", "fresh", expiresAt: Now + 1))));
    }

    [Fact]
    public void Queued_message_that_expires_offline_is_dropped_on_reconnect()
    {
        var run = Connected(expiry: 600);
        run.Subscribe(new Subscription("t", 1));
        run.Close();
        run.Deliver(Msg("t", "short", expiresAt: Now + 1_000));
        run.Deliver(Msg("t", "long", expiresAt: Now + 100_000));
        Assert.Equal(2, run.State.QueueCount);
        var d = run.Connect(Info(clean: false, expiry: 600), 600, now: Now + 5_000);
        Assert.Contains(d.Events, e => e is MessageDropped);
        Assert.Equal(["long"], Publishes(d).Select(Text));
        Assert.Equal(0, d.State.QueueCount);
    }

    // ------------------------------------------------------------------ matching rules

    [Fact]
    public void Overlapping_subscriptions_give_one_publish_with_max_qos_and_every_subscription_id()
    {
        var run = Connected();
        run.Subscribe(new Subscription("a/#", 1, SubscriptionId: 11));
        run.Subscribe(new Subscription("a/+", 2, SubscriptionId: 22));
        run.Subscribe(new Subscription("a/b", 0));
        var p = Assert.Single(Publishes(run.Deliver(Msg("a/b", "x", qos: 2))));
        Assert.Equal(2, p.Qos);
        Assert.Equal([11u, 22u], p.SubscriptionIds!.Order());
    }

    [Fact]
    public void No_local_subscription_skips_the_clients_own_messages()
    {
        var run = Connected();
        run.Subscribe(new Subscription("t", 1, NoLocal: true));
        Assert.Empty(Publishes(run.Deliver(Msg("t", "mine", origin: Me))));
        Assert.Single(Publishes(run.Deliver(Msg("t", "theirs", origin: "other"))));
    }

    [Fact]
    public void No_local_on_one_filter_does_not_hide_an_overlapping_plain_one()
    {
        var run = Connected();
        run.Subscribe(new Subscription("t", 1, NoLocal: true), new Subscription("#", 0));
        var p = Assert.Single(Publishes(run.Deliver(Msg("t", "mine", origin: Me))));
        Assert.Equal(0, p.Qos);
    }

    [Fact]
    public void Shared_subscription_receives_only_what_its_group_picked()
    {
        var run = Connected();
        run.Subscribe(new Subscription("$share/g/t", 1), new Subscription("other", 2));
        var limits = run.Limits;
        Assert.Empty(Publishes(run.Do(s => s.OnDeliver(Msg("t", "not picked"), true, null, limits, Now))));
        var p = Assert.Single(Publishes(run.Do(s => s.OnDeliver(Msg("t", "picked", qos: 2), false, ["$share/g/t"], limits, Now))));
        Assert.Equal(1, p.Qos);
        Assert.Equal("picked", Text(p));
    }

    [Fact]
    public void Plain_subscription_is_ignored_when_only_a_shared_group_picked_the_session()
    {
        var run = Connected();
        run.Subscribe(new Subscription("$share/g/t", 0), new Subscription("t", 2));
        var limits = run.Limits;
        var p = Assert.Single(Publishes(run.Do(s => s.OnDeliver(Msg("t", "x", qos: 2), false, ["$share/g/t"], limits, Now))));
        Assert.Equal(0, p.Qos);
    }

    [Fact]
    public void Retain_flag_is_cleared_for_mqtt311_and_kept_with_retain_as_published_for_mqtt5()
    {
        var v4 = Connected(info: Info(level: 4));
        v4.Subscribe(new Subscription("t", 1, RetainAsPublished: true));
        Assert.False(Assert.Single(Publishes(v4.Deliver(Msg("t", "x", retain: true)))).Retain);

        var v5 = Connected();
        v5.Subscribe(new Subscription("t", 1, RetainAsPublished: true), new Subscription("u", 1));
        Assert.True(Assert.Single(Publishes(v5.Deliver(Msg("t", "x", retain: true)))).Retain);
        Assert.False(Assert.Single(Publishes(v5.Deliver(Msg("u", "x", retain: true)))).Retain);
    }

    [Fact]
    public void Retained_message_for_a_new_subscription_is_sent_with_retain_and_no_router_ack()
    {
        var run = Connected();
        var sub = new Subscription("t/#", 1, SubscriptionId: 5);
        run.Subscribe(sub);
        var limits = run.Limits;
        var d = run.Do(s => s.OnDeliver(Msg("t/x", "kept", qos: 2, retain: true), false, null, limits, Now, retainedFor: sub));
        var p = Assert.Single(Publishes(d));
        Assert.True(p.Retain);
        Assert.Equal(1, p.Qos);
        Assert.Equal([5u], p.SubscriptionIds!);
        Assert.DoesNotContain(AckDeliverEffect.Instance, d.Effects);
    }

    [Fact]
    public void Deliver_to_a_session_that_does_not_exist_is_acknowledged_and_ignored()
    {
        var d = SessionState.Empty(Me).OnDeliver(Msg("t", "x"), true, null, Limits, Now);
        Assert.Empty(d.Events);
        Assert.Equal([AckDeliverEffect.Instance], d.Effects);
    }

    // ------------------------------------------------------------------ inbound QoS 2

    [Fact]
    public void Inbound_qos2_is_marked_once_and_released_once()
    {
        var run = Connected();
        var mark = run.Do(s => s.OnInboundQos2(7, release: false));
        Assert.Equal([new InboundQos2Changed(7, false)], mark.Events);
        Assert.Equal([new InboundQos2Done(7, false)], mark.Effects);
        Assert.Contains((ushort)7, run.State.InboundQos2);

        var markAgain = run.Do(s => s.OnInboundQos2(7, release: false));
        Assert.Empty(markAgain.Events);
        Assert.Equal([new InboundQos2Done(7, false)], markAgain.Effects);

        var release = run.Do(s => s.OnInboundQos2(7, release: true));
        Assert.Equal([new InboundQos2Changed(7, true)], release.Events);
        Assert.Equal([new InboundQos2Done(7, true)], release.Effects);
        Assert.Empty(run.State.InboundQos2);

        var releaseAgain = run.Do(s => s.OnInboundQos2(7, release: true));
        Assert.Empty(releaseAgain.Events);
        Assert.Equal([new InboundQos2Done(7, true)], releaseAgain.Effects);
    }

    // ------------------------------------------------------------------ persistence guarantee

    [Fact]
    public void Folding_the_events_of_one_decision_onto_the_previous_state_reproduces_its_state()
    {
        var limits = Limits with { MaxInflight = 2 };
        var run = Connected(limits, expiry: 60);
        run.Subscribe(new Subscription("t", 2), new Subscription("u/#", 1, SubscriptionId: 3));
        for (var i = 0; i < 4; i++)
        {
            run.Deliver(Msg("t", "m" + i, qos: 2));
        }
        run.Close(graceful: false);
        var before = run.State;
        var d = run.Do(s => s.OnConnect("conn2", Info(clean: false, expiry: 60), 60, limits, Now));
        Assert.NotEmpty(d.Events);
        Structural.Equal(d.State, d.Events.Aggregate(before, (s, e) => s.Apply(e)));
    }

    [Fact]
    public void Replaying_the_whole_journal_from_empty_reproduces_the_state_after_every_decision()
    {
        var limits = new SessionLimits(MaxInflight: 2, MaxQueue: 4, QueueQos0: true, MaxQos: 2);
        var run = new Run(SessionState.Empty(Me), limits);
        var checkpoints = new List<(int JournalLength, SessionState State)>();
        void Step(Func<SessionState, SessionDecision> decide)
        {
            run.Do(decide);
            checkpoints.Add((run.Journal.Count, run.State));
        }

        var will = new WillMessage(Msg("will/" + Me, "gone"), 5, 30);
        Step(s => s.OnConnect("c1", Info(clean: false, expiry: 300, receiveMaximum: 3, will: will), 300, limits, Now));
        Step(s => s.OnSubscribe(1, [new Subscription("t/#", 2, SubscriptionId: 1), new Subscription("$share/g/t/x", 1), new Subscription("bad/#/x", 1), new Subscription("n", 1, NoLocal: true)], limits));
        for (var i = 0; i < 7; i++)
        {
            var qos = (byte)(i % 3);
            Step(s => s.OnDeliver(Msg("t/" + i, "m" + i, qos, expiresAt: i == 5 ? Now + 10 : 0), true, i == 3 ? ["$share/g/t/x"] : null, limits, Now));
        }
        Step(s => s.OnDeliver(Msg("n", "self", origin: Me), true, null, limits, Now));
        Step(s => s.OnInboundQos2(40, false));
        foreach (var (pid, entry) in run.State.Inflight.OrderBy(kv => kv.Key))
        {
            var kind = entry.Stage == InflightStage.AwaitPubRec ? AckKind.PubRec : AckKind.PubAck;
            Step(s => s.OnClientAck(kind, pid, limits, Now));
        }
        Step(s => s.OnConnectionClosed(false, false, null, Now + 1));
        Step(s => s.OnDeliver(Msg("t/late", "late", 1), true, null, limits, Now + 2));
        Step(s => s.OnDeliver(Msg("t/late0", "late0", 0), true, null, limits, Now + 2));
        Step(s => s.OnWillPublished());
        Step(s => s.OnConnect("c2", Info(clean: false, expiry: 300), 300, limits, Now + 100));
        foreach (var (pid, entry) in run.State.Inflight.OrderBy(kv => kv.Key))
        {
            var kind = entry.Stage switch
            {
                InflightStage.AwaitPubRec => AckKind.PubRec,
                InflightStage.AwaitPubComp => AckKind.PubComp,
                _ => AckKind.PubAck,
            };
            Step(s => s.OnClientAck(kind, pid, limits, Now + 100));
        }
        Step(s => s.OnUnsubscribe(2, ["t/#", "nope"], limits));
        Step(s => s.OnInboundQos2(40, true));
        Step(s => s.OnConnectionClosed(true, false, 10, Now + 200));
        Step(s => s.OnConnect("c3", Info(clean: true, expiry: 0), 0, limits, Now + 300));
        Step(s => s.OnSubscribe(3, [new Subscription("z", 1)], limits));
        Step(s => s.OnDeliver(Msg("z", "after clean"), true, null, limits, Now + 300));

        Assert.True(run.Journal.Count > 30, $"the scenario journals many events ({run.Journal.Count})");
        foreach (var (length, state) in checkpoints)
        {
            var replayed = run.Journal.Take(length).Aggregate(SessionState.Empty(Me), (s, e) => s.Apply(e));
            Structural.Equal(state, replayed);
        }
    }
}
