using System.Buffers;
using System.Net.Sockets;

namespace Broker.Edge.Hosting;

/// <summary>
/// The sending side of a client socket, shared by the MQTT and AMQP transports. The connection actor (and only it)
/// writes frames through <see cref="Writer"/> into a buffer of its own and hands them over with <see cref="Flush"/>;
/// a sender on the thread pool sends what was handed over, small frames packed together, so several frames go out in
/// one system call when the client is busy. Nothing is held while the connection is idle: buffers are rented from the
/// shared pool when a frame is written and returned once sent, and the sender runs only while there is something to send.
/// </summary>
internal sealed class SocketOutput(ClientLink link, Broker.Actors.Messages.ProtocolCounters counters) : IBufferWriter<byte>, IThreadPoolWorkItem
{
    /// <summary>The smallest buffer rented for writing: frames that follow each other while one is being sent share it.</summary>
    private const int BufferSize = 4096;

    private readonly Lock _gate = new();

    // The actor's side: what it writes before the next Flush. Only the actor touches these.
    private byte[]? _buffer;
    private int _written;
    private List<ArraySegment<byte>>? _filled;

    // Handed over and not yet taken by the sender (under _gate).
    private List<ArraySegment<byte>>? _pending;
    private List<ArraySegment<byte>>? _spare;
    private bool _sending;
    private bool _completed;
    private bool _finished;
    private TaskCompletionSource? _drained;

    private long _pendingBytes;
    private int _closed;

    // 1 while bytes received from the client wait for an acknowledgement (no send since); 1 while queued in OwedAcks.
    private int _ackOwed;
    private int _ackQueued;

    // When the sender last sent (Environment.TickCount64). The kernel holds back acknowledgements only on a connection it
    // sees replying within its acknowledgement delay (at most 200 ms), and stops once such a delay runs out: a connection
    // the node has sent nothing to for longer (a QoS 0 publisher's after its CONNACK) is acknowledged at each read already.
    private long _lastSendMs = long.MinValue / 2;
    private const long RepliedWithinMs = 200;

    /// <summary>Where the connection actor writes; <see cref="Flush"/> hands the bytes to the sender.</summary>
    public IBufferWriter<byte> Writer => this;

    /// <summary>Bytes flushed and not yet handed to the socket.</summary>
    public long PendingBytes => Interlocked.Read(ref _pendingBytes);

    /// <summary>
    /// The read loop received bytes from the client: unless a send to it follows within <see cref="OwedAcks.Delay"/>
    /// (its segment carries the acknowledgement), the kernel is told to acknowledge them then.
    /// </summary>
    public void Received()
    {
        if (!OwedAcks.Supported || Environment.TickCount64 - Volatile.Read(ref _lastSendMs) > RepliedWithinMs)
        {
            return;
        }
        Volatile.Write(ref _ackOwed, 1);
        Interlocked.MemoryBarrier();
        // While a send is under way, the sender queues the connection when it goes idle, if no later send carried it.
        if (!Volatile.Read(ref _sending) && Interlocked.Exchange(ref _ackQueued, 1) == 0)
        {
            OwedAcks.Shared.Schedule(this);
        }
    }

