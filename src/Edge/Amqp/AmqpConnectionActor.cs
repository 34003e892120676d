using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Akka.Event;
using Broker.Actors;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Content;
using Broker.Actors.Messages;
using Broker.Actors.Routing;
using Broker.Actors.Sessions;
using Broker.Edge.Mqtt;

namespace Broker.Edge.Amqp;

/// <summary>
/// One AMQP 0.9.1 connection: the handshake, its channels, and the client's side of exchanges, queues and
/// consumers. Publishes are routed here, at the edge, through the node's replica of the topology and go
/// straight to each queue entity wherever it lives; a confirm goes out once every queue that took the
/// message has it durable. Deliveries come from the queues paced by credit, so a consumer never has more
/// than its prefetch allows and the socket never has more than a window of unread deliveries queued.
/// </summary>
internal sealed partial class AmqpConnectionActor : UntypedActor
{
    private enum Phase : byte
    {
        AwaitingHeader,
        AwaitingStartOk,
        /// <summary>start-ok received; the user store (perhaps the HTTP backend) is deciding.</summary>
        AwaitingLogin,
        AwaitingTuneOk,
        AwaitingOpen,
        Open,
        /// <summary>connection.close was sent (or received and answered): only close-ok matters now.</summary>
        Closing,
    }

    private const string Product = "Broker";

    private readonly AmqpTransport _transport;
    private readonly BrokerServices _services;
    private readonly AmqpServices _amqp;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<ushort, AmqpChannel> _channels = new();
    private readonly string _connectionId;
    private Phase _phase;
    private uint _frameMax = AmqpTransport.HandshakeFrameMax;
    private ushort _channelMax;
    private string _connectionName = "";
    private string _user = "";

    /// <summary>Why this connection ends (Client unless the broker closed it), counted when the actor stops.</summary>
    private CloseReason _closeReason = CloseReason.Client;

    /// <summary>The MQTT ACL rules of this connection's user, for amq.topic (made at the first check).</summary>
    private Security.ClientAcl? _mqttAcl;
    private long _connectedAtUnixMs;
    private bool _cancelNotify;
    private bool _blockedNotify;
    private ushort _heartbeatSeconds;
    private bool _registered;
    private ICancelable? _closeTimeout;

    public static Props Props(AmqpTransport transport, BrokerServices services, AmqpServices amqp) =>
        Akka.Actor.Props.Create(() => new AmqpConnectionActor(transport, services, amqp)).WithMailbox(Broker.Actors.Dispatch.CompactMailbox.ConfigPath);

    public AmqpConnectionActor(AmqpTransport transport, BrokerServices services, AmqpServices amqp)
    {
        _transport = transport;
        _services = services;
        _amqp = amqp;
        _connectionId = $"{services.NodeName}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}";
    }

    /// <summary>The id the admin API lists this connection under.</summary>
    private string ClientId => "amqp091:" + _connectionId;

    private static long UnixNowMs => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    protected override void OnReceive(object message)
    {
        try
        {
            Dispatch(message);
        }
        catch (Exception ex) when (ex is not ActorKilledException)
        {
            // A restart would lose every channel's state: close the connection with an internal error instead.
            _log.Error(ex, "AMQP connection {0} failed", _transport.Remote);
            CloseConnection(AmqpReplyCode.InternalError, "INTERNAL_ERROR", 0, 0);
        }
        _transport.Flush();
    }

