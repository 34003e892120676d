using System.Security.Cryptography;
using Akka.Actor;
using Akka.Event;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Content;
using Broker.Actors.Messages;
using Broker.Actors.Routing;

namespace Broker.Edge.Amqp;

internal sealed partial class AmqpConnectionActor
{
    /// <summary>
    /// A publish that waits for queues (and MQTT sessions) to say it is durable, for a confirm or a commit; tracked by
    /// its message id, which the queues answer with and which is the correlation of its MQTT deliveries.
    /// </summary>
    private sealed record PendingPublish(AmqpChannel Channel, ulong Seq, PendingCommit? Tx);

    /// <summary>A tx.commit in progress: commit-ok goes out when every publish of the transaction is durable.</summary>
    private sealed class PendingCommit(AmqpChannel channel)
    {
        public readonly AmqpChannel Channel = channel;
        public int Outstanding;
        public bool Routed;
    }

    /// <summary>An answer for a channel's synchronous method, run on the actor's thread.</summary>
    private sealed record ChannelReply(AmqpChannel Channel, Action<object?> Continue, object? Result);

    private sealed record RetryTick
    {
        public static readonly RetryTick Instance = new();
    }

    /// <summary>How long a consumer registration waits for its queue's answer before it is sent again.</summary>
    private const long FirstRetryMs = PublishTracker<PendingPublish>.FirstRetryMs;

    /// <summary>Deliveries of a window-paced consumer written before their credit goes back to the queue.</summary>
    private const int CreditBatch = 100;

    /// <summary>Above this many unsent bytes the client is not reading: credit is held back until it catches up.</summary>
    private const long MaxPendingBytes = 4 * 1024 * 1024;

    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    private readonly PublishTracker<PendingPublish> _pending = new();
    private readonly HashSet<string> _routeSet = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IActorRef> _queueEntities = new(StringComparer.Ordinal);
    private RouteCollector? _collector;
    private ICancelable? _retryTick;

    /// <summary>Created at the first publish without confirms: bounds what this client has in flight towards its queues (<see cref="FlowWindow"/>).</summary>
    private Hosting.PublishFlow? _flow;

    /// <summary>Set while acting on a publish without confirms: its inbound bytes stay counted until its targets answer a flow probe.</summary>
    private bool _holdInbound;
    private bool _creditHeld;

    private ChannelRef RefOf(AmqpChannel channel) => new(Self, channel.Number);

    // ------------------------------------------------------------------ channel input

    /// <summary>Handles channel input and lets the read loop count it as done, unless the channel holds it for later.</summary>
    private void ActOn(ushort number, object item, int size)
    {
        var held = false;
        try
        {
            held = OnChannelInput(number, item);
        }
        finally
        {
            if (!held)
            {
                ReleaseOrHold(size);
            }
        }
    }

    /// <summary>
    /// The read loop stops counting an item acted on, unless it was a publish without confirms: its weight is released
    /// once its targets answer the flow probe that covers it.
    /// </summary>
    private void ReleaseOrHold(int size)
    {
        if (!_holdInbound)
        {
            _transport.Inbound.Release(size);
            return;
        }
        _holdInbound = false;
        if (_flow!.Hold(size, Self, Environment.TickCount64))
        {
            EnsureRetryTick();
        }
    }

    private void OnFlowAck(FlowAck ack) => _flow?.Answer(ack);

    private void ExpireFlowProbes(long now)
    {
        if (_flow is not { HasOutstanding: true })
        {
            return;
        }
        var (weight, probes) = _flow.Expire(now);
        if (probes > 0)
        {
            _log.Warning("{0} flow probes unanswered for {1} s (a target's node failed?); their {2} bytes count as delivered",
                probes, Hosting.PublishFlow.ProbeTimeoutMs / 1000, weight);
        }
    }

    /// <summary>What the channel held for later is never acted on: the read loop stops counting it.</summary>
    private void DropBacklog(AmqpChannel channel)
    {
        while (channel.Backlog is { Count: > 0 } backlog)
        {
            _transport.Inbound.Release(SizeOf(backlog.Dequeue()));
        }
        channel.Backlog = null;
    }

    private static int SizeOf(object item) => item switch
    {
        AmqpInboundPublish p => p.Size,
        AmqpInboundMethod m => m.Size,
        _ => 0,
    };

    /// <summary>True when the item waits in the channel's backlog (it is released from the inbound count as it is taken from there).</summary>
    private bool OnChannelInput(ushort number, object item)
    {
        if (_phase != Phase.Open)
        {
            if (_phase != Phase.Closing)
            {
                CloseConnection(AmqpReplyCode.ChannelError, "CHANNEL_ERROR - channel frame before connection.open", 0, 0);
            }
            return false;
        }
        if (!_channels.TryGetValue(number, out var channel))
        {
            if (item is AmqpInboundMethod { Method: ChannelOpen })
            {
                // A connection exception, as RabbitMQ answers it: the client broke what it agreed to in tune-ok.
                if (number > _channelMax)
                {
                    CloseConnection(AmqpReplyCode.NotAllowed, $"NOT_ALLOWED - channel id {number} greater than channel_max {_channelMax}", 20, 10);
                    return false;
                }
                _channels[number] = new AmqpChannel(number);
                Send(number, ChannelOpenOk.Instance);
                return false;
            }
            if (item is AmqpInboundMethod { Method: ChannelCloseOk })
            {
                return false;
            }
            CloseConnection(AmqpReplyCode.ChannelError, $"CHANNEL_ERROR - expected 'channel.open' on channel {number}", 0, 0);
            return false;
        }
        if (channel.Closing)
        {
            switch (item)
            {
                case AmqpInboundMethod { Method: ChannelCloseOk }:
                    _channels.Remove(number);
                    break;
                case AmqpInboundMethod { Method: ChannelClose }:
                    // Both sides closed at once: each answers the other.
                    Send(number, ChannelCloseOk.Instance);
                    _channels.Remove(number);
                    break;
            }
            return false;
        }
        if (channel.Busy)
        {
            (channel.Backlog ??= new Queue<object>()).Enqueue(item);
            return true;
        }
        Process(channel, item);
        return false;
    }

    private void Drain(AmqpChannel channel)
    {
        while (!channel.Busy && !channel.Closing && channel.Backlog is { Count: > 0 } backlog && _phase == Phase.Open)
        {
            var item = backlog.Dequeue();
            try
            {
                Process(channel, item);
            }
            finally
            {
                ReleaseOrHold(SizeOf(item));
            }
        }
    }

