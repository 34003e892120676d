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
    private readonly ConcurrentDictionary<IActorRef, Task> _connections = new();
    private readonly Task _acceptLoop;

    private MqttListener(Socket socket, ActorSystem system, BrokerServices services)
    {
        _socket = socket;
        _system = system;
        _services = services;
        Endpoint = (IPEndPoint)socket.LocalEndPoint!;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public IPEndPoint Endpoint { get; }

    public int ConnectionCount => _connections.Count;

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
            var transport = new MqttTransport(client);
            var actor = _system.ActorOf(MqttConnectionActor.Props(transport, _services));
            // Connections are not cancelled with the listener: on shutdown each one says goodbye (DISCONNECT 0x8B) and closes.
            var run = transport.RunAsync(actor, _services.Settings.MaxPacketSize, CancellationToken.None);
            _connections[actor] = run;
            _ = run.ContinueWith(_ => _connections.TryRemove(actor, out Task? _), TaskScheduler.Default);
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
        await Task.WhenAny(Task.WhenAll(_connections.Values), Task.Delay(timeout)).ConfigureAwait(false);
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