    private void Dispatch(object message)
    {
        switch (message)
        {
            case AmqpInboundPublish p:
                ActOn(p.Channel, p, p.Size);
                return;
            case AmqpInboundMethod m when m.Channel == 0:
                try
                {
                    OnConnectionMethod(m.Method);
                }
                finally
                {
                    _transport.Inbound.Release(m.Size);
                }
                return;
            case AmqpInboundMethod m:
                ActOn(m.Channel, m, m.Size);
                return;
            case QueueDelivery d:
                OnDelivery(d, Sender);
                return;
            case Enqueued e:
                OnEnqueued(e.MessageId, e.Queue);
                return;
            case QueueMissing q:
                OnEnqueued(q.MessageId, q.Queue);
                return;
            case EnqueueRejected r:
                OnEnqueued(r.MessageId, r.Queue, rejected: true);
                return;
            case DeliverAck a:
                OnTargetAnswered(a.Correlation, a.Target);
                return;
            case FlowAck f:
                OnFlowAck(f);
                return;
            case ConsumeOk ok:
                OnConsumeOk(ok, Sender);
                return;
            case LoginChecked login:
                OnLogin(login);
                return;
            case KickClient k:
                // An operator's disconnect (admin API), in RabbitMQ's words.
                Sender.Tell(new KickDone(k.ClientId, true));
                _log.Info("AMQP connection {0}: closed by an operator (admin API)", _transport.Remote);
                _closeReason = CloseReason.Kicked;
                CloseConnection(AmqpReplyCode.ConnectionForced, "CONNECTION_FORCED - Closed via management plugin", 0, 0);
                return;
            case ConsumeRefused refused:
                OnConsumeRefused(refused);
                return;
            case ConsumerCancelled c:
                OnConsumerCancelled(c);
                return;
            case ConsumerMoved moved:
                OnConsumerMoved(moved, Sender);
                return;
            case ChannelReply r:
                OnChannelReply(r);
                return;
            case Terminated t:
                OnQueueTerminated(t.ActorRef);
                return;
            case RetryTick:
                OnRetryTick();
                return;
            case RedeliverPending:
                OnMemberRemoved();
                return;
            case AmqpBlocked b:
                if (_blockedNotify && _phase == Phase.Open)
                {
                    Send(0, b.Blocked ? new ConnectionBlocked("low on memory") : ConnectionUnblocked.Instance);
                }
                break;
            case AmqpHeaderAccepted:
                OnHeader();
                return;
            case AmqpContentTooLarge big:
                ChannelError(big.Channel, AmqpReplyCode.PreconditionFailed,
                    $"PRECONDITION_FAILED - message size {big.Size} is larger than configured max size {_transport.MaxMessageSize}", 60, 40);
                return;
            case AmqpTransportError e:
                _log.Info("AMQP connection {0}: {1}", _transport.Remote, e.Text);
                CloseConnection(e.Code, e.Text, e.ClassId, e.MethodId);
                return;
            case AmqpHeartbeatDue:
                AmqpFrameWriter.WriteHeartbeat(_transport.Output);
                return;
            case AmqpDeadlinePassed:
                _log.Info("AMQP connection {0}: {1}", _transport.Remote, _phase == Phase.Open ? "missed heartbeats from client" : "handshake timed out");
                _closeReason = CloseReason.KeepAliveTimeout;
                _transport.CompleteOutput();
                Context.Stop(Self);
                return;
            case CloseTimedOut:
                _transport.CompleteOutput();
                Context.Stop(Self);
                return;
            case AmqpTransportClosed:
                Context.Stop(Self);
                return;
            case ServerShutdown:
                CloseConnection(AmqpReplyCode.ConnectionForced, "CONNECTION_FORCED - broker shutdown", 0, 0);
                return;
            case GetSessionInfo:
                Sender.Tell(Info());
                return;
            default:
                Unhandled(message);
                return;
        }
    }

    // ------------------------------------------------------------------ connection class

