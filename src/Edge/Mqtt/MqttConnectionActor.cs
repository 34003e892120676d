using System.Buffers;
using Akka.Actor;
using Akka.Event;
using Broker.Actors;
using Broker.Actors.Messages;
using Broker.Actors.Routing;
using Broker.Actors.Sessions;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace Broker.Edge.Mqtt;

/// <summary>
/// The shell of one MQTT connection: it wires the transport and the session and region messages to the protocol
/// state, which lives in plain classes — <see cref="MqttConnectHandshake"/> (CONNECT to CONNACK), <see cref="MqttKeepAlive"/>
/// (deadlines), <see cref="MqttInboundFlow"/> (topic aliases, inbound QoS 2, receive maximum) and <see cref="MqttOutbound"/>
/// (encoding to the client). Session state (subscriptions, queue, in-flight window) lives in the session actor. A
/// PUBACK/PUBREC goes to the publisher only after every matching session (and the retained store) has answered that the
/// message is durable.
/// </summary>
internal sealed class MqttConnectionActor : UntypedActor
{
    /// <summary>A QoS 1/2 publish waiting for its targets (tracked by its message id): what its PUBACK/PUBREC needs.</summary>
    private sealed record PendingPublish(ushort PacketId, byte Qos, bool NoSubscribers);

    /// <summary>How long a moving session or a QoS 2 step waits for an answer before it is asked again.</summary>
    private const long FirstRetryMs = PublishTracker<PendingPublish>.FirstRetryMs;

    private sealed record RetryTick
    {
        public static readonly RetryTick Instance = new();
    }

    private static readonly MqttPingRespPacket PingResp = new();

    private readonly MqttTransport _transport;
    private readonly BrokerServices _services;
    private readonly Security.ClientAccess _access;
    private readonly string _connectionId;
    private readonly MqttConnectHandshake _handshake = new();
    private readonly MqttKeepAlive _keepAlive = new();
    private MqttOutbound? _outbound;
    private MqttInboundFlow? _inbound;
    private RouteCollector? _collector;

    /// <summary>Created at the first QoS 0 publish: bounds what this client has in flight towards its targets (<see cref="FlowWindow"/>).</summary>
    private Hosting.PublishFlow? _flow;

    /// <summary>Set while acting on a QoS 0 publish: its inbound bytes stay counted until its targets answer a flow probe.</summary>
    private bool _holdInbound;
    private PublishTracker<PendingPublish>? _pending;
    private bool _closing;
    private bool _graceful;

    /// <summary>Why this connection ends (Client unless the broker closed it), counted when the actor stops.</summary>
    private CloseReason _closeReason = CloseReason.Client;
    private bool _willOnDisconnect;
    private uint? _newExpiry;
    private bool _sessionAttached;
    private IActorRef? _session;
    private bool _sessionMoving;
    private bool _droppingQos0;
    private long _resumeSentAt;
    /// <summary>The CONNECT sent to the session until it is accepted (sent again every second meanwhile).</summary>
    private Connect? _connect;
    private long _connectSentAt;
    private long _movingSinceMs;
    private bool _resumeAfterFailure;

    /// <summary>How long a connection waits for its session to resume elsewhere (hand-off or node failure) before it closes.</summary>
    private const long ResumeTimeoutMs = 30_000;

    /// <summary>A resume request is sent again this often: sharding drops messages for a shard that is being moved.</summary>
    private const long ResumeRetryMs = 1_000;
    private ICancelable? _retryTick;

    /// <summary>SUBSCRIBEs waiting for the session whose filters the ACL refused: each position's code, 0 where the session answers.</summary>
    private Dictionary<ushort, byte[]>? _refusedFilters;

    /// <summary>This client's ACL rules (made at the first check, again after the file changed); null without an ACL file.</summary>
    private Security.ClientAcl? _acl;

    private Security.ClientAcl? Acl => _access.HasAcl ? _acl = _access.AclFor(_handshake.Username, ClientId, _acl) : null;

    private string WhoText => _handshake.Username is { } user ? $"user '{user}'" : "no user name";

    /// <summary>The verdict of an authentication that completed later (the HTTP backend).</summary>
    private sealed record Authenticated(Security.AuthVerdict Verdict, ConnectInfo Info);


    public static Props Props(MqttTransport transport, BrokerServices services, Security.ClientAccess access) =>
        Akka.Actor.Props.Create(() => new MqttConnectionActor(transport, services, access)).WithMailbox(Broker.Actors.Dispatch.CompactMailbox.ConfigPath);

    public MqttConnectionActor(MqttTransport transport, BrokerServices services, Security.ClientAccess access)
    {
        _transport = transport;
        _services = services;
        _access = access;
        _connectionId = Guid.NewGuid().ToString("N");
    }

    private bool IsV5 => _handshake.IsV5;

    private string ClientId => _handshake.ClientId;

    private bool Connected => _handshake.Phase == ConnectPhase.Connected;

