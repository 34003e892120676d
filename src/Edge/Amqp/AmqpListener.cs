using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Broker.Actors;
using Broker.Edge.Mqtt;

namespace Broker.Edge.Amqp;

/// <summary>Accepts AMQP 0.9.1 connections and gives each a transport and a connection actor.</summary>
internal sealed class AmqpListener : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly ActorSystem _system;
    private readonly BrokerServices _services;
    private readonly AmqpServices _amqp;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<IActorRef, (Task Run, AmqpTransport Transport)> _connections = new();
    private readonly Task _acceptLoop;
    private readonly Task _sweepLoop;

    private AmqpListener(Socket socket, ActorSystem system, BrokerServices services, AmqpServices amqp)
    {
        _amqp = amqp;
        _socket = socket;
        _system = system;
        _services = services;
        Endpoint = (IPEndPoint)socket.LocalEndPoint!;
        _acceptLoop = Task.Run(AcceptLoopAsync);
        _sweepLoop = Task.Run(SweepLoopAsync);
    }

    public IPEndPoint Endpoint { get; }

    public static AmqpListener Start(string host, int port, ActorSystem system, BrokerServices services, AmqpServices amqp)
    {
        var address = IPAddress.TryParse(host, out var ip) ? ip : IPAddress.Any;
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        socket.Bind(new IPEndPoint(address, port));
        socket.Listen(4096);
        return new AmqpListener(socket, system, services, amqp);
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
            var transport = new AmqpTransport(client)
            {
                // The handshake must finish within the connect timeout; tune-ok replaces it with the heartbeat deadline.
                DeadlineMs = Environment.TickCount64 + (long)_services.Settings.ConnectTimeout.TotalMilliseconds,
                MaxMessageSize = _services.Settings.AmqpMaxMessageSize,
            };
            var actor = _system.ActorOf(AmqpConnectionActor.Props(transport, _services, _amqp));
            // Connections are not cancelled with the listener: on shutdown each one gets connection.close 320 and closes.
            var run = transport.RunAsync(actor, CancellationToken.None);
            _connections[actor] = (run, transport);
            _ = run.ContinueWith(t => _connections.TryRemove(actor, out _), TaskScheduler.Default);
        }
    }

    /// <summary>Every quarter second: tells each connection whose deadline passed (handshake, missed heartbeats) or that owes the client a heartbeat.</summary>
    private async Task SweepLoopAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                var now = Environment.TickCount64;
                foreach (var (actor, connection) in _connections)
                {
                    if (connection.Transport.TakeOverdue(now))
                    {
                        actor.Tell(AmqpDeadlinePassed.Instance);
                    }
                    else if (connection.Transport.HeartbeatDue(now))
                    {
                        actor.Tell(AmqpHeartbeatDue.Instance);
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