    private void Process(AmqpChannel channel, object item)
    {
        if (Refused(channel, item))
        {
            return;
        }
        if (item is AmqpInboundPublish publish)
        {
            OnPublish(channel, publish);
            return;
        }
        var method = ((AmqpInboundMethod)item).Method;
        switch (method)
        {
            case BasicAck ack:
                Settle(channel, ack.DeliveryTag, ack.Multiple, Settlement.Ack, method);
                return;
            case BasicNack nack:
                Settle(channel, nack.DeliveryTag, nack.Multiple, nack.Requeue ? Settlement.Requeue : Settlement.Discard, method);
                return;
            case BasicReject reject:
                Settle(channel, reject.DeliveryTag, false, reject.Requeue ? Settlement.Requeue : Settlement.Discard, method);
                return;
            case BasicQos qos:
                OnQos(channel, qos);
                return;
            case BasicConsume consume:
                OnConsume(channel, consume);
                return;
            case BasicCancel cancel:
                OnCancel(channel, cancel);
                return;
            case BasicGet get:
                OnGet(channel, get);
                return;
            case BasicRecover recover:
                RequeueAll(channel);
                Send(channel.Number, BasicRecoverOk.Instance);
                return;
            case BasicRecoverAsync:
                RequeueAll(channel);
                return;
            case ChannelOpen:
                CloseConnection(AmqpReplyCode.ChannelError, $"CHANNEL_ERROR - second 'channel.open' seen on channel {channel.Number}", 20, 10);
                return;
            case ChannelClose:
                ReleaseChannel(channel);
                _channels.Remove(channel.Number);
                Send(channel.Number, ChannelCloseOk.Instance);
                return;
            case ChannelCloseOk:
                return;
            case ChannelFlow flow:
                channel.FlowActive = flow.Active;
                Send(channel.Number, new ChannelFlowOk(flow.Active));
                WriteHeld(channel);
                return;
            case ExchangeDeclare declare:
                OnExchangeDeclare(channel, declare);
                return;
            case ExchangeDelete delete:
                AskTopology(channel, new DeleteExchange(delete.Exchange, delete.IfUnused), method, _ =>
                {
                    if (!delete.NoWait)
                    {
                        Send(channel.Number, ExchangeDeleteOk.Instance);
                    }
                });
                return;
            case ExchangeBind bind:
                AskTopology(channel, new Bind(new BindingDefinition(bind.Source, bind.Destination, true, bind.RoutingKey, RawArguments(bind.Arguments))), method, _ =>
                {
                    if (!bind.NoWait)
                    {
                        Send(channel.Number, ExchangeBindOk.Instance);
                    }
                });
                return;
            case ExchangeUnbind unbind:
                AskTopology(channel, new Unbind(new BindingDefinition(unbind.Source, unbind.Destination, true, unbind.RoutingKey, RawArguments(unbind.Arguments))), method, _ =>
                {
                    if (!unbind.NoWait)
                    {
                        Send(channel.Number, ExchangeUnbindOk.Instance);
                    }
                });
                return;
            case QueueDeclare declare:
                OnQueueDeclare(channel, declare);
                return;
            case QueueBind bind:
                OnQueueBind(channel, bind);
                return;
            case QueueUnbind unbind:
            {
                var queue = unbind.Queue.Length == 0 ? channel.LastQueue ?? "" : unbind.Queue;
                AskTopology(channel, new Unbind(new BindingDefinition(unbind.Exchange, queue, false, unbind.RoutingKey, RawArguments(unbind.Arguments))), method, _ =>
                    Send(channel.Number, QueueUnbindOk.Instance));
                return;
            }
            case QueuePurge purge:
                OnQueuePurge(channel, purge);
                return;
            case QueueDelete delete:
                OnQueueDelete(channel, delete);
                return;
            case ConfirmSelect select:
                if (channel.Tx)
                {
                    ChannelError(channel.Number, AmqpReplyCode.PreconditionFailed, "PRECONDITION_FAILED - cannot switch from tx to confirm mode", 85, 10);
                    return;
                }
                channel.Confirm = true;
                channel.Unconfirmed ??= [];
                if (!select.NoWait)
                {
                    Send(channel.Number, ConfirmSelectOk.Instance);
                }
                return;
            case TxSelect:
                if (channel.Confirm)
                {
                    ChannelError(channel.Number, AmqpReplyCode.PreconditionFailed, "PRECONDITION_FAILED - cannot switch from confirm to tx mode", 90, 10);
                    return;
                }
                channel.Tx = true;
                Send(channel.Number, TxSelectOk.Instance);
                return;
            case TxCommit:
                OnCommit(channel);
                return;
            case TxRollback:
                if (!channel.Tx)
                {
                    ChannelError(channel.Number, AmqpReplyCode.PreconditionFailed, "PRECONDITION_FAILED - channel is not transactional", 90, 30);
                    return;
                }
                channel.TxPublishes = null;
                channel.TxBytes = 0;
                channel.TxSettles = null;
                Send(channel.Number, TxRollbackOk.Instance);
                return;
            default:
                CloseConnection(AmqpReplyCode.CommandInvalid,
                    $"COMMAND_INVALID - method {method.ClassId}.{method.MethodId} is not allowed from a client on a channel", method.ClassId, method.MethodId);
                return;
        }
    }

    /// <summary>A channel error: channel.close with the code; the channel's deliveries go back to their queues and the connection carries on.</summary>
    private void ChannelError(ushort number, ushort code, string text, ushort classId, ushort methodId)
    {
        if (!_channels.TryGetValue(number, out var channel) || channel.Closing)
        {
            return;
        }
        ReleaseChannel(channel);
        channel.Closing = true;
        DropBacklog(channel);
        Send(number, new ChannelClose(code, Truncate(text), classId, methodId));
    }

    /// <summary>Gives back what the channel holds: its queues requeue its unacknowledged deliveries and drop its consumers.</summary>
    private void ReleaseChannel(AmqpChannel channel)
    {
        foreach (var queue in channel.Queues)
        {
            _amqp.QueueRegion.Tell(new ChannelClosed(queue, RefOf(channel)));
        }
        channel.Queues.Clear();
        channel.Consumers.Clear();
        channel.Unacked.Clear();
        channel.Held = null;
        channel.TxPublishes = null;
        channel.TxBytes = 0;
        channel.TxSettles = null;
        channel.Busy = false;
        _pending.RemoveWhere(p => p.Channel == channel);
    }