    /// <summary>Created at the first publish that needs it: a client that only subscribes, or publishes QoS 0, never does.</summary>
    private MqttInboundFlow Inbound => _inbound ??= new MqttInboundFlow();

    /// <summary>Set by an accepted CONNECT, before the session can send anything.</summary>
    private MqttOutbound Outbound => _outbound!;

    /// <summary>Asked for only when there is something to log: most connections never do, and a logger per actor costs memory.</summary>
    private static ILoggingAdapter Log => Context.GetLogger();

    private static long NowMs => Environment.TickCount64;

    // ------------------------------------------------------------------ dispatch

    /// <summary>
    /// One switch instead of per-state handler tables: an idle connection is mostly this object, so it is
    /// kept small (collections are created on first use, too).
    /// </summary>
    protected override void OnReceive(object message)
    {
        try
        {
            Dispatch(message);
        }
        catch (Exception ex) when (ex is not ActorKilledException)
        {
            // A restart would lose this connection's protocol state: close it instead, the session stays intact.
            Log.Error(ex, "connection {0}: {1} failed", ClientId, message.GetType().Name);
            Close(0x83, "implementation specific error");
        }
    }

    private void Dispatch(object message)
    {
        switch (message)
        {
            case InboundPacket p when Connected:
                ActOn(p);
                break;
            case InboundPacket p:
                _handshake.Hold(p);
                break;
            case InboundConnect c when _handshake.Phase == ConnectPhase.AwaitingConnect:
                OnConnect(c.Packet, c.Version);
                break;
            case InboundConnect:
                Close(0x82, "second CONNECT");
                break;
            case UnsupportedProtocol u:
                _transport.SendRaw(MqttConnectHandshake.RawConnAck(0x01));
                Close(null, $"unsupported protocol level {u.Level}");
                break;
            case IdentifierRejected:
                _transport.SendRaw(MqttConnectHandshake.RawConnAck(0x02));
                Close(null, "empty client id without clean session");
                break;
            case Authenticated a when _handshake.Phase == ConnectPhase.AwaitingSession && _connect is null:
                OnAuthenticated(a.Verdict, a.Info);
                break;
            case ConnectAccepted a when _handshake.Phase == ConnectPhase.AwaitingSession && a.ConnectionId == _connectionId:
                OnConnectAccepted(a);
                break;
            case SessionTakenOver t when t.ConnectionId == _connectionId:
                Close(0x8E, "session taken over");
                break;
            case ClientKicked k when k.ConnectionId == _connectionId:
                Close(0x98, "disconnected by an operator (admin API)");
                break;
            case SessionMoved m when m.ConnectionId == _connectionId:
                // Graceful hand-off: the session continues on another node with this connection.
                StartResume(afterFailure: false);
                break;
            case SessionResumed r when r.ConnectionId == _connectionId:
                _sessionMoving = false;
                WatchSession(Sender);
                break;
            case SessionLost l when l.ConnectionId == _connectionId:
                Close(0x80, "session lost");
                break;
            case Terminated t when t.ActorRef.Equals(_session) && !_sessionMoving:
                // The node hosting the session failed. A persistent session restarts on a survivor from its journal
                // and takes this connection back (what the client has not acknowledged is sent again); a session that
                // lived in memory only is gone, and the survivor answers SessionLost, which closes the connection.
                StartResume(afterFailure: true);
                break;
            case RedeliverPending:
                Redeliver(all: true);
                break;
            case RetryTick:
                _retryTick = null;
                if (_handshake.Phase == ConnectPhase.AwaitingSession && _connect is not null && NowMs - _connectSentAt >= ResumeRetryMs)
                {
                    // Sent while the session's shard was on a node that has just died, the CONNECT is lost: send it
                    // again until the session answers (it answers a repeat with the same acceptance) or the connect
                    // timeout ends the attempt.
                    _connectSentAt = NowMs;
                    _services.SessionRegion.Tell(_connect);
                }
                if (_sessionMoving && NowMs - _movingSinceMs >= ResumeTimeoutMs)
                {
                    Close(0x80, "session did not resume");
                    break;
                }
                if (_sessionMoving && NowMs - _resumeSentAt >= ResumeRetryMs)
                {
                    _resumeSentAt = NowMs;
                    _services.SessionRegion.Tell(new ResumeSession(ClientId, _connectionId, Self, _resumeAfterFailure));
                }
                Redeliver(all: false);
                ResendQos2();
                ExpireFlowProbes();
                ScheduleRetryTick();
                break;
            case SendPublish p when Connected:
                OnSendPublish(p);
                break;
            case SendPubRel r when Connected:
                if (Outbound.AnswersPubRel(r.PacketId))
                {
                    ToSession(new ClientAck(ClientId, _connectionId, AckKind.PubComp, r.PacketId));
                }
                else
                {
                    Send(new MqttPubRelPacket { PacketIdentifier = r.PacketId });
                }
                break;
            case DeliverAck a:
                OnTargetAnswered(a.Correlation, a.Target);
                break;
            case FlowAck f:
                _flow?.Answer(f);
                break;
            case Broker.Actors.Retained.RetainedRefused r:
                OnTargetAnswered(r.Correlation, DeliveryTarget.RetainedStore, refused: true);
                break;
            case Broker.Actors.Amqp.Enqueued e:
                OnTargetAnswered(e.MessageId, DeliveryTarget.Queue(e.Queue));
                break;
            case Broker.Actors.Amqp.QueueMissing e:
                OnTargetAnswered(e.MessageId, DeliveryTarget.Queue(e.Queue));
                break;
            case Broker.Actors.Amqp.EnqueueRejected e:
                // A full AMQP queue that rejects publishes does not hold the MQTT publish back from its other targets.
                OnTargetAnswered(e.MessageId, DeliveryTarget.Queue(e.Queue));
                break;
            case SubscribeDone d when Connected:
                OnSubscribeDone(d);
                break;
            case UnsubscribeDone d when Connected:
                Send(new MqttUnsubAckPacket { PacketIdentifier = d.PacketId, ReasonCodes = [.. d.ReasonCodes.Select(c => (MqttUnsubscribeReasonCode)c)] });
                break;
            case InboundQos2Done d when Connected:
                OnInboundQos2Done(d);
                break;
            case DeadlinePassed:
                OnDeadlinePassed();
                break;
            case TransportError e:
                Close(e.ReasonCode, e.Message);
                break;
            case TransportClosed:
                Context.Stop(Self);
                break;
            case ServerShutdown:
                Close(0x8B, "server shutting down");
                break;
        }
    }

