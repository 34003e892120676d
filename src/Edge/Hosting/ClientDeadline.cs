namespace Broker.Edge.Hosting;

/// <summary>
/// When a client connection must next show activity (<see cref="Environment.TickCount64"/> ms): its connect timeout,
/// keep alive or heartbeat. The connection moves it; one sweep per listener checks every connection instead of a
/// timer each. While the memory alarm keeps the client unread, the deadline waits too: its silence is then ours.
/// </summary>
internal sealed class ClientDeadline
{
    private long _ms = long.MaxValue;
    private volatile bool _paused;

    public long Ms
    {
        get => Volatile.Read(ref _ms);
        set => Volatile.Write(ref _ms, value);
    }

    /// <summary>True once per passed deadline; a deadline moved meanwhile by the connection wins.</summary>
    public bool TakeOverdue(long nowMs)
    {
        if (_paused)
        {
            return false;
        }
        var deadline = Volatile.Read(ref _ms);
        return nowMs > deadline && Interlocked.CompareExchange(ref _ms, long.MaxValue, deadline) == deadline;
    }

    /// <summary>Waits until the memory alarm clears; the time spent waiting is added to the deadline.</summary>
    public async Task WaitWhileBlockedAsync(MemoryAlarm alarm, CancellationToken ct)
    {
        var since = Environment.TickCount64;
        _paused = true;
        try
        {
            await alarm.WhenClearedAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            var deadline = Ms;
            if (deadline != long.MaxValue)
            {
                Ms = deadline + (Environment.TickCount64 - since);
            }
            _paused = false;
        }
    }
}