    private void OnHeader()
    {
        _phase = Phase.AwaitingStartOk;
        var capabilities = new FieldTable([
            new("publisher_confirms", true),
            new("exchange_exchange_bindings", true),
            new("basic.nack", true),
            new("consumer_cancel_notify", true),
            new("connection.blocked", true),
            new("per_consumer_qos", true),
            new("authentication_failure_close", true),
        ]);
        var serverProperties = new FieldTable([
            new("product", Encoding.UTF8.GetBytes(Product)),
            new("version", Encoding.UTF8.GetBytes(typeof(AmqpConnectionActor).Assembly.GetName().Version?.ToString() ?? "0")),
            new("platform", Encoding.UTF8.GetBytes(".NET")),
            new("cluster_name", Encoding.UTF8.GetBytes(_services.NodeName)),
            new("capabilities", capabilities),
        ]);
        Send(0, new ConnectionStart(0, 9, serverProperties, "PLAIN AMQPLAIN", "en_US"));
    }

    private void OnConnectionMethod(AmqpMethod method)
    {
        switch (_phase, method)
        {
            case (Phase.Closing, ConnectionCloseOk):
                _transport.CompleteOutput();
                Context.Stop(Self);
                return;
            case (Phase.Closing, ConnectionClose):
                Send(0, ConnectionCloseOk.Instance);
                return;
            case (Phase.Closing, _):
                return;
            case (Phase.AwaitingStartOk, ConnectionStartOk startOk):
                OnStartOk(startOk);
                return;
            case (Phase.AwaitingTuneOk, ConnectionTuneOk tuneOk):
                OnTuneOk(tuneOk);
                return;
            case (Phase.AwaitingOpen, ConnectionOpen open):
                OnOpen(open);
                return;
            case (Phase.Open, ConnectionClose):
                // The client closes: answer, release everything, and let the client close the socket.
                ReleaseAll();
                _phase = Phase.Closing;
                Send(0, ConnectionCloseOk.Instance);
                _transport.Flush();
                _transport.CompleteOutput();
                Context.Stop(Self);
                return;
            case (Phase.Open, ConnectionCloseOk):
                return;
            default:
                CloseConnection(AmqpReplyCode.CommandInvalid,
                    $"COMMAND_INVALID - unexpected method {method.ClassId}.{method.MethodId} on channel 0", method.ClassId, method.MethodId);
                return;
        }
    }

    private void OnStartOk(ConnectionStartOk startOk)
    {
        if (startOk.ClientProperties.TryGet("connection_name", out var name))
        {
            _connectionName = name switch
            {
                byte[] b => Encoding.UTF8.GetString(b),
                string s => s,
                _ => "",
            };
        }
        if (startOk.ClientProperties.TryGet("capabilities", out var caps) && caps is FieldTable capabilities)
        {
            _cancelNotify = capabilities.TryGet("consumer_cancel_notify", out var notify) && notify is true;
            _blockedNotify = capabilities.TryGet("connection.blocked", out var blocked) && blocked is true;
        }
        var credentials = startOk.Mechanism switch
        {
            "PLAIN" => AmqpAuth.ParsePlain(startOk.Response),
            "AMQPLAIN" => AmqpAuth.ParseAmqplain(startOk.Response),
            _ => null,
        };
        if (credentials is null)
        {
            CloseConnection(AmqpReplyCode.AccessRefused,
                $"ACCESS_REFUSED - unsupported authentication mechanism '{startOk.Mechanism}' or malformed response", 10, 11);
            return;
        }
        var (user, password) = credentials.Value;
        var refusal = _amqp.Users.Check(user, password, _transport.IsLoopback);
        if (refusal is not null && !_amqp.Users.Contains(user) && _amqp.Access is { HasUserStore: true } access)
        {
            // A user of the MQTT user store (broker.mqtt.password-file, broker.auth-http.url) logs in over AMQP too. The
            // HTTP backend answers later: the client waits for connection.tune meanwhile, the handshake deadline still runs.
            _phase = Phase.AwaitingLogin;
            var mechanism = startOk.Mechanism;
            var verdict = access.AuthenticateAsync(_connectionName, user, Encoding.UTF8.GetBytes(password), _transport.Remote);
            if (verdict.IsCompletedSuccessfully)
            {
                OnLogin(new LoginChecked(user, mechanism, verdict.Result));
            }
            else
            {
                verdict.AsTask().PipeTo(Self, success: v => new LoginChecked(user, mechanism, v),
                    failure: _ => new LoginChecked(user, mechanism, Security.AuthVerdict.Unavailable));
            }
            return;
        }
        LoggedIn(user, startOk.Mechanism, refusal);
    }

