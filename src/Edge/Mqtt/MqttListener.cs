using System.Net.Sockets;
using Akka.Actor;
using Broker.Actors;
using Broker.Edge.Hosting;

namespace Broker.Edge.Mqtt;

/// <summary>Accepts MQTT connections and gives each a transport and a connection actor.</summary>
internal sealed class MqttListener : SocketListener<MqttTransport>
{
    private readonly ActorSystem _system;
    private readonly BrokerServices _services;

    private readonly MemoryAlarm _alarm;
    private readonly Security.ClientAccess _access;
    private readonly Security.ServerTls? _tls;

    private MqttListener(string host, int port, ActorSystem system, BrokerServices services, MemoryAlarm alarm, Security.ClientAccess access, Security.ServerTls? tls)
        : base(host, port, TimeSpan.FromMilliseconds(500))
    {
        _tls = tls;
        _alarm = alarm;
        _access = access;
        _system = system;
        _services = services;
    }

    /// <param name="tls">null: plain TCP; else every connection starts with a TLS handshake.</param>
    public static MqttListener Start(string host, int port, ActorSystem system, BrokerServices services, MemoryAlarm alarm, Security.ClientAccess access,
        Security.ServerTls? tls = null)
    {
        var listener = new MqttListener(host, port, system, services, alarm, access, tls);
        listener.Run();
        return listener;
    }

    /// <summary>MQTT 5 clients get DISCONNECT 0x8B.</summary>
    protected override object ShutdownMessage => ServerShutdown.Instance;

    protected override (IActorRef Actor, MqttTransport Transport) Open(Socket client)
    {
        ClientLink link = _tls is null ? new SocketLink(client) : new TlsLink(client, _tls);
        var transport = new MqttTransport(link, _services.Settings.InboundHighWaterMark)
        {
            Alarm = _alarm,
            DeadlineMs = Environment.TickCount64 + (long)_services.Settings.ConnectTimeout.TotalMilliseconds,
        };
        var actor = _system.ActorOf(MqttConnectionActor.Props(transport, _services, _access));
        return (actor, transport);
    }

    protected override Task Start(IActorRef actor, MqttTransport transport, Action<IActorRef> ended) =>
        transport.RunAsync(actor, _services.Settings.MaxPacketSize, ended, CancellationToken.None);

    /// <summary>Tells a connection whose deadline passed (connect timeout, keep alive).</summary>
    protected override void Sweep(long nowMs, IActorRef actor, MqttTransport transport)
    {
        if (transport.TakeOverdue(nowMs))
        {
            actor.Tell(DeadlinePassed.Instance);
        }
    }
}
