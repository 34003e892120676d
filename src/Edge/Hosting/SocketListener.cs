using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Broker.Actors.Messages;

namespace Broker.Edge.Hosting;

/// <summary>
/// A TCP listener that gives each accepted socket a transport and a connection actor (the protocol's
/// subclass makes both), checks every open connection's deadlines on a timer, and on stop tells every
/// connection the server is going away and waits for them to close.
/// </summary>
internal abstract class SocketListener<TTransport> : IAsyncDisposable
    where TTransport : class
{
    /// <summary>Null for connections that arrive by another server (WebSockets through Kestrel): <see cref="ServeAsync"/>.</summary>
    private readonly Socket? _socket;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<IActorRef, (Task Run, TTransport Transport)> _connections = new();
    private readonly TimeSpan _sweepInterval;
    private Task _acceptLoop = Task.CompletedTask;
    private Task _sweepLoop = Task.CompletedTask;
    private readonly Action<IActorRef> _ended;
    private readonly Admission _admission;
    private readonly Akka.Event.ILoggingAdapter? _log;

    /// <summary>Connections of this listener that were admitted and have not ended (<see cref="Admission"/>).</summary>
    private int _count;

    /// <summary>Refused connections still being answered (<see cref="RefuseAsync"/>); beyond broker.limits.refusals-answered they are closed at once.</summary>
    private int _refusing;

    protected SocketListener(string host, int port, TimeSpan sweepInterval, Admission? admission = null, Akka.Event.ILoggingAdapter? log = null)
    {
        _admission = admission ?? Admission.Unlimited;
        _log = log;
        var address = IPAddress.TryParse(host, out var ip) ? ip : IPAddress.Any;
        _socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _socket.Bind(new IPEndPoint(address, port));
        _socket.Listen(4096);
        Endpoint = (IPEndPoint)_socket.LocalEndPoint!;
        _sweepInterval = sweepInterval;
        _ended = actor =>
        {
            if (_connections.TryRemove(actor, out _))
            {
                _admission.Release(ref _count);
                Counters.ConnectionClosed();
            }
        };
    }

    /// <summary>A listener without a socket of its own: another server hands it connections (<see cref="ServeAsync"/>).</summary>
    protected SocketListener(TimeSpan sweepInterval, Admission admission, Akka.Event.ILoggingAdapter log)
    {
        _admission = admission;
        _log = log;
        Endpoint = new IPEndPoint(IPAddress.None, 0);
        _sweepInterval = sweepInterval;
        _ended = actor =>
        {
            if (_connections.TryRemove(actor, out _))
            {
                _admission.Release(ref _count);
                Counters.ConnectionClosed();
            }
        };
    }

    public IPEndPoint Endpoint { get; }

    /// <summary>Starts accepting; called by the subclass once it is fully constructed.</summary>
    protected void Run()
    {
        if (_socket is not null)
        {
            _acceptLoop = Task.Run(AcceptLoopAsync);
        }
        _sweepLoop = Task.Run(SweepLoopAsync);
    }

    /// <summary>The counts of this listener's protocol (connections opened and closed).</summary>
    protected abstract Broker.Actors.Messages.ProtocolCounters Counters { get; }

    /// <summary>Makes the transport and actor of a new connection.</summary>
    protected abstract (IActorRef Actor, TTransport Transport) Open(ClientLink link);

    /// <summary>The link of an accepted socket: plain by default, TLS on a TLS listener.</summary>
    protected virtual ClientLink CreateLink(Socket client) => new SocketLink(client);

    /// <summary>Starts the transport; it calls <paramref name="ended"/> with the actor when the connection is over.</summary>
    protected abstract Task Start(IActorRef actor, TTransport transport, Action<IActorRef> ended);

    /// <summary>Checks one connection's deadlines at <paramref name="nowMs"/> and tells its actor what is due.</summary>
    protected abstract void Sweep(long nowMs, IActorRef actor, TTransport transport);

    /// <summary>What a connection is told when the server stops.</summary>
    protected abstract object ShutdownMessage { get; }

    /// <summary>
    /// The protocol's answer to a connection refused at accept, given its first bytes (at most 16): null while more
    /// bytes are needed to choose it, empty to close without one. Only called when <see cref="AnswersRefusals"/>.
    /// </summary>
    protected virtual byte[]? RefusalReply(ReadOnlySpan<byte> firstBytes, Refusal refusal) => [];

    /// <summary>
    /// Whether a refused connection gets an answer in its protocol (MQTT: a CONNACK); else it is closed at once (AMQP,
    /// and TLS listeners, which cannot answer before a handshake).
    /// </summary>
    protected virtual bool AnswersRefusals => false;

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket!.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested)
                {
                    return;
                }
                if (ex is SocketException { SocketErrorCode: SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable })
                {
                    // Out of file descriptors: the listener would spin on the error. Wait for connections to end.
                    BrokerCounters.ConnectionsRefused.Increment();
                    if (_log is not null)
                    {
                        DenialLog.Shared.Write(_log, $"listener {Endpoint}: cannot accept ({ex.Message}); lower broker.limits.max-connections or raise the open-file limit");
                    }
                    await Task.Delay(100).ConfigureAwait(false);
                }
                continue;
            }
            client.NoDelay = true;
            var refusal = _admission.TryAdmit((client.RemoteEndPoint as IPEndPoint)?.Address, ref _count);
            if (refusal != Refusal.None)
            {
                BrokerCounters.ConnectionsRefused.Increment();
                if (_log is not null)
                {
                    DenialLog.Shared.Write(_log, $"listener {Endpoint}: connection from {client.RemoteEndPoint} refused: {Describe(refusal)}");
                }
                _ = RefuseAsync(client, refusal);
                continue;
            }
            var link = CreateLink(client);
            if (Begin(link) is null)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Makes and starts the connection of an admitted link and returns its run, or null when the actor system no longer
    /// makes actors (it is terminating: a shutdown, or the cluster downed this node); the link is then closed and the
    /// admission released.
    /// </summary>
    private Task? Begin(ClientLink link)
    {
        // Connections are not cancelled with the listener: on shutdown each one says goodbye in its protocol and closes.
        IActorRef actor;
        TTransport transport;
        try
        {
            (actor, transport) = Open(link);
        }
        catch (InvalidOperationException)
        {
            link.Dispose();
            _admission.Release(ref _count);
            return null;
        }
        Counters.ConnectionOpened();
        // Listed before it starts, so that a connection over at once is also taken off the list.
        var starting = (Task.CompletedTask, transport);
        _connections[actor] = starting;
        var run = Start(actor, transport, _ended);
        _connections.TryUpdate(actor, (run, transport), starting);
        return run;
    }

    /// <summary>
    /// Serves a connection another server accepted (a WebSocket) until it ends, under the same limits, deadlines and
    /// shutdown as accepted sockets; false when it was refused (counted and logged; the caller closes it).
    /// </summary>
    public async Task<bool> ServeAsync(ClientLink link)
    {
        if (_stop.IsCancellationRequested)
        {
            return false;
        }
        var refusal = _admission.TryAdmit(link.RemoteAddress, ref _count);
        if (refusal != Refusal.None)
        {
            BrokerCounters.ConnectionsRefused.Increment();
            if (_log is not null)
            {
                DenialLog.Shared.Write(_log, $"connection from {link.Remote} refused: {Describe(refusal)}");
            }
            return false;
        }
        if (Begin(link) is not { } run)
        {
            return false;
        }
        await run.ConfigureAwait(false);
        return true;
    }

    private string Describe(Refusal refusal) => refusal switch
    {
        Refusal.NodeFull => $"the node holds broker.limits.max-connections ({_admission.Limits.MaxConnections})",
        Refusal.ListenerFull => $"the listener holds broker.limits.max-connections-per-listener ({_admission.Limits.MaxConnectionsPerListener})",
        Refusal.ConnectRate => $"more than broker.limits.connect-rate-per-ip ({_admission.Limits.ConnectRatePerIp}/s)",
        _ => $"more than broker.limits.failed-logins-per-ip ({_admission.Limits.FailedLoginsPerIp}) failed logins",
    };

    /// <summary>
    /// Answers a refused connection in its protocol (its first bytes, waited for at most two seconds) and closes it; at
    /// most broker.limits.refusals-answered at a time, so a flood of refused connections holds a bounded number of sockets.
    /// </summary>
    private async Task RefuseAsync(Socket client, Refusal refusal)
    {
        using (client)
        {
            if (!AnswersRefusals)
            {
                return;
            }
            if (Interlocked.Increment(ref _refusing) > _admission.Limits.RefusalsAnswered)
            {
                Interlocked.Decrement(ref _refusing);
                return;
            }
            try
            {
                var first = new byte[16];
                var read = 0;
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                while (read < first.Length && RefusalReply(first.AsSpan(0, read), refusal) is null)
                {
                    var n = await client.ReceiveAsync(first.AsMemory(read), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                    if (n == 0)
                    {
                        break;
                    }
                    read += n;
                }
                if (RefusalReply(first.AsSpan(0, read), refusal) is { Length: > 0 } reply)
                {
                    await client.SendAsync(reply, SocketFlags.None, timeout.Token).ConfigureAwait(false);
                }
                client.Shutdown(SocketShutdown.Both);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // Gone or silent: just closed.
            }
            finally
            {
                Interlocked.Decrement(ref _refusing);
            }
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
        _socket?.Close();
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