    private sealed record LoginChecked(string User, string Mechanism, Security.AuthVerdict Verdict);

    private void OnLogin(LoginChecked login)
    {
        if (_phase != Phase.AwaitingLogin)
        {
            return;
        }
        LoggedIn(login.User, login.Mechanism, login.Verdict switch
        {
            Security.AuthVerdict.Allowed => null,
            Security.AuthVerdict.Unavailable => "the authentication backend did not answer",
            _ => "wrong user name or password",
        });
    }

    /// <summary>The login's outcome: connection.tune, or connection.close 403 with the reason in the log (not to the client).</summary>
    private void LoggedIn(string user, string mechanism, string? refusal)
    {
        if (refusal is not null)
        {
            BrokerCounters.AuthDenied.Increment();
            _amqp.Admission.LoginFailed(_transport.RemoteAddress);
            DenialLog.Shared.Write(_log, $"AMQP connection {_transport.Remote}: login refused for user '{user}': {refusal}");
            CloseConnection(AmqpReplyCode.AccessRefused,
                $"ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. For details see the broker logfile.", 10, 11);
            return;
        }
        _user = user;
        _phase = Phase.AwaitingTuneOk;
        Send(0, new ConnectionTune(_services.Settings.AmqpChannelMax, _amqp.FrameMax, (ushort)_amqp.Heartbeat.TotalSeconds));
    }

    private void OnTuneOk(ConnectionTuneOk tuneOk)
    {
        var frameMax = tuneOk.FrameMax == 0 ? _amqp.FrameMax : tuneOk.FrameMax;
        if (frameMax < AmqpTransport.HandshakeFrameMax || frameMax > _amqp.FrameMax)
        {
            CloseConnection(AmqpReplyCode.NotAllowed, $"NOT_ALLOWED - frame_max {tuneOk.FrameMax} outside {AmqpTransport.HandshakeFrameMax}..{_amqp.FrameMax}", 10, 31);
            return;
        }
        _frameMax = frameMax;
        _transport.FrameMax = frameMax;
        var channelMax = _services.Settings.AmqpChannelMax;
        _channelMax = tuneOk.ChannelMax == 0 ? channelMax : Math.Min(tuneOk.ChannelMax, channelMax);
        _heartbeatSeconds = tuneOk.Heartbeat;
        _transport.SetHeartbeat(TimeSpan.FromSeconds(tuneOk.Heartbeat));
        _phase = Phase.AwaitingOpen;
        // The handshake deadline stays until connection.open; heartbeats take over from there.
        if (tuneOk.Heartbeat == 0)
        {
            _transport.DeadlineMs = Environment.TickCount64 + (long)_services.Settings.ConnectTimeout.TotalMilliseconds;
        }
    }

    private void OnOpen(ConnectionOpen open)
    {
        if (open.VirtualHost != "/")
        {
            CloseConnection(AmqpReplyCode.NotAllowed, $"NOT_ALLOWED - vhost {open.VirtualHost} not found", 10, 40);
            return;
        }
        if (_heartbeatSeconds == 0)
        {
            _transport.DeadlineMs = long.MaxValue;
        }
        _phase = Phase.Open;
        _connectedAtUnixMs = UnixNowMs;
        Send(0, ConnectionOpenOk.Instance);
        _services.SessionIndex.Tell(new IndexUpdate(ClientId, true, Self, 0, _user));
        _registered = true;
    }