    /// <summary>
    /// Called by <see cref="OwedAcks"/> once the delay passed: acknowledges now what was received and not acknowledged
    /// by a send since. While a send is under way (it may have gone before the bytes came, or wait for a client that
    /// does not read) the sender queues the connection again when it goes idle (<see cref="OweAckAfterSends"/>), so a
    /// stuck send costs no periodic work here.
    /// </summary>
    internal void AckIfOwed()
    {
        Volatile.Write(ref _ackQueued, 0);
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _sending))
        {
            return;
        }
        if (Interlocked.Exchange(ref _ackOwed, 0) == 1 && !IsClosed)
        {
            link.QuickAck();
        }
    }

    /// <summary>The sender went idle (<c>_sending</c> just cleared): bytes received after its last send are still owed an acknowledgement.</summary>
    private void OweAckAfterSends()
    {
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _ackOwed) == 1 && Interlocked.Exchange(ref _ackQueued, 1) == 0)
        {
            OwedAcks.Shared.Schedule(this);
        }
    }

    /// <summary>True once the output was completed or aborted, or a send failed: later frames are dropped.</summary>
    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    public void Advance(int count)
    {
        if (_buffer is null || count < 0 || _written + count > _buffer.Length)
        {
            throw new InvalidOperationException("Advance past the span given out");
        }
        _written += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0) => Room(sizeHint).AsMemory(_written);

    public Span<byte> GetSpan(int sizeHint = 0) => Room(sizeHint).AsSpan(_written);

    private byte[] Room(int sizeHint)
    {
        var need = Math.Max(sizeHint, 1);
        if (_buffer is not null && _buffer.Length - _written >= need)
        {
            return _buffer;
        }
        if (_buffer is not null && _written > 0)
        {
            // Full: keep what it holds for the next Flush and continue in a new buffer (no copy of what was written).
            (_filled ??= []).Add(new ArraySegment<byte>(_buffer, 0, _written));
        }
        else if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }
        _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(need, BufferSize));
        _written = 0;
        return _buffer;
    }

    /// <summary>Hands what was written since the last flush to the sender; returns how many bytes that was.</summary>
    public long Flush()
    {
        var bytes = (long)_written;
        if (_filled is not null)
        {
            foreach (var segment in _filled)
            {
                bytes += segment.Count;
            }
        }
        if (bytes == 0)
        {
            return 0;
        }
        bool start;
        lock (_gate)
        {
            if (_completed)
            {
                // Closed meanwhile: what was written can no longer be sent.
                DropUnflushed();
                return 0;
            }
            var pending = _pending ??= TakeSpare();
            if (_filled is not null)
            {
                pending.AddRange(_filled);
                _filled = null;
            }
            if (_written > 0)
            {
                if (pending.Count > 0 && pending[^1] is var last && last.Array!.Length - last.Count >= _written)
                {
                    // A small frame joins the last buffer waiting to be sent.
                    _buffer.AsSpan(0, _written).CopyTo(last.Array.AsSpan(last.Count));
                    pending[^1] = new ArraySegment<byte>(last.Array, 0, last.Count + _written);
                    ArrayPool<byte>.Shared.Return(_buffer!);
                    _buffer = null;
                }
                else
                {
                    pending.Add(new ArraySegment<byte>(_buffer!, 0, _written));
                    _buffer = null;
                }
                _written = 0;
            }
            else if (_buffer is not null)
            {
                // Only full buffers were handed over and a fresh one is still empty: an idle connection keeps none.
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = null;
            }
            Interlocked.Add(ref _pendingBytes, bytes);
            start = !_sending;
            _sending = true;
        }
        if (start)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: true);
        }
        return bytes;
    }

    private List<ArraySegment<byte>> TakeSpare()
    {
        var list = _spare ?? [];
        _spare = null;
        return list;
    }

    /// <summary>No more frames: what was flushed is sent, then the socket is shut down.</summary>
    public void Complete()
    {
        bool finishNow;
        lock (_gate)
        {
            if (_completed)
            {
                return;
            }
            _completed = true;
            Volatile.Write(ref _closed, 1);
            finishNow = !_sending;
        }
        if (finishNow)
        {
            Finish(shutdown: true);
        }
    }

    /// <summary>Closes the socket now, dropping whatever is not sent yet (a client that stopped reading).</summary>
    public void Abort()
    {
        Complete();
        link.Dispose();
    }

    void IThreadPoolWorkItem.Execute() => _ = SendLoopAsync();

    private async Task SendLoopAsync()
    {
        while (true)
        {
            List<ArraySegment<byte>> batch;
            lock (_gate)
            {
                if (_pending is null || _pending.Count == 0)
                {
                    _sending = false;
                    // Idle: hold no lists (and no buffers) until the next frame.
                    _pending = null;
                    _spare = null;
                    if (!_completed)
                    {
                        OweAckAfterSends();
                        return;
                    }
                    break;
                }
                batch = _pending;
                _pending = null;
            }
            long sent = 0;
            Volatile.Write(ref _lastSendMs, Environment.TickCount64);
            try
            {
                sent = await SendAllAsync(batch).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
            {
                // Peer gone: nothing more can be sent.
                Release(batch);
                lock (_gate)
                {
                    _completed = true;
                    _sending = false;
                    Volatile.Write(ref _closed, 1);
                    if (_pending is not null)
                    {
                        Release(_pending);
                        _pending = null;
                    }
                }
                Finish(shutdown: false);
                return;
            }
            Interlocked.Add(ref _pendingBytes, -sent);
            Release(batch);
            lock (_gate)
            {
                _spare = batch;
            }
        }
        Finish(shutdown: true);
    }

    private async ValueTask<long> SendAllAsync(List<ArraySegment<byte>> batch)
    {
        long total = 0;
        // How much one send carries depends on the window the client offered (RecordSend).
        var sendSize = link.SendSize;
        foreach (var segment in batch)
        {
            var memory = segment.AsMemory();
            total += memory.Length;
            while (!memory.IsEmpty)
            {
                // This segment carries the acknowledgement of every byte the client sent so far.
                Volatile.Write(ref _ackOwed, 0);
                var n = await link.SendAsync(memory[..Math.Min(memory.Length, sendSize)]).ConfigureAwait(false);
                memory = memory[n..];
            }
        }
        counters.BytesSent(total);
        return total;
    }

    private static void Release(List<ArraySegment<byte>> segments)
    {
        foreach (var segment in segments)
        {
            ArrayPool<byte>.Shared.Return(segment.Array!);
        }
        segments.Clear();
    }

    private void DropUnflushed()
    {
        if (_filled is not null)
        {
            Release(_filled);
            _filled = null;
        }
        _written = 0;
    }

    /// <summary>The output ended: shut the socket down (after a completed output) and wake <see cref="DrainAsync"/>.</summary>
    private void Finish(bool shutdown)
    {
        if (shutdown)
        {
            link.Shutdown();
        }
        TaskCompletionSource? drained;
        lock (_gate)
        {
            _finished = true;
            drained = _drained;
        }
        drained?.TrySetResult();
    }

    /// <summary>
    /// After the read side ended: gives the sender <paramref name="grace"/> (ten seconds unless a test says less) to send
    /// what the actor queued (it completes the output when it stops), so a client that stopped reading cannot hold the
    /// socket open for long.
    /// </summary>
    public async Task DrainAsync(TimeSpan? grace = null)
    {
        Task done;
        lock (_gate)
        {
            done = _finished ? Task.CompletedTask : (_drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
        if (await Task.WhenAny(done, Task.Delay(grace ?? TimeSpan.FromSeconds(10))).ConfigureAwait(false) != done)
        {
            Abort();
            await Task.WhenAny(done, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
        }
        link.Dispose();
    }
}
