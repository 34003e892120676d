namespace Broker.Edge.Hosting;

/// <summary>
/// Backpressure between a socket's read loop and its connection actor. The loop <see cref="Add"/>s each packet or
/// frame it hands over; the actor <see cref="Release"/>s it once acted on (a packet it holds for later stays
/// counted). Above the high-water mark the loop stops reading the socket, so TCP slows the client down, and it
/// reads again once the actor has worked the count down to half the mark. Each item also counts a fixed overhead,
/// so a flood of tiny packets is bounded by the memory its objects take, not just by its bytes.
/// </summary>
internal sealed class InboundGate(long highWaterMark)
{
    /// <summary>What one item costs beyond its wire size: the decoded objects and the actor message around them.</summary>
    public const int ItemOverhead = 128;

    private readonly long _highWaterMark = highWaterMark;
    private long _pending;
    private TaskCompletionSource? _waiter;
    private volatile bool _closed;

    /// <summary>Bytes handed to the actor and not yet acted on (with overheads).</summary>
    public long Pending => Interlocked.Read(ref _pending);

    public bool IsAboveHighWater => !_closed && Interlocked.Read(ref _pending) > _highWaterMark;

    /// <summary>What an item of <paramref name="wireBytes"/> counts for.</summary>
    public static long Weight(int wireBytes) => wireBytes + ItemOverhead;

    /// <summary>The highest weight a <see cref="Broker.Actors.Routing.FlowWindow"/> may hold before it probes: below half the mark, where reading resumes.</summary>
    public long ProbeWeight => Math.Max(1, _highWaterMark / 8);

    /// <summary>Read loop: an item of <paramref name="wireBytes"/> goes to the actor.</summary>
    public void Add(int wireBytes) => Interlocked.Add(ref _pending, Weight(wireBytes));

    /// <summary>Actor: the item of <paramref name="wireBytes"/> has been acted on.</summary>
    public void Release(int wireBytes) => ReleaseWeight(Weight(wireBytes));

    /// <summary>Actor: items of this total <see cref="Weight"/> are done with (a flow window's answered probe).</summary>
    public void ReleaseWeight(long weight)
    {
        if (weight != 0 && Interlocked.Add(ref _pending, -weight) <= _highWaterMark / 2)
        {
            Interlocked.Exchange(ref _waiter, null)?.TrySetResult();
        }
    }

    /// <summary>The actor is gone: the read loop never waits again (it ends with the socket).</summary>
    public void Close()
    {
        _closed = true;
        Interlocked.Exchange(ref _waiter, null)?.TrySetResult();
    }

    /// <summary>Read loop: completes once reading may go on.</summary>
    public Task WaitAsync(CancellationToken ct)
    {
        if (!IsAboveHighWater)
        {
            return Task.CompletedTask;
        }
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _waiter, waiter);
        // A release between the check above and the write would have found no waiter to wake.
        if (_closed || Interlocked.Read(ref _pending) <= _highWaterMark / 2)
        {
            waiter.TrySetResult();
        }
        return waiter.Task.WaitAsync(ct);
    }
}
