using System.Net;
using System.Net.Sockets;

namespace Broker.Cluster.Tests;

/// <summary>
/// A network between node processes that a test can partition, built on 127.0.0.1 without privileges: one TCP relay in
/// front of each node's remoting port. A node advertises its relay's port (<c>BROKER_REMOTE_PUBLIC_PORT</c>) and listens
/// on its own (<c>BROKER_REMOTE_PORT</c>), so every connection between two nodes passes the relay of the node it was
/// opened to. The relay learns which node opened it from the origin address in Akka's association handshake, the first
/// bytes the opener sends. <see cref="Isolate"/> stops relaying the bytes of every connection between the isolated
/// nodes and the others, both ways, and stops reading them, so the kernel's buffers fill and the senders block, as in a
/// network that drops everything: connections stay open and nothing is refused or reset. <see cref="Heal"/> relays them
/// again, held bytes first.
/// </summary>
public sealed class RemotingLinks : IAsyncDisposable
{
    private readonly Relay[] _relays;
    private readonly CancellationTokenSource _stop = new();
    private readonly object _gate = new();
    private HashSet<int> _isolated = [];
    private TaskCompletionSource _healed = NewHealed();

    public RemotingLinks(int nodes)
    {
        _relays = [.. Enumerable.Range(0, nodes).Select(i => new Relay(this, i))];
        foreach (var relay in _relays)
        {
            relay.Start(_stop.Token);
        }
    }

    /// <summary>Connections a relay could not attribute to a node (treated as coming from an isolated node while a partition lasts).</summary>
    public int Unidentified => _relays.Sum(r => Volatile.Read(ref r.UnidentifiedCount));

    /// <summary>The port node <paramref name="node"/> advertises and the others connect to.</summary>
    public int PublicPort(int node) => _relays[node].Port;

    /// <summary>Sets the port node <paramref name="node"/> itself listens on (before it starts, or when it starts again).</summary>
    public void Target(int node, int remotePort) => _relays[node].TargetPort = remotePort;

    /// <summary>Cuts <paramref name="nodes"/> off from the other nodes (not from each other, nor from clients or the database).</summary>
    public void Isolate(params int[] nodes)
    {
        lock (_gate)
        {
            _isolated = [.. nodes];
        }
    }

    /// <summary>Ends the partition: held and new bytes flow again.</summary>
    public void Heal()
    {
        TaskCompletionSource healed;
        lock (_gate)
        {
            _isolated = [];
            healed = _healed;
            _healed = NewHealed();
        }
        healed.TrySetResult();
    }

    private static TaskCompletionSource NewHealed() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completed when bytes between <paramref name="from"/> and <paramref name="to"/> may flow (-1: an unknown node).</summary>
    private Task WhenOpen(int from, int to)
    {
        lock (_gate)
        {
            if (_isolated.Count == 0)
            {
                return Task.CompletedTask;
            }
            var cut = from < 0 || _isolated.Contains(from) != _isolated.Contains(to);
            return cut ? _healed.Task : Task.CompletedTask;
        }
    }

    /// <summary>Which node's relay port appears as the origin address in <paramref name="handshake"/>, or -1.</summary>
    private int OriginOf(ReadOnlySpan<byte> handshake)
    {
        for (var i = 0; i < _relays.Length; i++)
        {
            if (handshake.IndexOf(AddressBytes(_relays[i].Port)) >= 0)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>
    /// The end of an Akka remoting AddressData in protocol buffers: field 2 (hostname) "127.0.0.1", then field 3 (port) as
    /// a varint. The association handshake carries the opener's address in that form.
    /// </summary>
    private static byte[] AddressBytes(int port)
    {
        var bytes = new List<byte> { 0x12, 9 };
        bytes.AddRange("127.0.0.1"u8.ToArray());
        bytes.Add(0x18);
        var value = (uint)port;
        while (value >= 0x80)
        {
            bytes.Add((byte)(value | 0x80));
            value >>= 7;
        }
        bytes.Add((byte)value);
        return [.. bytes];
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        Heal();
        foreach (var relay in _relays)
        {
            await relay.DisposeAsync();
        }
        _stop.Dispose();
    }

    private sealed class Relay(RemotingLinks links, int node) : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly List<Socket> _sockets = [];
        private Task _accepting = Task.CompletedTask;
        public int UnidentifiedCount;

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
        public volatile int TargetPort;

        public void Start(CancellationToken ct)
        {
            _listener.Start();
            _accepting = AcceptAsync(ct);
        }

        private async Task AcceptAsync(CancellationToken ct)
        {
            while (!ct.IsCancellationRequested)
            {
                Socket opener;
                try
                {
                    opener = await _listener.AcceptSocketAsync(ct);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }
                _ = RelayAsync(opener, ct);
            }
        }

        private void Track(Socket socket)
        {
            lock (_sockets)
            {
                _sockets.Add(socket);
            }
        }

        private async Task RelayAsync(Socket opener, CancellationToken ct)
        {
            Track(opener);
            opener.NoDelay = true;
            var first = new byte[64 * 1024];
            int read;
            try
            {
                read = await opener.ReceiveAsync(first, ct);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                opener.Dispose();
                return;
            }
            var from = links.OriginOf(first.AsSpan(0, read));
            if (from < 0 && read > 0)
            {
                Interlocked.Increment(ref UnidentifiedCount);
            }
            var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            Track(upstream);
            try
            {
                // A partition also keeps new connections from reaching the node.
                await links.WhenOpen(from, node).WaitAsync(ct);
                await upstream.ConnectAsync(new IPEndPoint(IPAddress.Loopback, TargetPort), ct);
                if (read > 0)
                {
                    await upstream.SendAsync(first.AsMemory(0, read), ct);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                opener.Dispose();
                upstream.Dispose();
                return;
            }
            await Task.WhenAll(PumpAsync(opener, upstream, from, node, ct), PumpAsync(upstream, opener, node, from, ct));
            opener.Dispose();
            upstream.Dispose();
        }

        /// <summary>Copies <paramref name="source"/> to <paramref name="sink"/>, waiting while the two nodes are cut off from each other.</summary>
        private async Task PumpAsync(Socket source, Socket sink, int sourceNode, int sinkNode, CancellationToken ct)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    var n = await source.ReceiveAsync(buffer, ct);
                    // Even the end of a connection waits: a partition delivers nothing, not even a reset.
                    await links.WhenOpen(sourceNode, sinkNode).WaitAsync(ct);
                    if (n == 0)
                    {
                        sink.Shutdown(SocketShutdown.Send);
                        return;
                    }
                    await sink.SendAsync(buffer.AsMemory(0, n), ct);
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Either side reset or the other pump closed both: the reset, too, crosses only an open link.
                try
                {
                    await links.WhenOpen(sourceNode, sinkNode).WaitAsync(ct);
                }
                catch (OperationCanceledException)
                {
                }
                source.Dispose();
                sink.Dispose();
            }
            catch (OperationCanceledException)
            {
                source.Dispose();
                sink.Dispose();
            }
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            await _accepting;
            lock (_sockets)
            {
                foreach (var s in _sockets)
                {
                    s.Dispose();
                }
                _sockets.Clear();
            }
        }
    }
}
