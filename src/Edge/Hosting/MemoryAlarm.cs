using Akka.Event;

namespace Broker.Edge.Hosting;

/// <summary>
/// Node-wide memory protection, as RabbitMQ's memory alarm: once the managed heap (where messages live) is above
/// the high watermark, every connection stops at its next publish and reads nothing more from that client until
/// the heap is back below 90% of the watermark. Consumers, acknowledgements and deliveries go on, so queues drain
/// and memory comes back. AMQP clients that asked for it are told with connection.blocked/unblocked.
/// </summary>
internal sealed class MemoryAlarm : IDisposable
{
    private readonly long _highWatermark;
    private readonly ILoggingAdapter _log;
    private readonly Timer _timer;
    private readonly Func<long> _heapBytes;
    private TaskCompletionSource _cleared = NewCleared(done: true);
    private int _checking;

    public MemoryAlarm(long highWatermark, ILoggingAdapter log, TimeSpan interval, Func<long>? heapBytes = null)
    {
        _highWatermark = highWatermark;
        _log = log;
        _heapBytes = heapBytes ?? (() => GC.GetTotalMemory(forceFullCollection: false));
        _timer = new Timer(_ => Check(), null, interval, interval);
    }

    /// <summary>The watermark from settings: an absolute number of bytes, or else a share of the memory the process may use.</summary>
    public static long Watermark(double fraction, long bytes) =>
        bytes > 0 ? bytes : (long)(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes * fraction);

    public long HighWatermark => _highWatermark;

    public bool IsActive => !Volatile.Read(ref _cleared).Task.IsCompleted;

    /// <summary>Completes once the alarm is not (or no longer) set.</summary>
    public Task WhenClearedAsync(CancellationToken ct) => Volatile.Read(ref _cleared).Task.WaitAsync(ct);

    /// <summary>Measures the heap and sets or clears the alarm; the timer calls it every interval.</summary>
    public void Check()
    {
        if (Interlocked.Exchange(ref _checking, 1) == 1)
        {
            return;
        }
        try
        {
            var heap = _heapBytes();
            if (!IsActive && heap > _highWatermark)
            {
                // Garbage is not memory in use: only what survives a collection sets the alarm.
                GC.Collect();
                heap = _heapBytes();
                if (heap > _highWatermark)
                {
                    Volatile.Write(ref _cleared, NewCleared(done: false));
                    _log.Warning("memory alarm set: managed heap {0} MiB is above the high watermark {1} MiB; publishers are blocked until it falls below {2} MiB",
                        heap >> 20, _highWatermark >> 20, ClearBelow >> 20);
                }
            }
            else if (IsActive)
            {
                if (heap > ClearBelow)
                {
                    // While the alarm holds, what consumers drained becomes garbage: collect it so the alarm can clear.
                    GC.Collect();
                    heap = _heapBytes();
                }
                if (heap <= ClearBelow)
                {
                    Volatile.Read(ref _cleared).TrySetResult();
                    _log.Warning("memory alarm cleared: managed heap {0} MiB; publishers resume", heap >> 20);
                }
            }
        }
        finally
        {
            Volatile.Write(ref _checking, 0);
        }
    }

    private long ClearBelow => _highWatermark / 10 * 9;

    private static TaskCompletionSource NewCleared(bool done)
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (done)
        {
            tcs.SetResult();
        }
        return tcs;
    }

    public void Dispose() => _timer.Dispose();
}
