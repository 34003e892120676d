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
/// The protocol side of one MQTT connection: CONNECT validation, keep-alive, topic aliases, inbound
/// QoS flows and flow control. Session state (subscriptions, queue, in-flight window) lives in the
/// session actor; this actor turns its messages into packets. A PUBACK/PUBREC goes to the publisher only
/// after every matching session (and the retained store) has answered that the message is durable.
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

    /// <summary>Above this many unsent bytes to a slow client, QoS 0 messages to it are dropped.</summary>
    private const long MaxPendingBytesForQos0 = 8 * 1024 * 1024;

    private static readonly MqttPingRespPacket PingResp = new();

    private readonly MqttTransport _transport;
    private readonly BrokerServices _services;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _connectionId;
    private RouteCollector? _collector;
    private PublishTracker<PendingPublish>? _pending;
    private HashSet<ushort>? _qos2Routing;
    private HashSet<ushort>? _qos2Recorded;
    private HashSet<ushort>? _selfAcked;
    private Dictionary<ushort, string>? _topicAliases;
    private MqttPublishPacket? _outPublish;
    private List<InboundPacket>? _early;
    private Phase _phase;
    private MqttProtocolVersion _version;
    private string _clientId = "";
    private bool _closing;
    private bool _graceful;
    private bool _willOnDisconnect;
    private uint? _newExpiry;
    private uint _connectExpiry;
    private ushort _keepAlive;
    private long _lastPacketAt;
    private uint _clientMaxPacket;
    private int _inboundUnacked;
    private string? _assignedClientId;
    private bool _requestResponse;
    private bool _sessionAttached;
    private IActorRef? _session;
    private bool _sessionMoving;
    private long _resumeSentAt;
    private long _movingSinceMs;

    /// <summary>How long a connection waits for its session to resume elsewhere (hand-off or node failure) before it closes.</summary>
    private const long ResumeTimeoutMs = 30_000;

    /// <summary>A resume request is sent again this often: sharding drops messages for a shard that is being moved.</summary>
    private const long ResumeRetryMs = 1_000;
    private Dictionary<ushort, (bool Release, long SentAt)>? _qos2Awaiting;
    private ICancelable? _retryTick;


    public static Props Props(MqttTransport transport, BrokerServices services) =>
        Akka.Actor.Props.Create(() => new MqttConnectionActor(transport, services)).WithMailbox(Broker.Actors.Dispatch.CompactMailbox.ConfigPath);

    public MqttConnectionActor(MqttTransport transport, BrokerServices services)
    {
        _transport = transport;
        _services = services;
        _connectionId = Guid.NewGuid().ToString("N");
    }

    private bool IsV5 => _version == MqttProtocolVersion.V500;

    private static long NowMs => Environment.TickCount64;

    // ------------------------------------------------------------------ dispatch

    private enum Phase : byte
    {
        AwaitingConnect,
        AwaitingSession,
        Connected,
    }

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
            _log.Error(ex, "connection {0}: {1} failed", _clientId, message.GetType().Name);
            Close(0x83, "implementation specific error");
        }
    }

    private void Dispatch(object message)
    {
        switch (message)
        {
            case InboundPacket p when _phase == Phase.Connected:
                ActOn(p);
                break;
            case InboundPacket p:
                // Packets pipelined behind CONNECT wait for the session's answer, still counted against the inbound high-water mark.
                (_early ??= []).Add(p);
                break;
            case InboundConnect c when _phase == Phase.AwaitingConnect:
                OnConnect(c.Packet, c.Version);
                break;
            case InboundConnect:
                Close(0x82, "second CONNECT");
                break;
            case UnsupportedProtocol u:
                // MQTT 3.1.1 CONNACK, return code 0x01 (unacceptable protocol level): 20 02 00 01.
                _transport.SendRaw([0x20, 0x02, 0x00, 0x01]);
                Close(null, $"unsupported protocol level {u.Level}");
                break;
            case IdentifierRejected:
                // MQTT 3.1.1 CONNACK, return code 0x02 (identifier rejected): 20 02 00 02.
                _transport.SendRaw([0x20, 0x02, 0x00, 0x02]);
                Close(null, "empty client id without clean session");
                break;
            case ConnectAccepted a when _phase == Phase.AwaitingSession && a.ConnectionId == _connectionId:
                OnConnectAccepted(a);
                break;
            case SessionTakenOver t when t.ConnectionId == _connectionId:
                Close(0x8E, "session taken over");
                break;
            case SessionMoved m when m.ConnectionId == _connectionId:
                // Graceful hand-off: the session continues on another node with this connection.
                StartResume();
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
                StartResume();
                break;
            case RedeliverPending:
                Redeliver(all: true);
                break;
            case RetryTick:
                _retryTick = null;
                if (_sessionMoving && NowMs - _movingSinceMs >= ResumeTimeoutMs)
                {
                    Close(0x80, "session did not resume");
                    break;
                }
                if (_sessionMoving && NowMs - _resumeSentAt >= ResumeRetryMs)
                {
                    _resumeSentAt = NowMs;
                    _services.SessionRegion.Tell(new ResumeSession(_clientId, _connectionId, Self));
                }
                Redeliver(all: false);
                ResendQos2();
                ScheduleRetryTick();
                break;
            case SendPublish p when _phase == Phase.Connected:
                OnSendPublish(p);
                break;
            case SendPubRel r when _phase == Phase.Connected:
                if (_selfAcked?.Remove(r.PacketId) == true)
                {
                    _services.SessionRegion.Tell(new ClientAck(_clientId, _connectionId, AckKind.PubComp, r.PacketId));
                }
                else
                {
                    Send(new MqttPubRelPacket { PacketIdentifier = r.PacketId });
                }
                break;
            case DeliverAck a:
                OnTargetAnswered(a.Correlation, a.Target);
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
            case SubscribeDone d when _phase == Phase.Connected:
                Send(new MqttSubAckPacket { PacketIdentifier = d.PacketId, ReasonCodes = [.. d.ReasonCodes.Select(c => (MqttSubscribeReasonCode)c)] });
                break;
            case UnsubscribeDone d when _phase == Phase.Connected:
                Send(new MqttUnsubAckPacket { PacketIdentifier = d.PacketId, ReasonCodes = [.. d.ReasonCodes.Select(c => (MqttUnsubscribeReasonCode)c)] });
                break;
            case InboundQos2Done d when _phase == Phase.Connected:
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
        _lastPacketAt = NowMs;
        // The session has the connect timeout to answer.
        _transport.DeadlineMs = _lastPacketAt + (long)_services.Settings.ConnectTimeout.TotalMilliseconds;
        _version = version;
        var level = (byte)_version;
        var clientId = c.ClientId ?? "";
        string? assigned = null;
        if (clientId.Length == 0)
        {
            if (!IsV5 && (!c.CleanSession || level == 3))
            {
                SendConnAck(0x02, false, null);
                Close(null, "empty client id without clean session");
                return;
            }
            clientId = assigned = "auto-" + Guid.NewGuid().ToString("N");
        }
        WillMessage? will = null;
        if (c.WillFlag)
        {
            var s = _services.Settings;
            if (!TopicFilter.IsValidTopicName(c.WillTopic) || !TopicFilter.WithinBounds(c.WillTopic, s.MaxTopicLength, s.MaxTopicLevels))
            {
                SendConnAck(IsV5 ? (byte)0x90 : (byte)0x02, false, null);
                Close(null, "invalid will topic");
                return;
            }
            var msg = new PublishedMessage(
                c.WillTopic,
                c.WillMessage ?? [],
                (byte)c.WillQoS,
                c.WillRetain,
                c.WillContentType,
                c.WillResponseTopic,
                c.WillCorrelationData,
                (byte)c.WillPayloadFormatIndicator,
                0,
                ToUserProperties(c.WillUserProperties),
                clientId);
            will = new WillMessage(msg, IsV5 ? c.WillDelayInterval : 0, IsV5 ? c.WillMessageExpiryInterval : 0);
        }
        _clientId = clientId;
        _assignedClientId = assigned;
        _keepAlive = IsV5 && _services.Settings.ServerKeepAlive > 0 ? _services.Settings.ServerKeepAlive : c.KeepAlivePeriod;
        _clientMaxPacket = IsV5 ? c.MaximumPacketSize : 0;
        _connectExpiry = IsV5 ? c.SessionExpiryInterval : 0;
        _requestResponse = IsV5 && c.RequestResponseInformation;
        var info = new ConnectInfo(
            level,
            c.CleanSession,
            IsV5 ? c.SessionExpiryInterval : 0,
            IsV5 ? c.ReceiveMaximum : (ushort)0,
            _clientMaxPacket,
            IsV5 ? c.TopicAliasMaximum : (ushort)0,
            _requestResponse,
            IsV5 && c.RequestProblemInformation,
            will,
            DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        _services.SessionRegion.Tell(new Connect(clientId, _connectionId, info, Self));
        _sessionAttached = true;
        _phase = Phase.AwaitingSession;
    }

    private void StartResume()
    {
        _sessionMoving = true;
        WatchSession(null);
        _movingSinceMs = _resumeSentAt = NowMs;
        _services.SessionRegion.Tell(new ResumeSession(_clientId, _connectionId, Self));
        ScheduleRetryTick();
    }

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
        WatchSession(Sender);
        foreach (var pid in a.PendingInboundQos2)
        {
            (_qos2Recorded ??= []).Add(pid);
        }
        SendConnAck(0x00, a.SessionPresent, _assignedClientId);
        _transport.DeadlineMs = KeepAliveDeadline();
        _phase = Phase.Connected;
        if (_early is { } early)
        {
            _early = null;
            foreach (var packet in early)
            {
                ActOn(packet);
            }
        }
    }

    /// <summary>Keep alive: a client silent for 1.5 × its keep alive is disconnected (MQTT 3.1.1 §3.1.2.10).</summary>
    private long KeepAliveDeadline() => _keepAlive > 0 ? _lastPacketAt + _keepAlive * 1500L : long.MaxValue;

    private void OnDeadlinePassed()
    {
        if (_closing)
        {
            // The client did not take our last packets in time: drop the socket.
            _transport.Abort();
            Context.Stop(Self);
            return;
        }
        switch (_phase)
        {
            case Phase.AwaitingConnect:
                Close(null, "no CONNECT in time");
                break;
            case Phase.AwaitingSession:
                SendConnAck(IsV5 ? (byte)0x88 : (byte)0x03, false, null);
                Close(null, "session did not answer");
                break;
            case Phase.Connected when NowMs > KeepAliveDeadline():
                Close(0x8D, "keep alive timeout");
                break;
            case Phase.Connected:
                _transport.DeadlineMs = KeepAliveDeadline();
                break;
        }
    }

    private void SendConnAck(byte code, bool sessionPresent, string? assignedClientId)
    {
        var ack = new MqttConnAckPacket
        {
            ReturnCode = (MqttConnectReturnCode)code,
            ReasonCode = (MqttConnectReasonCode)code,
            IsSessionPresent = sessionPresent && code == 0,
        };
        if (IsV5 && code == 0)
        {
            var s = _services.Settings;
            ack.AssignedClientIdentifier = assignedClientId;
            ack.ReceiveMaximum = s.ReceiveMaximum;
            ack.MaximumPacketSize = (uint)s.MaxPacketSize;
            ack.TopicAliasMaximum = s.TopicAliasMaximum;
            ack.MaximumQoS = MqttQualityOfServiceLevel.ExactlyOnce;
            ack.RetainAvailable = true;
            ack.WildcardSubscriptionAvailable = true;
            ack.SubscriptionIdentifiersAvailable = true;
            ack.SharedSubscriptionAvailable = true;
            if (s.ServerKeepAlive > 0)
            {
                ack.ServerKeepAlive = s.ServerKeepAlive;
            }
            if (_requestResponse)
            {
                ack.ResponseInformation = "response/" + _clientId;
            }
        }
        Send(ack);
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
            _transport.Inbound.Release(inbound.Size);
        }
    }

    private void OnPacket(InboundPacket inbound)
    {
        var packet = inbound.Packet;
        _lastPacketAt = NowMs;
        if (_keepAlive > 0 && !_closing)
        {
            _transport.DeadlineMs = KeepAliveDeadline();
        }
        switch (packet)
        {
            case MqttPublishPacket p:
                OnPublish(p);
                break;
            case MqttPubAckPacket a:
                _services.SessionRegion.Tell(new ClientAck(_clientId, _connectionId, AckKind.PubAck, a.PacketIdentifier));
                break;
            case MqttPubRecPacket r:
                _services.SessionRegion.Tell(new ClientAck(_clientId, _connectionId, AckKind.PubRec, r.PacketIdentifier));
                break;
            case MqttPubCompPacket c:
                _services.SessionRegion.Tell(new ClientAck(_clientId, _connectionId, AckKind.PubComp, c.PacketIdentifier));
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
                _services.SessionRegion.Tell(new UnsubscribeRequest(_clientId, _connectionId, u.PacketIdentifier, u.TopicFilters));
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

    /// <summary>
    /// An MQTT 5 DISCONNECT's Session Expiry Interval replaces the CONNECT's, 0 included (the session ends now);
    /// raising it from a CONNECT's 0 is a protocol error (§3.14.2.2.2).
    /// </summary>
    private void OnDisconnect(MqttDisconnectPacket d, uint? sessionExpiry)
    {
        if (IsV5 && sessionExpiry is { } expiry)
        {
            if (expiry != 0 && _connectExpiry == 0)
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
            if (p.TopicAlias > _services.Settings.TopicAliasMaximum)
            {
                Close(0x94, "topic alias out of range");
                return;
            }
            if (string.IsNullOrEmpty(topic))
            {
                if (_topicAliases is null || !_topicAliases.TryGetValue(p.TopicAlias, out var known))
                {
                    Close(0x82, "unknown topic alias");
                    return;
                }
                topic = known;
            }
            else
            {
                (_topicAliases ??= [])[p.TopicAlias] = topic;
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
        if (qos == 2 && (_qos2Recorded?.Contains(p.PacketIdentifier) == true || _qos2Routing?.Contains(p.PacketIdentifier) == true))
        {
            // A resent QoS 2 PUBLISH: it was routed once already; confirm again without routing.
            if (_qos2Recorded?.Contains(p.PacketIdentifier) == true)
            {
                Send(new MqttPubRecPacket { PacketIdentifier = p.PacketIdentifier });
            }
            return;
        }
        if (qos > 0 && ++_inboundUnacked > _services.Settings.ReceiveMaximum)
        {
            Close(0x93, "receive maximum exceeded");
            return;
        }
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
            ToUserProperties(p.UserProperties),
            _clientId,
            qos == 0 ? 0 : Random.Shared.NextInt64(1, long.MaxValue));
        if (qos == 0)
        {
            _services.Router.Route(msg, _collector ??= new RouteCollector(), 0, Self);
            return;
        }
        // Sessions and the retained store answer DeliverAck with this correlation, AMQP queues Enqueued with the message id: one number for both.
        var outstanding = new Dictionary<DeliveryTarget, object>();
        var routed = _services.Router.Route(msg, _collector ??= new RouteCollector(), msg.Id, Self, outstanding);
        if (qos == 2)
        {
            (_qos2Routing ??= []).Add(p.PacketIdentifier);
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
            _log.Warning("{0}: publish {1} (packet {2}) given up after {3} sends, unanswered by {4}",
                _clientId, entry.Origin.Qos, entry.Origin.PacketId, entry.Attempts, string.Join(", ", entry.Outstanding.Keys));
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
        if (_qos2Awaiting is null)
        {
            return;
        }
        var now = NowMs;
        foreach (var (packetId, (release, sentAt)) in _qos2Awaiting.ToList())
        {
            if (now - sentAt >= FirstRetryMs)
            {
                _qos2Awaiting[packetId] = (release, now);
                _services.SessionRegion.Tell(new InboundQos2(_clientId, _connectionId, packetId, release));
            }
        }
    }

    /// <summary>One tick a second while publishes or QoS 2 steps wait for answers, or the session is moving.</summary>
    private void ScheduleRetryTick()
    {
        if (_retryTick is null && !_closing && (_sessionMoving || _pending is { Count: > 0 } || _qos2Awaiting is { Count: > 0 }))
        {
            _retryTick = Context.System.Scheduler.ScheduleTellOnceCancelable(TimeSpan.FromSeconds(1), Self, RetryTick.Instance, Self);
        }
    }

    /// <summary>Every target has the message durably: PUBACK, or for QoS 2 record the packet id first.</summary>
    private void Acknowledge(PendingPublish p)
    {
        if (p.Qos == 1)
        {
            _inboundUnacked--;
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
        _inboundUnacked--;
        if (p.Qos == 1)
        {
            Send(new MqttPubAckPacket { PacketIdentifier = p.PacketId, ReasonCode = (MqttPubAckReasonCode)reason });
            return;
        }
        _qos2Routing?.Remove(p.PacketId);
        Send(new MqttPubRecPacket { PacketIdentifier = p.PacketId, ReasonCode = (MqttPubRecReasonCode)reason });
    }

    /// <summary>QoS 2 bookkeeping in the session; sent again by the retry tick until answered.</summary>
    private void SendQos2(ushort packetId, bool release)
    {
        (_qos2Awaiting ??= [])[packetId] = (release, NowMs);
        _services.SessionRegion.Tell(new InboundQos2(_clientId, _connectionId, packetId, release));
        ScheduleRetryTick();
    }

    private void OnInboundQos2Done(InboundQos2Done d)
    {
        if (_qos2Awaiting is null || !_qos2Awaiting.TryGetValue(d.PacketId, out var awaited) || awaited.Release != d.Release)
        {
            return; // the answer to a resend that was already answered
        }
        _qos2Awaiting.Remove(d.PacketId);
        if (!d.Release)
        {
            _qos2Routing?.Remove(d.PacketId);
            (_qos2Recorded ??= []).Add(d.PacketId);
            Send(new MqttPubRecPacket { PacketIdentifier = d.PacketId });
            return;
        }
        if (_qos2Recorded?.Remove(d.PacketId) == true)
        {
            _inboundUnacked--;
        }
        Send(new MqttPubCompPacket { PacketIdentifier = d.PacketId });
    }

    private void OnPubRel(MqttPubRelPacket rel)
    {
        if (_qos2Recorded?.Contains(rel.PacketIdentifier) == true)
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
        foreach (var f in s.TopicFilters)
        {
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
        _services.SessionRegion.Tell(new SubscribeRequest(_clientId, _connectionId, s.PacketIdentifier, subs));
    }

    // ------------------------------------------------------------------ packets to the client

    private void OnSendPublish(SendPublish s)
    {
        var msg = s.Message;
        if (s.Qos == 0 && _transport.PendingBytes > MaxPendingBytesForQos0)
        {
            return; // slow consumer: QoS 0 is best effort
        }
        var p = _outPublish ??= new MqttPublishPacket();
        p.Topic = msg.Topic;
        p.Payload = new ReadOnlySequence<byte>(msg.Payload);
        p.QualityOfServiceLevel = (MqttQualityOfServiceLevel)s.Qos;
        p.Retain = s.Retain;
        p.Dup = s.Dup;
        p.PacketIdentifier = s.PacketId;
        if (IsV5)
        {
            p.ContentType = msg.ContentType;
            p.ResponseTopic = msg.ResponseTopic;
            p.CorrelationData = msg.CorrelationData;
            p.PayloadFormatIndicator = (MqttPayloadFormatIndicator)msg.PayloadFormat;
            p.MessageExpiryInterval = msg.RemainingExpirySeconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            p.UserProperties = msg.UserProperties is { Count: > 0 } props ? [.. props.Select(u => new MqttUserProperty(u.Name, System.Text.Encoding.UTF8.GetBytes(u.Value).AsMemory()))] : null;
            p.SubscriptionIdentifiers = s.SubscriptionIds is { Count: > 0 } ids ? [.. ids] : null;
        }
        var encoder = MqttCodec.For(_version);
        var buffer = encoder.Encode(p);
        if (_clientMaxPacket > 0 && buffer.Length > _clientMaxPacket)
        {
            // Too large for this client (MQTT 5 §3.1.2.11.4): discarded as if it had been delivered.
            SelfAcknowledge(s);
            return;
        }
        _transport.Send(buffer.Packet, buffer.Payload);
        if (buffer.Length > 65536)
        {
            encoder.Cleanup();
        }
    }

    private void SelfAcknowledge(SendPublish s)
    {
        switch (s.Qos)
        {
            case 1:
                _services.SessionRegion.Tell(new ClientAck(_clientId, _connectionId, AckKind.PubAck, s.PacketId));
                break;
            case 2:
                (_selfAcked ??= []).Add(s.PacketId);
                _services.SessionRegion.Tell(new ClientAck(_clientId, _connectionId, AckKind.PubRec, s.PacketId));
                break;
        }
    }

    private void Send(MqttPacket packet)
    {
        var buffer = MqttCodec.For(_version).Encode(packet);
        _transport.Send(buffer.Packet, buffer.Payload);
    }

    private static List<UserProperty>? ToUserProperties(List<MqttUserProperty>? props) =>
        props is { Count: > 0 } ? [.. props.Select(p => new UserProperty(p.Name, p.ReadValueAsString()))] : null;

    // ------------------------------------------------------------------ closing

    /// <summary>Sends DISCONNECT with <paramref name="reasonCode"/> to an MQTT 5 client, then closes the socket.</summary>
    private void Close(byte? reasonCode, string why)
    {
        if (_closing)
        {
            return;
        }
        _closing = true;
        if (reasonCode is { } code && _phase == Phase.Connected && IsV5)
        {
            Send(new MqttDisconnectPacket { ReasonCode = (MqttDisconnectReasonCode)code });
        }
        if (reasonCode is not null && !_graceful)
        {
            _log.Info("closing {0} ({1}): {2}", _clientId.Length > 0 ? _clientId : _transport.Remote, reasonCode, why);
        }
        _transport.CompleteOutput();
        // The client has 5 s to take our last packets before the socket is dropped (see OnDeadlinePassed).
        _transport.DeadlineMs = NowMs + 5000;
    }

    protected override void PostStop()
    {
        _transport.Inbound.Close();
        _retryTick?.Cancel();
        if (_sessionAttached)
        {
            var closed = new ConnectionClosed(_clientId, _connectionId, _graceful, _willOnDisconnect, _newExpiry);
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