    // ------------------------------------------------------------------ asynchronous steps

    /// <summary>Makes the channel wait for <paramref name="task"/>; <paramref name="then"/> runs on the actor with its result.</summary>
    private void Await(AmqpChannel channel, Task<object> task, Action<object?> then)
    {
        channel.Busy = true;
        task.PipeTo(Self, success: r => new ChannelReply(channel, then, r), failure: ex => new ChannelReply(channel, then, ex));
    }

    /// <summary>
    /// The user's permissions (broker.amqp.permissions-file) and, on amq.topic, the MQTT ACL of the same user: a method
    /// they refuse closes its channel with 403 ACCESS_REFUSED, counted and logged at a bounded rate.
    /// </summary>
    private bool Refused(AmqpChannel channel, object item)
    {
        var method = item is AmqpInboundPublish p ? p.Method : ((AmqpInboundMethod)item).Method;
        var text = _amqp.Permissions()?.Check(_user, method, channel.LastQueue) ?? MqttAclRefusal(method);
        if (text is null)
        {
            return false;
        }
        BrokerCounters.AuthzDenied.Increment();
        DenialLog.Shared.Write(_log, $"AMQP connection {_transport.Remote}: {text}");
        ChannelError(channel.Number, AmqpReplyCode.AccessRefused, text, method.ClassId, method.MethodId);
        return true;
    }

    /// <summary>
    /// amq.topic carries MQTT topics: a publish there writes its routing key's topic, a binding from it reads its binding
    /// key's filter, and both must be allowed by the MQTT ACL for this user (no ACL file: no check).
    /// </summary>
    private string? MqttAclRefusal(AmqpMethod method)
    {
        if (_amqp.Access is not { HasAcl: true } access)
        {
            return null;
        }
        var acl = _mqttAcl = access.AclFor(_user, "", _mqttAcl)!;
        var (write, key) = method switch
        {
            BasicPublish { Exchange: MqttBridge.Exchange } p => (true, p.RoutingKey),
            QueueBind { Exchange: MqttBridge.Exchange } b => (false, b.RoutingKey),
            ExchangeBind { Source: MqttBridge.Exchange } b => (false, b.RoutingKey),
            _ => (false, (string?)null),
        };
        if (key is null)
        {
            return null;
        }
        if (write)
        {
            return MqttBridge.RoutingKeyToTopic(key) is not { } topic || acl.MayPublish(topic)
                ? null
                : $"ACCESS_REFUSED - write access to MQTT topic '{topic}' (amq.topic routing key '{key}') refused for user '{_user}'";
        }
        return Security.AmqpPermissions.BindingKeyToFilter(key) is { } filter && acl.MaySubscribe(filter)
            ? null
            : $"ACCESS_REFUSED - read access to MQTT topics of amq.topic binding key '{key}' refused for user '{_user}'";
    }

    private void OnChannelReply(ChannelReply reply)
    {
        var channel = reply.Channel;
        if (!_channels.TryGetValue(channel.Number, out var current) || current != channel || channel.Closing || _phase != Phase.Open)
        {
            return;
        }
        channel.Busy = false;
        reply.Continue(reply.Result);
        Drain(channel);
    }

    /// <summary>Asks through a shard region, asking again when no answer comes (the region may drop a message while a shard moves).</summary>
    private static async Task<object> AskRetrying(IActorRef region, object message, int attempts = 3)
    {
        for (var i = 1; ; i++)
        {
            try
            {
                return await region.Ask<object>(message, AskTimeout).ConfigureAwait(false);
            }
            catch (AskTimeoutException) when (i < attempts)
            {
            }
        }
    }

    /// <summary>
    /// Sends a change to the topology owner. On success the channel waits until this node's replica has the
    /// change, so the client's next publish here already routes by it; a refusal closes the channel.
    /// </summary>
    private void AskTopology(AmqpChannel channel, ITopologyCommand command, AmqpMethod method, Action<object> then)
    {
        Await(channel, AskRetrying(_amqp.TopologyOwner, command), result =>
        {
            long version;
            switch (result)
            {
                case TopologyRefused refused:
                    ChannelError(channel.Number, refused.ReplyCode, refused.ReplyText, method.ClassId, method.MethodId);
                    return;
                case TopologyOk ok:
                    version = ok.Version;
                    break;
                case QueueDeclared declared:
                    version = declared.Version;
                    break;
                case QueueDeleted deleted:
                    version = deleted.Version;
                    break;
                default:
                    ChannelError(channel.Number, AmqpReplyCode.InternalError, "INTERNAL_ERROR - the topology did not answer in time", method.ClassId, method.MethodId);
                    return;
            }
            var wait = _amqp.Topology.WaitForVersionAsync(version);
            if (wait.IsCompletedSuccessfully)
            {
                then(result);
                return;
            }
            Await(channel, wait.ContinueWith(_ => result, TaskScheduler.Default), r => then(r!));
        });
    }

    private static byte[] RawArguments(FieldTable arguments) => arguments.Count == 0 ? [] : FieldTableCodec.Write(arguments);

    // ------------------------------------------------------------------ exchanges and queues

    private void OnExchangeDeclare(AmqpChannel channel, ExchangeDeclare declare)
    {
        ExchangeKind kind;
        switch (declare.Type)
        {
            case "direct": kind = ExchangeKind.Direct; break;
            case "fanout": kind = ExchangeKind.Fanout; break;
            case "topic": kind = ExchangeKind.Topic; break;
            case "headers": kind = ExchangeKind.Headers; break;
            default:
                if (!declare.Passive)
                {
                    CloseConnection(AmqpReplyCode.CommandInvalid, $"COMMAND_INVALID - unknown exchange type '{declare.Type}'", 40, 10);
                    return;
                }
                kind = ExchangeKind.Direct;
                break;
        }
        var definition = new ExchangeDefinition(declare.Exchange, kind, declare.Durable, declare.AutoDelete, declare.Internal);
        AskTopology(channel, new DeclareExchange(definition, declare.Passive), declare, _ =>
        {
            if (!declare.NoWait)
            {
                Send(channel.Number, ExchangeDeclareOk.Instance);
            }
        });
    }

    private bool LockedByOther(QueueDefinition definition) => definition.ExclusiveOwner is { } owner && owner != _connectionId;

    private static string LockedText(string queue) =>
        $"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{queue}' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.";

    private static string NoQueueText(string queue) => $"NOT_FOUND - no queue '{queue}' in vhost '/'";