    /// <summary>A connection error: connection.close with the code, then the socket closes once the client answers (or after a second).</summary>
    private void CloseConnection(ushort code, string text, ushort classId, ushort methodId)
    {
        if (_phase == Phase.Closing)
        {
            return;
        }
        if (code is AmqpReplyCode.FrameError or AmqpReplyCode.SyntaxError or AmqpReplyCode.CommandInvalid or AmqpReplyCode.ChannelError
            or AmqpReplyCode.UnexpectedFrame or AmqpReplyCode.NotImplemented)
        {
            BrokerCounters.Amqp.ProtocolError();
            _closeReason = CloseReason.ProtocolError;
        }
        else if (code == AmqpReplyCode.AccessRefused)
        {
            _closeReason = CloseReason.Refused;
        }
        else if (code == AmqpReplyCode.ConnectionForced && _closeReason == CloseReason.Client)
        {
            _closeReason = CloseReason.ServerShutdown;
        }
        else if (_closeReason == CloseReason.Client)
        {
            _closeReason = CloseReason.Other;
        }
        var wasOpen = _phase != Phase.AwaitingHeader;
        _transport.DiscardChannelFrames();
        ReleaseAll();
        _phase = Phase.Closing;
        if (!wasOpen)
        {
            _transport.CompleteOutput();
            Context.Stop(Self);
            return;
        }
        Send(0, new ConnectionClose(code, Truncate(text), classId, methodId));
        _closeTimeout = Context.System.Scheduler.ScheduleTellOnceCancelable(TimeSpan.FromSeconds(1), Self, CloseTimedOut.Instance, Self);
    }

    private sealed record CloseTimedOut
    {
        public static readonly CloseTimedOut Instance = new();
    }

    private static string Truncate(string text) => Encoding.UTF8.GetByteCount(text) <= 255 ? text : text[..Math.Min(text.Length, 250)];

    /// <summary>Requeues every unacknowledged delivery, drops every consumer and tells the topology owner the connection is gone.</summary>
    private void ReleaseAll()
    {
        foreach (var channel in _channels.Values)
        {
            ReleaseChannel(channel);
            DropBacklog(channel);
        }
        _channels.Clear();
        if (_phase == Phase.Open)
        {
            _amqp.TopologyOwner.Tell(new ConnectionGone(_connectionId));
        }
        Unregister();
    }

    private void Unregister()
    {
        if (_registered)
        {
            _registered = false;
            _services.SessionIndex.Tell(new IndexRemove(ClientId, Self));
        }
    }

    protected override void PostStop()
    {
        BrokerCounters.Amqp.ClosedBy(_closeReason);
        _transport.Inbound.Close();
        _closeTimeout?.Cancel();
        _retryTick?.Cancel();
        if (_phase != Phase.Closing)
        {
            ReleaseAll();
        }
        Unregister();
        _transport.CompleteOutput();
        base.PostStop();
    }

    private void Send(ushort channel, AmqpMethod method) => AmqpFrameWriter.WriteMethod(_transport.Output, channel, method);

    private void SendContent(ushort channel, AmqpMethod method, byte[] properties, byte[] body)
    {
        AmqpFrameWriter.WriteMethod(_transport.Output, channel, method);
        AmqpFrameWriter.WriteContent(_transport.Output, channel, properties, body, _frameMax);
    }

    private SessionInfo Info()
    {
        var subscriptions = new List<Subscription>();
        var unacked = 0;
        foreach (var channel in _channels.Values)
        {
            unacked += channel.Unacked.Count;
            foreach (var consumer in channel.Consumers.Values)
            {
                subscriptions.Add(new Subscription(consumer.Queue, consumer.NoAck ? (byte)0 : (byte)1));
            }
        }
        return new SessionInfo(ClientId, true, 0, true, 0, _connectedAtUnixMs, null, 0, _frameMax, 0, false, false, false,
            unacked, 0, subscriptions, _services.NodeName, _connectionName);
    }
}