    // ------------------------------------------------------------------ CONNECT

    private void OnConnect(MqttConnectPacket c, MqttProtocolVersion version)
    {
        var settings = _services.Settings;
        var keepAlive = MqttKeepAlive.Negotiate(version == MqttProtocolVersion.V500, settings.ServerKeepAlive, c.KeepAlivePeriod);
        _keepAlive.OnConnect(_transport.Deadline, NowMs, keepAlive, settings.ConnectTimeout);
        var info = _handshake.OnConnect(c, version, settings, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), out var refusal, _transport.Link.CertificateUser);
        if (info is null)
        {
            Send(_handshake.ConnAck(refusal.Code, false, settings));
            Close(null, refusal.Reason);
            return;
        }
        if (IsV5 && !string.IsNullOrEmpty(c.AuthenticationMethod))
        {
            // Enhanced authentication (MQTT 5 §4.12) is not offered: 0x8C Bad authentication method.
            Deny(0x8C, 0x8C, $"authentication method '{c.AuthenticationMethod}' not supported", authz: false);
            return;
        }
        // A verified client certificate whose common name is the user name is the credential (broker.tls.cn-as-username).
        var verdict = _handshake.Username is { } user && user == _transport.Link.CertificateUser
            ? new ValueTask<Security.AuthVerdict>(Security.AuthVerdict.Allowed)
            : _access.AuthenticateAsync(ClientId, c.Username, c.Password, _transport.Remote);
        if (verdict.IsCompletedSuccessfully)
        {
            OnAuthenticated(verdict.Result, info);
        }
        else
        {
            // The HTTP backend answers later; packets meanwhile wait with the handshake, the connect timeout still runs.
            verdict.AsTask().PipeTo(Self, success: v => new Authenticated(v, info), failure: _ => new Authenticated(Security.AuthVerdict.Unavailable, info));
        }
    }

    /// <summary>The login's verdict for a CONNECT: refused, or its will checked against the ACL and the session asked for.</summary>
    private void OnAuthenticated(Security.AuthVerdict verdict, ConnectInfo info)
    {
        switch (verdict)
        {
            case Security.AuthVerdict.BadCredentials:
                Deny(0x86, 0x04, "bad user name or password", authz: false);
                return;
            case Security.AuthVerdict.NotAuthorized:
                Deny(0x87, 0x05, "anonymous clients are not allowed", authz: false);
                return;
            case Security.AuthVerdict.Unavailable:
                Deny(0x88, 0x03, "authentication backend unavailable", authz: false);
                return;
        }
        if (info.Will is { } will && Acl?.MayPublish(will.Message.Topic) == false)
        {
            Deny(0x87, 0x05, $"will topic '{will.Message.Topic}' not writable", authz: true);
            return;
        }
        StartSession(info);
    }

    /// <summary>Refuses a CONNECT (MQTT 5 code, 3.x return code), counted and logged at a bounded rate.</summary>
    private void Deny(byte v5Code, byte v3Code, string reason, bool authz)
    {
        (authz ? BrokerCounters.AuthzDenied : BrokerCounters.AuthDenied).Increment();
        if (!authz && v5Code is 0x86 or 0x87)
        {
            _access.Admission.LoginFailed(_transport.Link.RemoteAddress);
        }
        DenialLog.Shared.Write(Log, $"MQTT connect refused: client '{ClientId}', {WhoText}, from {_transport.Remote}: {reason}");
        Send(_handshake.ConnAck(IsV5 ? v5Code : v3Code, false, _services.Settings));
        Close(null, reason);
    }

    private void StartSession(ConnectInfo info)
    {
        var version = _handshake.Version;
        _outbound = new MqttOutbound(version, info.MaxPacketSize, _services.Settings.Qos0DropPendingBytes);
        _connect = new Connect(ClientId, _connectionId, info, Self, _handshake.Username ?? "");
        _connectSentAt = NowMs;
        _services.SessionRegion.Tell(_connect);
        _sessionAttached = true;
        ScheduleRetryTick();
    }

    private void StartResume(bool afterFailure)
    {
        _sessionMoving = true;
        _resumeAfterFailure = afterFailure;
        WatchSession(null);
        _movingSinceMs = _resumeSentAt = NowMs;
        _services.SessionRegion.Tell(new ResumeSession(ClientId, _connectionId, Self, afterFailure));
        ScheduleRetryTick();
    }

    /// <summary>
    /// A message for this client's session: straight to it while it is known and not moving (two hops fewer than
    /// through the shard region and its shard, per acknowledgement), else through the region. A message sent straight
    /// to a session that stops meanwhile (a hand-off, its node failing) is lost like one sent through the region to a
    /// shard that moves: the session sends again what was not acknowledged, and QoS 2 steps are sent again by the
    /// retry tick (through the region).
    /// </summary>
    private void ToSession(object message) =>
        (_session is not null && !_sessionMoving ? _session : _services.SessionRegion).Tell(message);

    private void WatchSession(IActorRef? session)
    {
        if (_session is not null)
        {
            Context.Unwatch(_session);
        }
        _session = session;
        if (session is not null)
        {
            Context.Watch(session);
        }
    }

    private void OnConnectAccepted(ConnectAccepted a)
    {
        _connect = null;
        WatchSession(Sender);
        if (a.PendingInboundQos2.Count > 0)
        {
            Inbound.Restore(a.PendingInboundQos2);
        }
        Send(_handshake.ConnAck(0x00, a.SessionPresent, _services.Settings));
        _keepAlive.OnConnected(_transport.Deadline);
        if (_handshake.OnAccepted() is { } early)
        {
            foreach (var packet in early)
            {
                ActOn(packet);
            }
        }
    }

    private void OnDeadlinePassed()
    {
        if (_closing)
        {
            // The client did not take our last packets in time: drop the socket.
            _transport.Abort();
            Context.Stop(Self);
            return;
        }
        switch (_handshake.Phase)
        {
            case ConnectPhase.AwaitingConnect:
                Close(null, "no CONNECT in time");
                break;
            case ConnectPhase.AwaitingSession:
                Send(_handshake.ConnAck(_handshake.SessionTimeoutCode, false, _services.Settings));
                Close(null, "session did not answer");
                break;
            case ConnectPhase.Connected when _keepAlive.TimedOut(_transport.Deadline, NowMs):
                Close(0x8D, "keep alive timeout");
                break;
        }
    }

    // ------------------------------------------------------------------ packets from the client

    /// <summary>Handles one packet and lets the read loop count it as done.</summary>
    private void ActOn(InboundPacket inbound)
    {
        try
        {
            OnPacket(inbound);
        }
        finally
        {
            if (_holdInbound)
            {
                // A routed QoS 0 publish: its weight is released once its targets answer the probe that covers it.
                _holdInbound = false;
                if (_flow!.Hold(inbound.Size, Self, NowMs))
                {
                    ScheduleRetryTick();
                }
            }
            else
            {
                _transport.Inbound.Release(inbound.Size);
            }
        }
    }

    private void ExpireFlowProbes()
    {
        if (_flow is not { HasOutstanding: true })
        {
            return;
        }
        var (weight, probes) = _flow.Expire(NowMs);
        if (probes > 0)
        {
            Log.Warning("{0}: {1} flow probes unanswered for {2} s (a target's node failed?); their {3} bytes count as delivered",
                ClientId, probes, Hosting.PublishFlow.ProbeTimeoutMs / 1000, weight);
        }
    }

    private void OnPacket(InboundPacket inbound)
    {
        var packet = inbound.Packet;
        _keepAlive.OnPacket(_transport.Deadline, NowMs, _closing);
        switch (packet)
        {
            case MqttPublishPacket p:
                OnPublish(p);
                break;
            case MqttPubAckPacket a:
                ToSession(new ClientAck(ClientId, _connectionId, AckKind.PubAck, a.PacketIdentifier));
                break;
            case MqttPubRecPacket r:
                ToSession(new ClientAck(ClientId, _connectionId, AckKind.PubRec, r.PacketIdentifier));
                break;
            case MqttPubCompPacket c:
                ToSession(new ClientAck(ClientId, _connectionId, AckKind.PubComp, c.PacketIdentifier));
                break;
            case MqttPubRelPacket rel:
                OnPubRel(rel);
                break;
            case MqttSubscribePacket s:
                OnSubscribe(s);
                break;
            case MqttUnsubscribePacket u:
                if (u.TopicFilters is not { Count: > 0 })
                {
                    Close(0x82, "UNSUBSCRIBE without topic filters");
                    return;
                }
                _services.SessionRegion.Tell(new UnsubscribeRequest(ClientId, _connectionId, u.PacketIdentifier, u.TopicFilters));
                break;
            case MqttPingReqPacket:
                Send(PingResp);
                break;
            case MqttDisconnectPacket d:
                OnDisconnect(d, inbound.SessionExpiry);
                break;
            default:
                Close(0x82, $"unexpected {packet.GetType().Name}");
                break;
        }
    }

    /// <summary>An MQTT 5 DISCONNECT's Session Expiry Interval replaces the CONNECT's, 0 included (the session ends now).</summary>
    private void OnDisconnect(MqttDisconnectPacket d, uint? sessionExpiry)
    {
        if (IsV5 && sessionExpiry is { } expiry)
        {
            if (!_handshake.MaySetExpiryOnDisconnect(expiry))
            {
                Close(0x82, "session expiry set on DISCONNECT after 0 at CONNECT");
                return;
            }
            _newExpiry = expiry;
        }
        _graceful = true;
        _willOnDisconnect = IsV5 && d.ReasonCode == MqttDisconnectReasonCode.DisconnectWithWillMessage;
        Close(null, "client disconnected");
    }

    private void OnPublish(MqttPublishPacket p)
    {
        var topic = p.Topic;
        if (IsV5 && p.TopicAlias > 0)
        {
            topic = Inbound.ResolveTopic(topic, p.TopicAlias, _services.Settings.TopicAliasMaximum, out var violation);
            if (topic is null)
            {
                Close(violation.ReasonCode, violation.Message);
                return;
            }
        }
        if (!TopicFilter.IsValidTopicName(topic))
        {
            Close(0x90, "invalid topic name");
            return;
        }
        var settings = _services.Settings;
        if (!TopicFilter.WithinBounds(topic, settings.MaxTopicLength, settings.MaxTopicLevels))
        {
            Close(0x90, "topic name beyond max-topic-length or max-topic-levels");
            return;
        }
        var qos = (byte)p.QualityOfServiceLevel;
        if (qos > 0 && p.PacketIdentifier == 0)
        {
            Close(0x82, "QoS > 0 without packet identifier");
            return;
        }
        if (Acl?.MayPublish(topic) == false)
        {
            RefuseUnauthorized(topic, qos, p.PacketIdentifier);
            return;
        }
        if (qos == 2 && _inbound is not null && _inbound.IsResend(p.PacketIdentifier, out var confirm))
        {
            // A resent QoS 2 PUBLISH: it was routed once already; confirm again without routing.
            if (confirm)
            {
                Send(new MqttPubRecPacket { PacketIdentifier = p.PacketIdentifier });
            }
            return;
        }
        if (qos > 0 && !Inbound.Admit(settings.ReceiveMaximum))
        {
            Close(0x93, "receive maximum exceeded");
            return;
        }
        BrokerCounters.Mqtt.Received(qos);
        var payload = p.Payload;
        var msg = new PublishedMessage(
            topic,
            payload.IsEmpty ? [] : payload.ToArray(),
            qos,
            p.Retain,
            p.ContentType,
            p.ResponseTopic,
            p.CorrelationData,
            (byte)p.PayloadFormatIndicator,
            p.MessageExpiryInterval > 0 ? DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + p.MessageExpiryInterval * 1000L : 0,
            MqttConnectHandshake.ToUserProperties(p.UserProperties),
            ClientId,
            qos == 0 ? 0 : Random.Shared.NextInt64(1, long.MaxValue));
        if (qos == 0)
        {
            _flow ??= new Hosting.PublishFlow(_transport.Inbound, _services.Router);
            _services.Router.Route(msg, _collector ??= new RouteCollector(), 0, Self, targets: _flow.Targets);
            _holdInbound = true;
            return;
        }
        // Sessions and the retained store answer DeliverAck with this correlation, AMQP queues Enqueued with the message id: one number for both.
        var outstanding = new Dictionary<DeliveryTarget, object>();
        var routed = _services.Router.Route(msg, _collector ??= new RouteCollector(), msg.Id, Self, outstanding);
        if (qos == 2)
        {
            Inbound.Routing(p.PacketIdentifier);
        }
        var pending = new PendingPublish(p.PacketIdentifier, qos, routed.Sessions == 0);
        if (routed.Acks == 0)
        {
            Acknowledge(pending);
        }
        else
        {
            (_pending ??= new()).Track(msg.Id, pending, outstanding, NowMs);
            ScheduleRetryTick();
        }
    }

    private void OnTargetAnswered(long id, DeliveryTarget target, bool refused = false)
    {
        if (_pending is null || !_pending.Answer(id, target, out var done, refused))
        {
            return;
        }
        if (!done.Refused)
        {
            Acknowledge(done.Origin);
        }
        else if (IsV5)
        {
            // Only the retained store refuses an MQTT publish (its limits): it reached the subscribers but is not retained.
            Refuse(done.Origin, 0x97);
        }
        else
        {
            // MQTT 3.1.1 has no negative acknowledgement; closing tells the client the publish was not taken whole.
            Close(null, "retained message refused: retained limits reached");
        }
    }

    /// <summary>
    /// Sends again what its targets have not answered in time, or everything unanswered at once when a node left
    /// (<paramref name="all"/>): it may have been lost with that node. Targets recognise a copy by its message id.
    /// A publish sent <see cref="PublishTracker{T}.MaxAttempts"/> times without every answer is given up.
    /// </summary>
    private void Redeliver(bool all)
    {
        if (_pending is null)
        {
            return;
        }
        if (all)
        {
            _pending.ResendAll(sent => _services.Router.Resend(sent, Self));
            return;
        }
        var givenUp = _pending.Retry(NowMs, sent => _services.Router.Resend(sent, Self));
        if (givenUp is null)
        {
            return;
        }
        foreach (var entry in givenUp)
        {
            BrokerCounters.PublishesGivenUp.Increment();
            Log.Warning("{0}: publish {1} (packet {2}) given up after {3} sends, unanswered by {4}",
                ClientId, entry.Origin.Qos, entry.Origin.PacketId, entry.Attempts, string.Join(", ", entry.Outstanding.Keys));
            if (!IsV5)
            {
                // MQTT 3.1.1 has no negative acknowledgement: without one the client sends the message again after it reconnects.
                Close(null, "publish given up");
                return;
            }
            Refuse(entry.Origin, 0x80);
        }
    }

    private void ResendQos2()
    {
        if (_inbound?.TakeDue(NowMs, FirstRetryMs) is not { } due)
        {
            return;
        }
        foreach (var (packetId, release) in due)
        {
            _services.SessionRegion.Tell(new InboundQos2(ClientId, _connectionId, packetId, release));
        }
    }

    /// <summary>One tick a second while publishes or QoS 2 steps wait for answers, or the session is moving.</summary>
    private void ScheduleRetryTick()
    {
        if (_retryTick is null && !_closing && (_sessionMoving || _pending is { Count: > 0 } || _inbound is { AwaitsSession: true } || _flow is { HasOutstanding: true }
            || _handshake.Phase == ConnectPhase.AwaitingSession))
        {
            _retryTick = Context.System.Scheduler.ScheduleTellOnceCancelable(TimeSpan.FromSeconds(1), Self, RetryTick.Instance, Self);
        }
    }

    /// <summary>Every target has the message durably: PUBACK, or for QoS 2 record the packet id first.</summary>
    private void Acknowledge(PendingPublish p)
    {
        if (p.Qos == 1)
        {
            Inbound.Acknowledged();
            Send(new MqttPubAckPacket
            {
                PacketIdentifier = p.PacketId,
                ReasonCode = p.NoSubscribers && IsV5 ? MqttPubAckReasonCode.NoMatchingSubscribers : MqttPubAckReasonCode.Success,
            });
            return;
        }
        SendQos2(p.PacketId, release: false);
    }

    /// <summary>
    /// MQTT 5: the publish was not taken whole (0x80: not every target made it durable; 0x97: the retained store is
    /// full): a PUBACK or PUBREC with that reason ends its flow.
    /// </summary>
    private void Refuse(PendingPublish p, byte reason)
    {
        Inbound.Refused(p.Qos, p.PacketId);
        if (p.Qos == 1)
        {
            Send(new MqttPubAckPacket { PacketIdentifier = p.PacketId, ReasonCode = (MqttPubAckReasonCode)reason });
            return;
        }
        Send(new MqttPubRecPacket { PacketIdentifier = p.PacketId, ReasonCode = (MqttPubRecReasonCode)reason });
    }

    /// <summary>
    /// A publish the ACL refuses is not routed. MQTT 5: PUBACK or PUBREC 0x87 Not authorized. MQTT 3.x has no negative
    /// acknowledgement: it is acknowledged as usual (QoS 2: the PUBREL then finds nothing recorded and is completed), as
    /// mosquitto does, so the client does not send it again forever.
    /// </summary>
    private void RefuseUnauthorized(string topic, byte qos, ushort packetId)
    {
        BrokerCounters.AuthzDenied.Increment();
        DenialLog.Shared.Write(Log, $"MQTT publish refused: client '{ClientId}', {WhoText}, topic '{topic}' not writable");
        switch (qos)
        {
            case 1:
                Send(new MqttPubAckPacket { PacketIdentifier = packetId, ReasonCode = IsV5 ? MqttPubAckReasonCode.NotAuthorized : MqttPubAckReasonCode.Success });
                break;
            case 2:
                Send(new MqttPubRecPacket { PacketIdentifier = packetId, ReasonCode = IsV5 ? MqttPubRecReasonCode.NotAuthorized : MqttPubRecReasonCode.Success });
                break;
        }
    }

    /// <summary>QoS 2 bookkeeping in the session; sent again by the retry tick until answered.</summary>
    private void SendQos2(ushort packetId, bool release)
    {
        Inbound.AwaitSession(packetId, release, NowMs);
        ToSession(new InboundQos2(ClientId, _connectionId, packetId, release));
        ScheduleRetryTick();
    }

    private void OnInboundQos2Done(InboundQos2Done d)
    {
        switch (_inbound?.OnSessionAnswer(d.PacketId, d.Release))
        {
            case Qos2Answer.PubRec:
                Send(new MqttPubRecPacket { PacketIdentifier = d.PacketId });
                break;
            case Qos2Answer.PubComp:
                Send(new MqttPubCompPacket { PacketIdentifier = d.PacketId });
                break;
        }
    }

    private void OnPubRel(MqttPubRelPacket rel)
    {
        if (_inbound?.IsRecorded(rel.PacketIdentifier) == true)
        {
            SendQos2(rel.PacketIdentifier, release: true);
        }
        else
        {
            Send(new MqttPubCompPacket
            {
                PacketIdentifier = rel.PacketIdentifier,
                ReasonCode = IsV5 ? MqttPubCompReasonCode.PacketIdentifierNotFound : MqttPubCompReasonCode.Success,
            });
        }
    }

    private void OnSubscribe(MqttSubscribePacket s)
    {
        if (s.TopicFilters is not { Count: > 0 })
        {
            Close(0x82, "SUBSCRIBE without topic filters");
            return;
        }
        var subs = new List<Subscription>(s.TopicFilters.Count);
        byte[]? refused = null;
        for (var i = 0; i < s.TopicFilters.Count; i++)
        {
            var f = s.TopicFilters[i];
            if (_access.HasAcl && TopicFilter.IsValidFilter(f.Topic) && !Acl!.MaySubscribe(f.Topic!))
            {
                // Not passed to the session: its place in the SUBACK says 0x87 Not authorized (3.1.1: 0x80 Failure).
                refused ??= new byte[s.TopicFilters.Count];
                refused[i] = IsV5 ? (byte)0x87 : (byte)0x80;
                BrokerCounters.AuthzDenied.Increment();
                DenialLog.Shared.Write(Log, $"MQTT subscribe refused: client '{ClientId}', {WhoText}, filter '{f.Topic}' not readable");
                continue;
            }
            var shared = f.Topic?.StartsWith(TopicFilter.SharePrefix, StringComparison.Ordinal) == true;
            if (IsV5 && shared && f.NoLocal)
            {
                Close(0x82, "no local on a shared subscription");
                return;
            }
            subs.Add(new Subscription(
                f.Topic ?? "",
                (byte)f.QualityOfServiceLevel,
                IsV5 && f.NoLocal,
                IsV5 && f.RetainAsPublished,
                IsV5 ? (byte)f.RetainHandling : (byte)0,
                IsV5 ? s.SubscriptionIdentifier : 0));
        }
        if (refused is not null)
        {
            if (subs.Count == 0)
            {
                Send(new MqttSubAckPacket { PacketIdentifier = s.PacketIdentifier, ReasonCodes = [.. refused.Select(c => (MqttSubscribeReasonCode)c)] });
                return;
            }
            (_refusedFilters ??= [])[s.PacketIdentifier] = refused;
        }
        _services.SessionRegion.Tell(new SubscribeRequest(ClientId, _connectionId, s.PacketIdentifier, subs));
    }

    /// <summary>The session's codes for the filters it was given, with the ACL's refusals back in their places.</summary>
    private void OnSubscribeDone(SubscribeDone d)
    {
        IEnumerable<byte> codes = d.ReasonCodes;
        if (_refusedFilters is not null && _refusedFilters.Remove(d.PacketId, out var refused))
        {
            var merged = new byte[refused.Length];
            var next = 0;
            for (var i = 0; i < merged.Length; i++)
            {
                merged[i] = refused[i] != 0 ? refused[i] : next < d.ReasonCodes.Count ? d.ReasonCodes[next++] : (byte)0x80;
            }
            codes = merged;
            if (_refusedFilters.Count == 0)
            {
                _refusedFilters = null;
            }
        }
        Send(new MqttSubAckPacket { PacketIdentifier = d.PacketId, ReasonCodes = [.. codes.Select(c => (MqttSubscribeReasonCode)c)] });
    }

    // ------------------------------------------------------------------ packets to the client

    private void OnSendPublish(SendPublish s)
    {
        if (_access.HasAcl && !Acl!.MayReceive(s.Message.Topic))
        {
            // Inside a granted subscription but denied by the rules in force: not delivered, and the session is
            // answered as if the client had acknowledged it, so it does not wait for it or send it again.
            BrokerCounters.AuthzDenied.Increment();
            DenialLog.Shared.Write(Log, $"MQTT delivery refused: client '{ClientId}', {WhoText}, topic '{s.Message.Topic}' not readable");
            if (s.Qos > 0)
            {
                Outbound.SkipAsDelivered(s);
                ToSession(new ClientAck(ClientId, _connectionId, s.Qos == 1 ? AckKind.PubAck : AckKind.PubRec, s.PacketId));
            }
            return;
        }
        var outbound = Outbound;
        switch (outbound.Publish(s, _transport.PendingBytes, out var buffer))
        {
            case OutboundPublish.Send:
                _transport.Send(buffer.Packet, buffer.Payload);
                outbound.Sent(buffer);
                BrokerCounters.Mqtt.Sent(s.Qos);
                _droppingQos0 = false;
                break;
            case OutboundPublish.Dropped:
                BrokerCounters.Qos0SlowClientDropped.Increment();
                if (!_droppingQos0)
                {
                    // Logged once per episode: until a message goes out again, further drops are only counted.
                    _droppingQos0 = true;
                    Log.Warning("client {0}: {1} bytes unsent; QoS 0 messages to it are dropped until it reads", ClientId, _transport.PendingBytes);
                }
                break;
            case OutboundPublish.TooLarge when s.Qos > 0:
                // Discarded as if delivered: the session gets the acknowledgement the client would have sent.
                ToSession(new ClientAck(ClientId, _connectionId, s.Qos == 1 ? AckKind.PubAck : AckKind.PubRec, s.PacketId));
                break;
        }
    }

    /// <summary>Encoded for this connection's protocol version, also before CONNECT is accepted (a refusing CONNACK).</summary>
    private void Send(MqttPacket packet)
    {
        var buffer = MqttCodec.For(_handshake.Version).Encode(packet);
        _transport.Send(buffer.Packet, buffer.Payload);
    }

    // ------------------------------------------------------------------ closing

    /// <summary>Sends DISCONNECT with <paramref name="reasonCode"/> to an MQTT 5 client, then closes the socket.</summary>
    private void Close(byte? reasonCode, string why)
    {
        if (_closing)
        {
            return;
        }
        _closing = true;
        if (reasonCode is 0x81 or 0x82 or 0x90 or 0x93 or 0x94 or 0x95)
        {
            // Malformed packet, protocol error, invalid topic, receive maximum exceeded, bad topic alias, packet too large.
            BrokerCounters.Mqtt.ProtocolError();
        }
        _closeReason = reasonCode switch
        {
            0x81 or 0x82 or 0x90 or 0x93 or 0x94 or 0x95 or 0x8C => CloseReason.ProtocolError,
            0x8D => CloseReason.KeepAliveTimeout,
            0x8E => CloseReason.TakenOver,
            0x98 => CloseReason.Kicked,
            0x86 or 0x87 or 0x88 or 0x8A or 0x97 or 0x9F or 0x85 => CloseReason.Refused,
            0x96 => CloseReason.RateLimit,
            0x8B => CloseReason.ServerShutdown,
            null => CloseReason.Client,
            _ => CloseReason.Other,
        };
        if (reasonCode is { } code && Connected && IsV5)
        {
            Send(new MqttDisconnectPacket { ReasonCode = (MqttDisconnectReasonCode)code });
        }
        if (reasonCode is not null && !_graceful)
        {
            Log.Info("closing {0} ({1}): {2}", ClientId.Length > 0 ? ClientId : _transport.Remote, reasonCode, why);
        }
        _transport.CompleteOutput();
        // The client has the grace period to take our last packets before the socket is dropped (see OnDeadlinePassed).
        MqttKeepAlive.OnClosing(_transport.Deadline, NowMs);
    }

    protected override void PostStop()
    {
        BrokerCounters.Mqtt.ClosedBy(_closeReason);
        _transport.Inbound.Close();
        _retryTick?.Cancel();
        if (_sessionAttached)
        {
            var closed = new ConnectionClosed(ClientId, _connectionId, _graceful, _willOnDisconnect, _newExpiry);
            // Straight to the session when it is known: it watches this actor, and only a message sent directly is
            // sure to arrive before the Terminated that follows (through the shard region it could come after, and
            // a clean DISCONNECT would be taken for a dropped connection that publishes the will).
            (_session is not null && !_sessionMoving ? _session : _services.SessionRegion).Tell(closed);
        }
        _transport.CompleteOutput();
        base.PostStop();
    }
}

/// <summary>Told to every connection after a node left the cluster: unanswered publishes are sent again.</summary>
internal sealed record RedeliverPending
{
    public static readonly RedeliverPending Instance = new();
}

/// <summary>Told to every connection when the node stops: MQTT 5 clients get DISCONNECT 0x8B.</summary>
internal sealed record ServerShutdown
{
    public static readonly ServerShutdown Instance = new();
}
