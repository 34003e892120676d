using System.Net.Sockets;
using Akka.Actor;
using Broker.Actors;
using Broker.Edge.Hosting;
using Broker.Edge.Mqtt;

namespace Broker.Edge.Amqp;

/// <summary>Accepts AMQP 0.9.1 connections and gives each a transport and a connection actor.</summary>
internal sealed class AmqpListener : SocketListener<AmqpTransport>
{
    private readonly ActorSystem _system;
    private readonly BrokerServices _services;
    private readonly AmqpServices _amqp;

    /// <remarks>Sweeps every quarter second, so heartbeats of one second go out on time.</remarks>
    private readonly MemoryAlarm _alarm;
    private readonly Security.ServerTls? _tls;

    private AmqpListener(string host, int port, ActorSystem system, BrokerServices services, AmqpServices amqp, MemoryAlarm alarm, Security.ServerTls? tls)
        : base(host, port, TimeSpan.FromMilliseconds(250), amqp.Admission, system.Log)
    {
        _tls = tls;
        _alarm = alarm;
        _system = system;
        _services = services;
        _amqp = amqp;
    }

    /// <param name="tls">null: plain TCP; else every connection starts with a TLS handshake.</param>
    public static AmqpListener Start(string host, int port, ActorSystem system, BrokerServices services, AmqpServices amqp, MemoryAlarm alarm,
        Security.ServerTls? tls = null)
    {
        var listener = new AmqpListener(host, port, system, services, amqp, alarm, tls);
        listener.Run();
        return listener;
    }

    protected override object ShutdownMessage => ServerShutdown.Instance;

    protected override Broker.Actors.Messages.ProtocolCounters Counters => Broker.Actors.Messages.BrokerCounters.Amqp;

    protected override ClientLink CreateLink(Socket client) => _tls is null ? new SocketLink(client) : new TlsLink(client, _tls);

    protected override (IActorRef Actor, AmqpTransport Transport) Open(ClientLink link)
    {
        var transport = new AmqpTransport(link, _services.Settings.InboundHighWaterMark)
        {
            Limiter = PublishLimiter.For(_amqp.Admission.Limits),
            Alarm = _alarm,
            // The handshake must finish within the connect timeout; tune-ok replaces it with the heartbeat deadline.
            DeadlineMs = Environment.TickCount64 + (long)_services.Settings.ConnectTimeout.TotalMilliseconds,
            MaxMessageSize = _services.Settings.AmqpMaxMessageSize,
            MaxPendingContentBytes = _services.Settings.AmqpMaxPendingContentBytes,
            MaxTableDepth = _services.Settings.AmqpMaxTableDepth,
        };
        var actor = _system.ActorOf(AmqpConnectionActor.Props(transport, _services, _amqp));
        return (actor, transport);
    }

    protected override Task Start(IActorRef actor, AmqpTransport transport, Action<IActorRef> ended) =>
        transport.RunAsync(actor, ended, CancellationToken.None);

    /// <summary>Tells a connection whose deadline passed (handshake, missed heartbeats), or that owes the client a heartbeat.</summary>
    protected override void Sweep(long nowMs, IActorRef actor, AmqpTransport transport)
    {
        if (transport.TakeOverdue(nowMs))
        {
            actor.Tell(AmqpDeadlinePassed.Instance);
        }
        else if (transport.HeartbeatDue(nowMs))
        {
            actor.Tell(AmqpHeartbeatDue.Instance);
        }
    }
}
