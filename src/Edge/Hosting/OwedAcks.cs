using System.Diagnostics;

namespace Broker.Edge.Hosting;

/// <summary>
/// Sends the TCP acknowledgement of what a client sent once <see cref="Delay"/> has passed without the node sending it
/// anything (which would have carried the acknowledgement). Linux holds back the acknowledgement of a small segment for
/// up to 40 ms on a connection that carries data both ways, expecting to send it with the reply; a client that leaves
/// Nagle's algorithm on (paho-mqtt 1.x, libmosquitto, most sockets' default) then holds its next small packet until
/// that acknowledgement comes. A client that acknowledges a delivery and then publishes (a request answered on the
/// same connection, a command followed by its result) waited 39 ms per round on this node with paho before this class,
/// 0.2 ms on mosquitto (docs/benchmarks.md, "Delayed acknowledgements"). Acknowledging every read at once instead
/// (<c>TCP_QUICKACK</c> after each receive) fixed that round trip but cost paho's QoS 1 stream an eighth of its rate:
/// its Nagle then sent each packet in a segment of its own. Waiting <see cref="Delay"/> first leaves the busy
/// connections, whose replies carry the acknowledgement, alone.
/// </summary>
/// <remarks>
/// One thread for the node, sleeping while nothing is owed. Each connection is queued at most once at a time, so the
/// queue is bounded by the number of connections. Linux only (<c>TCP_QUICKACK</c>); elsewhere nothing is queued.
/// </remarks>
internal sealed class OwedAcks
{
    /// <summary>
    /// How long a client's bytes may wait for an acknowledgement carried by a reply before one is sent alone. With 1 ms the
    /// acknowledgements of a subscriber's PUBACKs at 1,000 messages a second fell due as the next message went out, and
    /// the latency scenario's p99 rose from 0.46-0.56 to 0.55-0.70 ms; with 2 ms the next message carries them
    /// (0.49-0.60 against 0.47-0.56).
    /// </summary>
    public static readonly TimeSpan Delay = TimeSpan.FromMilliseconds(2);

    private static readonly long DelayTicks = (long)(Delay.TotalSeconds * Stopwatch.Frequency);

    public static OwedAcks Shared { get; } = new();

    /// <summary>Linux: <c>TCP_QUICKACK</c> is available.</summary>
    public static bool Supported { get; } = OperatingSystem.IsLinux();

    // A Monitor, not a Lock: the thread waits on it for the first entry.
    private readonly object _gate = new();
    private readonly Queue<(SocketOutput Output, long Due)> _queue = new();
    private Thread? _thread;

    /// <summary>Queues <paramref name="output"/>: <see cref="SocketOutput.AckIfOwed"/> is called once the delay passed.</summary>
    public void Schedule(SocketOutput output)
    {
        // Stopwatch ticks: Environment.TickCount64 moves in steps of the kernel's tick (4 ms here), too coarse for the delay.
        var due = Stopwatch.GetTimestamp() + DelayTicks;
        lock (_gate)
        {
            _queue.Enqueue((output, due));
            if (_thread is null)
            {
                _thread = new Thread(Run) { IsBackground = true, Name = "tcp-owed-acks" };
                _thread.Start();
            }
            else if (_queue.Count == 1)
            {
                Monitor.Pulse(_gate);
            }
        }
    }

    private void Run()
    {
        while (true)
        {
            SocketOutput output;
            long due;
            lock (_gate)
            {
                while (_queue.Count == 0)
                {
                    Monitor.Wait(_gate);
                }
                (output, due) = _queue.Peek();
            }
            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
            if (wait > TimeSpan.Zero)
            {
                // Entries are queued in the order they fall due: nothing else is due before this one.
                Thread.Sleep((int)Math.Ceiling(wait.TotalMilliseconds));
            }
            lock (_gate)
            {
                _queue.Dequeue();
            }
            try
            {
                output.AckIfOwed();
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Not expected (QuickAck catches what a closed socket throws). The thread must go on for the other
                // connections; this one's acknowledgement is then the kernel's, up to 40 ms later.
            }
        }
    }
}