    private static string NewName(string prefix) =>
        prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(16)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private void OnQueueDeclare(AmqpChannel channel, QueueDeclare declare)
    {
        // An empty name asks for a server-named queue ("amq.gen-…", chosen by the topology owner); a passive
        // declare with an empty name means the channel's last declared queue.
        var name = declare.Queue.Length == 0 && declare.Passive ? channel.LastQueue ?? "" : declare.Queue;
        var arguments = QueueArgumentParser.Parse(declare.Arguments, name, out var error);
        if (error is not null)
        {
            ChannelError(channel.Number, AmqpReplyCode.PreconditionFailed, error, 50, 10);
            return;
        }
        var definition = new QueueDefinition(name, declare.Durable, declare.AutoDelete, declare.Exclusive ? _connectionId : null, arguments!);
        AskTopology(channel, new DeclareQueue(definition, declare.Passive, Self), declare, result =>
        {
            var declared = ((QueueDeclared)result).Definition;
            if (LockedByOther(declared))
            {
                ChannelError(channel.Number, AmqpReplyCode.ResourceLocked, LockedText(declared.Name), 50, 10);
                return;
            }
            Await(channel, AskRetrying(_amqp.QueueRegion, new EnsureQueue(declared)), ready =>
            {
                if (ready is not QueueReady r)
                {
                    ChannelError(channel.Number, AmqpReplyCode.InternalError, $"INTERNAL_ERROR - queue '{declared.Name}' did not answer in time", 50, 10);
                    return;
                }
                channel.LastQueue = declared.Name;
                if (!declare.NoWait)
                {
                    Send(channel.Number, new QueueDeclareOk(declared.Name, r.MessageCount, r.ConsumerCount));
                }
            });
        });
    }

    private void OnQueueBind(AmqpChannel channel, QueueBind bind)
    {
        var queue = bind.Queue.Length == 0 ? channel.LastQueue : bind.Queue;
        if (queue is null)
        {
            ChannelError(channel.Number, AmqpReplyCode.NotFound, "NOT_FOUND - no previously declared queue", 50, 20);
            return;
        }
        var key = bind.Queue.Length == 0 && bind.RoutingKey.Length == 0 ? queue : bind.RoutingKey;
        if (_amqp.Topology.View.TryGetQueue(queue, out var definition) && LockedByOther(definition))
        {
            ChannelError(channel.Number, AmqpReplyCode.ResourceLocked, LockedText(queue), 50, 20);
            return;
        }
        AskTopology(channel, new Bind(new BindingDefinition(bind.Exchange, queue, false, key, RawArguments(bind.Arguments))), bind, _ =>
        {
            if (!bind.NoWait)
            {
                Send(channel.Number, QueueBindOk.Instance);
            }
        });
    }

    /// <summary>The queue a method names (or the channel's last declared one), checked to exist and not be another connection's exclusive queue.</summary>
    private string? ResolveQueue(AmqpChannel channel, string named, AmqpMethod method)
    {
        var queue = named.Length == 0 ? channel.LastQueue : named;
        if (queue is null)
        {
            ChannelError(channel.Number, AmqpReplyCode.NotFound, "NOT_FOUND - no previously declared queue", method.ClassId, method.MethodId);
            return null;
        }
        if (!_amqp.Topology.View.TryGetQueue(queue, out var definition))
        {
            ChannelError(channel.Number, AmqpReplyCode.NotFound, NoQueueText(queue), method.ClassId, method.MethodId);
            return null;
        }
        if (LockedByOther(definition))
        {
            ChannelError(channel.Number, AmqpReplyCode.ResourceLocked, LockedText(queue), method.ClassId, method.MethodId);
            return null;
        }
        return queue;
    }

    private void OnQueuePurge(AmqpChannel channel, QueuePurge purge)
    {
        var queue = ResolveQueue(channel, purge.Queue, purge);
        if (queue is null)
        {
            return;
        }
        Await(channel, AskRetrying(_amqp.QueueRegion, new PurgeQueue(queue)), result =>
        {
            if (result is not QueuePurged purged)
            {
                ChannelError(channel.Number, AmqpReplyCode.InternalError, $"INTERNAL_ERROR - queue '{queue}' did not answer in time", 50, 30);
                return;
            }
            if (!purge.NoWait)
            {
                Send(channel.Number, new QueuePurgeOk(purged.MessageCount));
            }
        });
    }

    private void OnQueueDelete(AmqpChannel channel, QueueDelete delete)
    {
        var queue = delete.Queue.Length == 0 ? channel.LastQueue ?? "" : delete.Queue;
        if (_amqp.Topology.View.TryGetQueue(queue, out var definition) && LockedByOther(definition))
        {
            ChannelError(channel.Number, AmqpReplyCode.ResourceLocked, LockedText(queue), 50, 40);
            return;
        }
        AskTopology(channel, new DeleteQueue(queue, delete.IfUnused, delete.IfEmpty), delete, result =>
        {
            if (!delete.NoWait)
            {
                Send(channel.Number, new QueueDeleteOk(((QueueDeleted)result).MessageCount));
            }
        });
    }

    // ------------------------------------------------------------------ publish

    private static long NextMessageId()
    {
        long id;
        do
        {
            id = Random.Shared.NextInt64();
        }
        while (id == 0);
        return id;
    }

