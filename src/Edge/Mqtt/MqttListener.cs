using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Broker.Actors;

namespace Broker.Edge.Mqtt;

/// <summary>Accepts MQTT connections and gives each a transport and a connection actor.</summary>
internal sealed class MqttListener : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly ActorSystem _system;
    private readonly BrokerServices _services;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<IActorRef, (Task Run, MqttTransport Transport)> _connections = new();
    private readonly Task _acceptLoop;
    private readonly Task _sweepLoop;

    private MqttListener(Socket socket, ActorSystem system, BrokerServices services)
    {
        _socket = socket;
        _system = system;
        _services = services;
        Endpoint = (IPEndPoint)socket.LocalEndPoint!;
        _acceptLoop = Task.Run(AcceptLoopAsync);
        _sweepLoop = Task.Run(SweepLoopAsync);
    }

    public IPEndPoint Endpoint { get; }

    public static MqttListener Start(string host, int port, ActorSystem system, BrokerServices services)
    {
        var address = IPAddress.TryParse(host, out var ip) ? ip : IPAddress.Any;
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        socket.Bind(new IPEndPoint(address, port));
        socket.Listen(4096);
        return new MqttListener(socket, system, services);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested)
                {
                    return;
                }
                continue;
            }
            client.NoDelay = true;
            var transport = new MqttTransport(client)
            {
                DeadlineMs = Environment.TickCount64 + (long)_services.Settings.ConnectTimeout.TotalMilliseconds,
            };
            var actor = _system.ActorOf(MqttConnectionActor.Props(transport, _services));
            // Connections are not cancelled with the listener: on shutdown each one says goodbye (DISCONNECT 0x8B) and closes.
            var run = transport.RunAsync(actor, _services.Settings.MaxPacketSize, CancellationToken.None);
            _connections[actor] = (run, transport);
            _ = run.ContinueWith(t => _connections.TryRemove(actor, out _), TaskScheduler.Default);
        }
    }

    /// <summary>Every half second: tells each connection whose deadline passed (connect timeout, keep alive).</summary>
    private async Task SweepLoopAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                var now = Environment.TickCount64;
                foreach (var (actor, connection) in _connections)
                {
                    if (connection.Transport.TakeOverdue(now))
                    {
                        actor.Tell(DeadlinePassed.Instance);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The listener is stopping.
        }
    }

    /// <summary>Tells every open connection <paramref name="message"/>.</summary>
    public void Broadcast(object message)
    {
        foreach (var actor in _connections.Keys)
        {
            actor.Tell(message);
        }
    }

    /// <summary>Stops accepting, tells every connection the server is going away, and waits for them to close.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _socket.Close();
        await _acceptLoop.ConfigureAwait(false);
        foreach (var actor in _connections.Keys)
        {
            actor.Tell(ServerShutdown.Instance);
        }
        await _sweepLoop.ConfigureAwait(false);
        await Task.WhenAny(Task.WhenAll(_connections.Values.Select(c => c.Run)), Task.Delay(timeout)).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await StopAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        _stop.Dispose();
    }
}
