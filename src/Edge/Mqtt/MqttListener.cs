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
        : base(host, port, TimeSpan.FromMilliseconds(500), access.Admission, system.Log)
    {
        _tls = tls;
        _alarm = alarm;
        _access = access;
        _system = system;
        _services = services;
    }

    private MqttListener(ActorSystem system, BrokerServices services, MemoryAlarm alarm, Security.ClientAccess access)
        : base(TimeSpan.FromMilliseconds(500), access.Admission, system.Log)
    {
        _alarm = alarm;
        _access = access;
        _system = system;
        _services = services;
    }

    /// <summary>The listener of MQTT over WebSocket: no socket of its own, <see cref="WebSocketHost"/> hands it each connection.</summary>
    public static MqttListener ForWebSockets(ActorSystem system, BrokerServices services, MemoryAlarm alarm, Security.ClientAccess access)
    {
        var listener = new MqttListener(system, services, alarm, access);
        listener.Run();
        return listener;
    }

    /// <param name="tls">null: plain TCP; else every connection starts with a TLS handshake.</param>
    public static MqttListener Start(string host, int port, ActorSystem system, BrokerServices services, MemoryAlarm alarm, Security.ClientAccess access,
        Security.ServerTls? tls = null)
    {
        var listener = new MqttListener(host, port, system, services, alarm, access, tls);
        listener.Run();
        return listener;
    }

    protected override bool AnswersRefusals => _tls is null;

    /// <summary>
    /// A CONNACK refusing a connection turned away at accept, in the version its CONNECT asks for: MQTT 5 0x97 Quota
    /// exceeded (node or listener full) or 0x9F Connection rate exceeded (connect rate, failed logins); 3.x: 3 Server
    /// unavailable. The CONNECT's first bytes: 0x10, remaining length (1-4 bytes), protocol name (2-byte length +
    /// "MQTT" or "MQIsdp"), protocol level.
    /// </summary>
    protected override byte[]? RefusalReply(ReadOnlySpan<byte> first, Refusal refusal)
    {
        if (first.Length == 0)
        {
            return null;
        }
        if (first[0] != 0x10)
        {
            return [];
        }
        var at = 1;
        while (at < first.Length && (first[at] & 0x80) != 0 && at < 4)
        {
            at++;
        }
        var levelAt = at + 3 + (at + 2 < first.Length ? (first[at + 1] << 8) | first[at + 2] : 0);
        if (at + 2 >= first.Length || levelAt >= first.Length)
        {
            return levelAt >= 16 ? [] : null;
        }
        return first[levelAt] == 5
            ? [0x20, 0x03, 0x00, refusal is Refusal.NodeFull or Refusal.ListenerFull ? (byte)0x97 : (byte)0x9F, 0x00]
            : [0x20, 0x02, 0x00, 0x03];
    }

    /// <summary>MQTT 5 clients get DISCONNECT 0x8B.</summary>
    protected override object ShutdownMessage => ServerShutdown.Instance;

    protected override Broker.Actors.Messages.ProtocolCounters Counters => Broker.Actors.Messages.BrokerCounters.Mqtt;

    protected override ClientLink CreateLink(Socket client) => _tls is null ? new SocketLink(client) : new TlsLink(client, _tls);

    protected override (IActorRef Actor, MqttTransport Transport) Open(ClientLink link)
    {
        var transport = new MqttTransport(link, _services.Settings.InboundHighWaterMark)
        {
            Limiter = PublishLimiter.For(_access.Admission.Limits),
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