    private void OnPublish(AmqpChannel channel, AmqpInboundPublish publish)
    {
        BrokerCounters.Amqp.Received(0);
        var method = publish.Method;
        if (method.Immediate)
        {
            CloseConnection(AmqpReplyCode.NotImplemented, "NOT_IMPLEMENTED - immediate=true", 60, 40);
            return;
        }
        var view = _amqp.Topology.View;
        if (!view.TryGetExchange(method.Exchange, out var exchange))
        {
            ChannelError(channel.Number, AmqpReplyCode.NotFound, $"NOT_FOUND - no exchange '{method.Exchange}' in vhost '/'", 60, 40);
            return;
        }
        if (exchange.Internal)
        {
            ChannelError(channel.Number, AmqpReplyCode.AccessRefused, $"ACCESS_REFUSED - cannot publish to internal exchange '{method.Exchange}' in vhost '/'", 60, 40);
            return;
        }
        bool persistent;
        string? expiration;
        try
        {
            (persistent, expiration) = BasicPropertiesCodec.ReadDelivery(publish.Properties);
            // Headers travel as bytes and are read later (headers exchanges, MQTT): reading them once here holds them
            // to the connection's table depth where the client can be told, at the cost of parsing them twice.
            BasicPropertiesCodec.ReadHeaders(publish.Properties, _services.Settings.AmqpMaxTableDepth);
        }
        catch (AmqpFormatException ex)
        {
            CloseConnection(AmqpReplyCode.SyntaxError, $"SYNTAX_ERROR - malformed content header: {ex.Message}", 60, 40);
            return;
        }
        long? ttlMs = null;
        if (expiration is not null)
        {
            if (!long.TryParse(expiration, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var ttl))
            {
                ChannelError(channel.Number, AmqpReplyCode.PreconditionFailed, $"PRECONDITION_FAILED - invalid expiration '{expiration}'", 60, 40);
                return;
            }
            ttlMs = ttl;
        }
        // Each held publish keeps its body in this actor: past these bounds the channel closes (RabbitMQ's answer to a
        // client breaking a channel's rules) rather than the node holding whatever the client sends.
        var settings = _services.Settings;
        if (channel.Tx)
        {
            var held = channel.TxPublishes?.Count ?? 0;
            if (held >= settings.AmqpMaxTxPublishes || channel.TxBytes + publish.Body.Length > settings.AmqpMaxTxBytes)
            {
                ChannelError(channel.Number, AmqpReplyCode.PreconditionFailed,
                    $"PRECONDITION_FAILED - a transaction may hold at most {settings.AmqpMaxTxPublishes} publishes and {settings.AmqpMaxTxBytes} body bytes", 60, 40);
                return;
            }
            (channel.TxPublishes ??= []).Add((publish, persistent, ttlMs));
            channel.TxBytes += publish.Body.Length;
            return;
        }
        if (channel.Confirm && channel.Unconfirmed!.Count >= settings.AmqpMaxUnconfirmedPerChannel)
        {
            ChannelError(channel.Number, AmqpReplyCode.PreconditionFailed,
                $"PRECONDITION_FAILED - more than {settings.AmqpMaxUnconfirmedPerChannel} publishes waiting for confirmation on this channel", 60, 40);
            return;
        }
        Route(channel, publish, persistent, ttlMs, null);
    }

    private void Route(AmqpChannel channel, AmqpInboundPublish publish, bool persistent, long? ttlMs, PendingCommit? tx)
    {
        var method = publish.Method;
        var track = channel.Confirm || tx is not null;
        // A tracked publish keeps its set of queues still to confirm: it gets a set of its own.
        var queues = _routeSet;
        queues.Clear();
        _amqp.Topology.View.Route(method.Exchange, method.RoutingKey, publish.Properties, queues);
        // A TTL of up to 2^63 - 1 ms is valid text; past ~146 million years it is as good as none.
        var expiresAt = ttlMs is { } ttl ? UnixNowMs + Math.Min(ttl, long.MaxValue / 2) : 0;
        var message = new AmqpMessage(method.Exchange, method.RoutingKey, publish.Properties, publish.Body, persistent, expiresAt, NextMessageId());
        var seq = channel.Confirm ? ++channel.PublishSeq : 0;
        // Each target still to answer, with what was sent to it: queues and (QoS 1 and up) MQTT sessions.
        var outstanding = track ? new Dictionary<DeliveryTarget, object>() : null;
        // Without confirms nobody answers: the flow window keeps the targets for its probe and holds the inbound bytes.
        var flowTargets = track ? null : (_flow ??= new Hosting.PublishFlow(_transport.Inbound, _services.Router)).Targets;
        _holdInbound = !track;
        var mqttTargets = 0;
        if (method.Exchange == MqttBridge.Exchange && MqttBridge.ToMqtt(method.RoutingKey, publish.Properties, publish.Body, expiresAt, message.Id,
                _services.Settings.MaxTopicLength, _services.Settings.MaxTopicLevels) is { } forMqtt)
        {
            var waitForMqtt = track && forMqtt.Qos > 0;
            var routed = _services.Router.Route(forMqtt, _collector ??= new RouteCollector(), waitForMqtt ? message.Id : 0, Self, waitForMqtt ? outstanding : null, toAmqp: false,
                targets: flowTargets);
            mqttTargets = routed.Sessions;
        }
        if (queues.Count == 0 && mqttTargets == 0)
        {
            if (method.Mandatory)
            {
                SendContent(channel.Number, new BasicReturn(AmqpReplyCode.NoRoute, "NO_ROUTE", method.Exchange, method.RoutingKey), publish.Properties, publish.Body);
            }
            if (channel.Confirm)
            {
                SendConfirms(channel);
            }
            return;
        }
        var enqueue = new Enqueue("", message, track);
        foreach (var queue in queues)
        {
            var sent = enqueue with { Queue = queue };
            _amqp.QueueRegion.Tell(sent, Self);
            outstanding?.Add(DeliveryTarget.Queue(queue), sent);
            flowTargets?.Add(DeliveryTarget.Queue(queue));
        }
        if (outstanding is { Count: > 0 })
        {
            _pending.Track(message.Id, new PendingPublish(channel, seq, tx), outstanding, Environment.TickCount64);
            if (seq > 0)
            {
                channel.Unconfirmed!.Add(seq);
            }
            if (tx is not null)
            {
                tx.Outstanding++;
            }
            EnsureRetryTick();
        }
        else if (channel.Confirm)
        {
            SendConfirms(channel);
        }
    }

    /// <summary>Acknowledges, in one basic.ack with <c>multiple</c> where it can, every publish up to the oldest one still outstanding.</summary>
    private void SendConfirms(AmqpChannel channel)
    {
        var upTo = channel.ConfirmableUpTo;
        if (upTo > channel.ConfirmedUpTo)
        {
            Send(channel.Number, new BasicAck(upTo, upTo - channel.ConfirmedUpTo > 1));
            BrokerCounters.AmqpConfirms.Add((long)(upTo - channel.ConfirmedUpTo));
            channel.ConfirmedUpTo = upTo;
        }
    }

    /// <param name="rejected">the queue refused the message (full, with x-overflow reject-publish): the publish is nacked.</param>
    private void OnEnqueued(long messageId, string queue, bool rejected = false) =>
        OnTargetAnswered(messageId, DeliveryTarget.Queue(queue), rejected);

    private void OnTargetAnswered(long messageId, DeliveryTarget target, bool refused = false)
    {
        if (_pending.Answer(messageId, target, out var done, refused))
        {
            Complete(done.Origin, ack: !done.Refused);
        }
    }

