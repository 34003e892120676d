using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;

namespace Broker.Edge.Hosting;

/// <summary>
/// A TCP listener that gives each accepted socket a transport and a connection actor (the protocol's
/// subclass makes both), checks every open connection's deadlines on a timer, and on stop tells every
/// connection the server is going away and waits for them to close.
/// </summary>
internal abstract class SocketListener<TTransport> : IAsyncDisposable
    where TTransport : class
{
    private readonly Socket _socket;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<IActorRef, (Task Run, TTransport Transport)> _connections = new();
    private readonly TimeSpan _sweepInterval;
    private Task _acceptLoop = Task.CompletedTask;
    private Task _sweepLoop = Task.CompletedTask;
    private readonly Action<IActorRef> _ended;

    protected SocketListener(string host, int port, TimeSpan sweepInterval)
    {
        var address = IPAddress.TryParse(host, out var ip) ? ip : IPAddress.Any;
        _socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _socket.Bind(new IPEndPoint(address, port));
        _socket.Listen(4096);
        Endpoint = (IPEndPoint)_socket.LocalEndPoint!;
        _sweepInterval = sweepInterval;
        _ended = actor => _connections.TryRemove(actor, out _);
    }

    public IPEndPoint Endpoint { get; }

    /// <summary>Starts accepting; called by the subclass once it is fully constructed.</summary>
    protected void Run()
    {
        _acceptLoop = Task.Run(AcceptLoopAsync);
        _sweepLoop = Task.Run(SweepLoopAsync);
    }

    /// <summary>Makes the transport and actor of a new socket.</summary>
    protected abstract (IActorRef Actor, TTransport Transport) Open(Socket client);

    /// <summary>Starts the transport; it calls <paramref name="ended"/> with the actor when the connection is over.</summary>
    protected abstract Task Start(IActorRef actor, TTransport transport, Action<IActorRef> ended);

    /// <summary>Checks one connection's deadlines at <paramref name="nowMs"/> and tells its actor what is due.</summary>
    protected abstract void Sweep(long nowMs, IActorRef actor, TTransport transport);

    /// <summary>What a connection is told when the server stops.</summary>
    protected abstract object ShutdownMessage { get; }

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
            // Connections are not cancelled with the listener: on shutdown each one says goodbye in its protocol and closes.
            IActorRef actor;
            TTransport transport;
            try
            {
                (actor, transport) = Open(client);
            }
            catch (InvalidOperationException)
            {
                // The actor system is terminating (a shutdown, or the cluster downed this node) and makes no more
                // connection actors: this socket and any later one are refused.
                client.Dispose();
                return;
            }
            // Listed before it starts, so that a connection over at once is also taken off the list.
            var starting = (Task.CompletedTask, transport);
            _connections[actor] = starting;
            var run = Start(actor, transport, _ended);
            _connections.TryUpdate(actor, (run, transport), starting);
        }
    }

    private async Task SweepLoopAsync()
    {
        using var timer = new PeriodicTimer(_sweepInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                var now = Environment.TickCount64;
                foreach (var (actor, connection) in _connections)
                {
                    Sweep(now, actor, connection.Transport);
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
        Broadcast(ShutdownMessage);
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
        GC.SuppressFinalize(this);
    }
}
