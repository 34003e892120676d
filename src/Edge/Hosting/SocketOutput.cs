using System.IO.Pipelines;
using System.Net.Sockets;

namespace Broker.Edge.Hosting;

/// <summary>
/// The sending side of a client socket: the connection actor writes frames into an in-memory pipe and a
/// pump copies them to the socket, so many frames go out in one send when the client is busy. Shared by the
/// MQTT and AMQP transports.
/// </summary>
internal sealed class SocketOutput(Socket socket, NetworkStream stream)
{
    // Small segments: an idle connection keeps at most one, and bursts simply chain more of them. One options object for all.
    private static readonly PipeOptions Options = new(pauseWriterThreshold: 0, resumeWriterThreshold: 0, minimumSegmentSize: 512, useSynchronizationContext: false);
    private readonly Pipe _pipe = new(Options);
    private long _pendingBytes;
    private int _closed;

    /// <summary>Where the connection actor (and only it) writes; <see cref="Flush"/> hands the bytes to the pump.</summary>
    public PipeWriter Writer => _pipe.Writer;

    /// <summary>Bytes written and not yet handed to the socket.</summary>
    public long PendingBytes => Interlocked.Read(ref _pendingBytes);

    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>Wakes the pump for what was written since the last flush; returns how many bytes that was.</summary>
    public long Flush()
    {
        var writer = _pipe.Writer;
        var bytes = writer.UnflushedBytes;
        if (bytes == 0 || IsClosed)
        {
            return 0;
        }
        Interlocked.Add(ref _pendingBytes, bytes);
        try
        {
            // With pausing disabled the flush completes synchronously; it only wakes the pump.
            var flush = writer.FlushAsync();
            if (!flush.IsCompleted)
            {
                flush.AsTask().ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
            }
        }
        catch (InvalidOperationException)
        {
            // The pump stopped (socket gone) between the check above and the flush.
        }
        return bytes;
    }

    /// <summary>No more frames: the pump sends what is queued, then closes the socket.</summary>
    public void Complete()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            _pipe.Writer.Complete();
        }
    }

    /// <summary>Closes the socket now, dropping whatever is not sent yet (a client that stopped reading).</summary>
    public void Abort()
    {
        Complete();
        socket.Dispose();
    }

    /// <summary>Copies the pipe to the socket until <see cref="Complete"/>, then shuts the socket down.</summary>
    public async Task PumpAsync()
    {
        var reader = _pipe.Reader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                foreach (var segment in buffer)
                {
                    await stream.WriteAsync(segment).ConfigureAwait(false);
                }
                Interlocked.Add(ref _pendingBytes, -buffer.Length);
                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            // Peer gone: nothing more can be sent.
        }
        finally
        {
            Interlocked.Exchange(ref _closed, 1);
            await reader.CompleteAsync().ConfigureAwait(false);
            await stream.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// After the read side ended: gives the pump ten seconds to send what the actor queued (it completes the
    /// output when it stops), so a client that stopped reading cannot hold the socket open for long.
    /// </summary>
    public async Task DrainAsync(Task pump)
    {
        if (await Task.WhenAny(pump, Task.Delay(TimeSpan.FromSeconds(10))).ConfigureAwait(false) != pump)
        {
            Abort();
            await pump.ConfigureAwait(false);
        }
        socket.Dispose();
    }
}