    private void Complete(PendingPublish pending, bool ack)
    {
        var channel = pending.Channel;
        if (!_channels.TryGetValue(channel.Number, out var current) || current != channel || channel.Closing)
        {
            return;
        }
        if (pending.Seq > 0)
        {
            if (!ack)
            {
                Send(channel.Number, new BasicNack(pending.Seq, false, false));
                BrokerCounters.AmqpNacks.Increment();
            }
            channel.Unconfirmed!.Remove(pending.Seq);
            SendConfirms(channel);
        }
        if (pending.Tx is { } tx && --tx.Outstanding == 0 && tx.Routed)
        {
            FinishCommit(tx);
        }
    }

    private void EnsureRetryTick()
    {
        _retryTick ??= Context.System.Scheduler.ScheduleTellRepeatedlyCancelable(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), Self, RetryTick.Instance, Self);
    }

    private void OnRetryTick()
    {
        var now = Environment.TickCount64;
        if (_pending.Retry(now, Resend) is { } givenUp)
        {
            foreach (var entry in givenUp)
            {
                BrokerCounters.PublishesGivenUp.Increment();
                _log.Warning("AMQP publish on channel {0} (confirm {1}) given up after {2} sends, unanswered by {3}: nacked",
                    entry.Origin.Channel.Number, entry.Origin.Seq, entry.Attempts, string.Join(", ", entry.Outstanding.Keys));
                Complete(entry.Origin, ack: false);
            }
        }
        foreach (var channel in _channels.Values)
        {
            foreach (var consumer in channel.Consumers.Values)
            {
                if (!consumer.Registered && now - consumer.SentAt >= FirstRetryMs)
                {
                    SendConsume(channel, consumer);
                }
            }
        }
        if (_creditHeld)
        {
            ReturnHeldCredit();
        }
        ExpireFlowProbes(now);
        if (_pending.Count == 0 && !_creditHeld && !AnyUnregisteredConsumer() && _flow is not { HasOutstanding: true })
        {
            _retryTick?.Cancel();
            _retryTick = null;
        }
    }

    /// <summary>Sends again what one target of a publish has not answered: a queue's enqueue, or an MQTT delivery.</summary>
    private void Resend(object sent)
    {
        if (sent is Enqueue enqueue)
        {
            _amqp.QueueRegion.Tell(enqueue, Self);
        }
        else
        {
            _services.Router.Resend(sent, Self);
        }
    }

    /// <summary>
    /// A member left the cluster: sharding now places its queue entities on the survivors, so what was sent to them
    /// (publishes, consumer registrations) goes again now rather than at its next backed-off retry.
    /// </summary>
    private void OnMemberRemoved()
    {
        _pending.ResendAll(Resend);
        foreach (var channel in _channels.Values)
        {
            foreach (var consumer in channel.Consumers.Values)
            {
                if (!consumer.Registered)
                {
                    SendConsume(channel, consumer);
                }
            }
        }
    }

    private bool AnyUnregisteredConsumer()
    {
        foreach (var channel in _channels.Values)
        {
            foreach (var consumer in channel.Consumers.Values)
            {
                if (!consumer.Registered)
                {
                    return true;
                }
            }
        }
        return false;
    }

    // ------------------------------------------------------------------ transactions

    private void OnCommit(AmqpChannel channel)
    {
        if (!channel.Tx)
        {
            ChannelError(channel.Number, AmqpReplyCode.PreconditionFailed, "PRECONDITION_FAILED - channel is not transactional", 90, 20);
            return;
        }
        var publishes = channel.TxPublishes;
        var settles = channel.TxSettles;
        channel.TxPublishes = null;
        channel.TxBytes = 0;
        channel.TxSettles = null;
        if (settles is not null)
        {
            foreach (var (kind, tag, multiple) in settles)
            {
                ApplySettle(channel, tag, multiple, kind);
            }
        }
        var tx = new PendingCommit(channel);
        if (publishes is not null)
        {
            foreach (var (publish, persistent, ttlMs) in publishes)
            {
                Route(channel, publish, persistent, ttlMs, tx);
            }
        }
        tx.Routed = true;
        if (tx.Outstanding == 0)
        {
            Send(channel.Number, TxCommitOk.Instance);
            return;
        }
        channel.Busy = true;
    }

    private void FinishCommit(PendingCommit tx)
    {
        var channel = tx.Channel;
        Send(channel.Number, TxCommitOk.Instance);
        channel.Busy = false;
        Drain(channel);
    }

    // ------------------------------------------------------------------ consume and deliver

    private void OnQos(AmqpChannel channel, BasicQos qos)
    {
        if (qos.PrefetchSize != 0)
        {
            CloseConnection(AmqpReplyCode.NotImplemented, $"NOT_IMPLEMENTED - prefetch_size!=0 ({qos.PrefetchSize})", 60, 10);
            return;
        }
        if (qos.Global)
        {
            channel.GlobalPrefetch = qos.PrefetchCount;
            WriteHeld(channel);
        }
        else
        {
            channel.ConsumerPrefetch = qos.PrefetchCount;
        }
        Send(channel.Number, BasicQosOk.Instance);
    }

    private void OnConsume(AmqpChannel channel, BasicConsume consume)
    {
        var queue = ResolveQueue(channel, consume.Queue, consume);
        if (queue is null)
        {
            return;
        }
        var tag = consume.ConsumerTag.Length == 0 ? NewName("amq.ctag-") : consume.ConsumerTag;
        if (channel.Consumers.ContainsKey(tag))
        {
            CloseConnection(AmqpReplyCode.NotAllowed, $"NOT_ALLOWED - attempt to reuse consumer tag '{tag}'", 60, 20);
            return;
        }
        // The queue sends a consumer no more than it could take: its own prefetch, and never more than the channel-wide one.
        var prefetch = consume.NoAck ? (ushort)0 : MinLimit(channel.ConsumerPrefetch, channel.GlobalPrefetch);
        var consumer = new AmqpChannel.Consumer(tag, queue, consume.NoAck, prefetch, consume.Exclusive);
        channel.Consumers[tag] = consumer;
        channel.Queues.Add(queue);
        SendConsume(channel, consumer);
        EnsureRetryTick();
        if (!consume.NoWait)
        {
            // consume-ok comes from the queue; the channel waits for it so its next method sees the consumer.
            channel.Busy = true;
            channel.AwaitingConsume = tag;
        }
    }

    private void SendConsume(AmqpChannel channel, AmqpChannel.Consumer consumer)
    {
        consumer.SentAt = Environment.TickCount64;
        _amqp.QueueRegion.Tell(new Consume(consumer.Queue, RefOf(channel), consumer.Tag, consumer.NoAck, consumer.Prefetch, consumer.Exclusive, _connectionId), Self);
    }

    private void OnConsumeOk(ConsumeOk ok, IActorRef queueEntity)
    {
        if (!_channels.TryGetValue(ok.Channel, out var channel) || channel.Closing || !channel.Consumers.TryGetValue(ok.ConsumerTag, out var consumer) || consumer.Registered)
        {
            return;
        }
        consumer.Registered = true;
        if (!_queueEntities.TryGetValue(ok.Queue, out var known) || !known.Equals(queueEntity))
        {
            _queueEntities[ok.Queue] = queueEntity;
            Context.Watch(queueEntity);
        }
        if (channel.AwaitingConsume == ok.ConsumerTag)
        {
            channel.AwaitingConsume = null;
            channel.Busy = false;
            Send(channel.Number, new BasicConsumeOk(ok.ConsumerTag));
            Drain(channel);
        }
    }

    private void OnConsumeRefused(ConsumeRefused refused)
    {
        if (!_channels.TryGetValue(refused.Channel, out var channel) || channel.Closing || !channel.Consumers.Remove(refused.ConsumerTag))
        {
            return;
        }
        if (channel.AwaitingConsume == refused.ConsumerTag)
        {
            channel.AwaitingConsume = null;
            channel.Busy = false;
        }
        ChannelError(channel.Number, refused.ReplyCode, WithCodeName(refused.ReplyCode, refused.ReplyText), 60, 20);
    }

    /// <summary>RabbitMQ's reply texts start with the code's name; the queue entity leaves it to the channel.</summary>
    private static string WithCodeName(ushort code, string text)
    {
        var name = code switch
        {
            AmqpReplyCode.NotFound => "NOT_FOUND",
            AmqpReplyCode.AccessRefused => "ACCESS_REFUSED",
            AmqpReplyCode.ResourceLocked => "RESOURCE_LOCKED",
            AmqpReplyCode.PreconditionFailed => "PRECONDITION_FAILED",
            _ => null,
        };
        return name is null || text.StartsWith(name, StringComparison.Ordinal) ? text : $"{name} - {text}";
    }

    /// <summary>The queue stopped with this consumer registered (hand-off, node leaving): register with its next incarnation.</summary>
    private void OnConsumerMoved(ConsumerMoved moved, IActorRef entity)
    {
        ForgetDeliveriesOf(entity);
        if (_channels.TryGetValue(moved.Channel, out var channel) && !channel.Closing && channel.Consumers.TryGetValue(moved.ConsumerTag, out var consumer))
        {
            consumer.Registered = false;
            SendConsume(channel, consumer);
            EnsureRetryTick();
        }
    }

    /// <summary>A queue entity stopped (its node died or its shard moved): its consumers register again with the new incarnation.</summary>
    private void OnQueueTerminated(IActorRef entity)
    {
        ForgetDeliveriesOf(entity);
        string? queue = null;
        foreach (var (name, actor) in _queueEntities)
        {
            if (actor.Equals(entity))
            {
                queue = name;
                break;
            }
        }
        if (queue is null)
        {
            return;
        }
        _queueEntities.Remove(queue);
        foreach (var channel in _channels.Values)
        {
            foreach (var consumer in channel.Consumers.Values)
            {
                if (consumer.Queue == queue && consumer.Registered)
                {
                    consumer.Registered = false;
                    SendConsume(channel, consumer);
                }
            }
        }
        EnsureRetryTick();
    }

    /// <summary>
    /// A queue entity stopped: what it delivered and is still unacknowledged becomes stale (settled here only; the
    /// queue's next incarnation gives again what it kept, and may use the same sequences for other messages), and what
    /// it sent that waits unwritten is dropped.
    /// </summary>
    private void ForgetDeliveriesOf(IActorRef entity)
    {
        foreach (var channel in _channels.Values)
        {
            List<ulong>? stale = null;
            foreach (var (tag, delivery) in channel.Unacked)
            {
                if (!delivery.Stale && entity.Equals(delivery.Entity))
                {
                    (stale ??= []).Add(tag);
                }
            }
            if (stale is not null)
            {
                foreach (var tag in stale)
                {
                    channel.Unacked[tag] = channel.Unacked[tag] with { Stale = true };
                }
            }
            if (channel.Held is { Count: > 0 } held)
            {
                channel.Held = new Queue<(QueueDelivery, IActorRef)>(held.Where(h => !h.Entity.Equals(entity)));
            }
        }
    }

    private void OnCancel(AmqpChannel channel, BasicCancel cancel)
    {
        if (channel.Consumers.Remove(cancel.ConsumerTag, out var consumer))
        {
            _amqp.QueueRegion.Tell(new CancelConsumer(consumer.Queue, RefOf(channel), consumer.Tag), Self);
        }
        if (!cancel.NoWait)
        {
            Send(channel.Number, new BasicCancelOk(cancel.ConsumerTag));
        }
    }

    private void OnConsumerCancelled(ConsumerCancelled cancelled)
    {
        if (!_channels.TryGetValue(cancelled.Channel, out var channel) || channel.Closing || !channel.Consumers.Remove(cancelled.ConsumerTag))
        {
            return;
        }
        if (_cancelNotify)
        {
            Send(channel.Number, new BasicCancel(cancelled.ConsumerTag, true));
        }
    }

    private void OnGet(AmqpChannel channel, BasicGet get)
    {
        var queue = ResolveQueue(channel, get.Queue, get);
        if (queue is null)
        {
            return;
        }
        channel.Queues.Add(queue);
        Await(channel, AskRetrying(_amqp.QueueRegion, new GetMessage(queue, RefOf(channel), get.NoAck), attempts: 1), result =>
        {
            switch (result)
            {
                case QueueDelivery d:
                    var tag = ++channel.DeliveryTag;
                    if (!get.NoAck)
                    {
                        channel.Unacked[tag] = new AmqpChannel.Delivery(d.Queue, d.Sequence, null, d.Entity);
                        if (d.Entity is not null)
                        {
                            // Its Terminated marks this delivery stale (ForgetDeliveriesOf), as for a consumer's.
                            Context.Watch(d.Entity);
                        }
                    }
                    SendContent(channel.Number, new BasicGetOk(tag, d.Redelivered, d.Message.Exchange, d.Message.RoutingKey, d.MessageCount), d.Message.Properties, d.Message.Body);
                    BrokerCounters.Amqp.Sent(0);
                    return;
                case GetEmpty:
                    Send(channel.Number, BasicGetEmpty.Instance);
                    return;
                default:
                    ChannelError(channel.Number, AmqpReplyCode.InternalError, $"INTERNAL_ERROR - queue '{queue}' did not answer in time", 60, 70);
                    return;
            }
        });
    }

    /// <summary>The tighter of two prefetch counts, where 0 means no limit.</summary>
    private static ushort MinLimit(ushort a, ushort b) => a == 0 ? b : b == 0 ? a : Math.Min(a, b);

    private void OnDelivery(QueueDelivery delivery, IActorRef entity)
    {
        if (!_channels.TryGetValue(delivery.Channel, out var channel) || channel.Closing ||
            delivery.ConsumerTag is null || !channel.Consumers.TryGetValue(delivery.ConsumerTag, out var consumer))
        {
            // For a channel or consumer that is gone: straight back to the queue.
            if (delivery.ConsumerTag is not null)
            {
                _amqp.QueueRegion.Tell(new SettleMessages(delivery.Queue, new ChannelRef(Self, delivery.Channel), [delivery.Sequence], Settlement.Requeue));
            }
            return;
        }
        if (!channel.FlowActive || !consumer.NoAck && channel.GlobalPrefetch > 0 && channel.Unacked.Count >= channel.GlobalPrefetch || channel.Held is { Count: > 0 })
        {
            (channel.Held ??= new Queue<(QueueDelivery, IActorRef)>()).Enqueue((delivery, entity));
            return;
        }
        WriteDelivery(channel, consumer, delivery, entity);
    }

    private void WriteDelivery(AmqpChannel channel, AmqpChannel.Consumer consumer, QueueDelivery delivery, IActorRef entity)
    {
        var tag = ++channel.DeliveryTag;
        if (!consumer.NoAck)
        {
            channel.Unacked[tag] = new AmqpChannel.Delivery(delivery.Queue, delivery.Sequence, consumer.Tag, entity);
        }
        var message = delivery.Message;
        SendContent(channel.Number, new BasicDeliver(consumer.Tag, tag, delivery.Redelivered, message.Exchange, message.RoutingKey), message.Properties, message.Body);
        BrokerCounters.Amqp.Sent(0);
        if (consumer.Windowed && ++consumer.Unreported >= CreditBatch)
        {
            if (_transport.PendingBytes > MaxPendingBytes)
            {
                // The client is not reading: keep the credit until its socket drains.
                _creditHeld = true;
                EnsureRetryTick();
                return;
            }
            _amqp.QueueRegion.Tell(new ConsumerCredit(consumer.Queue, RefOf(channel), consumer.Tag, consumer.Unreported));
            consumer.Unreported = 0;
        }
    }

    private void ReturnHeldCredit()
    {
        if (_transport.PendingBytes > MaxPendingBytes)
        {
            return;
        }
        _creditHeld = false;
        foreach (var channel in _channels.Values)
        {
            foreach (var consumer in channel.Consumers.Values)
            {
                if (consumer.Windowed && consumer.Unreported >= CreditBatch)
                {
                    _amqp.QueueRegion.Tell(new ConsumerCredit(consumer.Queue, RefOf(channel), consumer.Tag, consumer.Unreported));
                    consumer.Unreported = 0;
                }
            }
        }
    }

    /// <summary>Writes deliveries held back by flow or the channel-wide prefetch while there is room again.</summary>
    private void WriteHeld(AmqpChannel channel)
    {
        while (channel.FlowActive && channel.Held is { Count: > 0 } held)
        {
            var (next, entity) = held.Peek();
            if (next.ConsumerTag is null || !channel.Consumers.TryGetValue(next.ConsumerTag, out var consumer))
            {
                held.Dequeue();
                _amqp.QueueRegion.Tell(new SettleMessages(next.Queue, RefOf(channel), [next.Sequence], Settlement.Requeue));
                continue;
            }
            if (!consumer.NoAck && channel.GlobalPrefetch > 0 && channel.Unacked.Count >= channel.GlobalPrefetch)
            {
                return;
            }
            held.Dequeue();
            WriteDelivery(channel, consumer, next, entity);
        }
    }

    // ------------------------------------------------------------------ acknowledgements

    private void Settle(AmqpChannel channel, ulong tag, bool multiple, Settlement kind, AmqpMethod method)
    {
        if (tag != 0 || !multiple)
        {
            if (!channel.Unacked.ContainsKey(tag))
            {
                ChannelError(channel.Number, AmqpReplyCode.PreconditionFailed, $"PRECONDITION_FAILED - unknown delivery tag {tag}", method.ClassId, method.MethodId);
                return;
            }
        }
        if (channel.Tx)
        {
            (channel.TxSettles ??= []).Add((kind, tag, multiple));
            return;
        }
        ApplySettle(channel, tag, multiple, kind);
    }

    private void ApplySettle(AmqpChannel channel, ulong tag, bool multiple, Settlement kind)
    {
        if (!multiple)
        {
            if (channel.Unacked.Remove(tag, out var one) && !one.Stale)
            {
                _amqp.QueueRegion.Tell(new SettleMessages(one.Queue, RefOf(channel), [one.Sequence], kind));
            }
        }
        else
        {
            Dictionary<string, List<long>>? byQueue = null;
            List<ulong>? tags = null;
            foreach (var (t, unacked) in channel.Unacked)
            {
                if (tag != 0 && t > tag)
                {
                    break;
                }
                (tags ??= []).Add(t);
                if (unacked.Stale)
                {
                    continue;
                }
                byQueue ??= new Dictionary<string, List<long>>(StringComparer.Ordinal);
                if (!byQueue.TryGetValue(unacked.Queue, out var seqs))
                {
                    byQueue[unacked.Queue] = seqs = [];
                }
                seqs.Add(unacked.Sequence);
            }
            if (tags is not null)
            {
                foreach (var t in tags)
                {
                    channel.Unacked.Remove(t);
                }
            }
            if (byQueue is not null)
            {
                foreach (var (queue, seqs) in byQueue)
                {
                    _amqp.QueueRegion.Tell(new SettleMessages(queue, RefOf(channel), seqs.ToArray(), kind));
                }
            }
        }
        WriteHeld(channel);
    }

    private void RequeueAll(AmqpChannel channel)
    {
        if (channel.Unacked.Count > 0)
        {
            ApplySettle(channel, 0, true, Settlement.Requeue);
        }
    }
}
