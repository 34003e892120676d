namespace Broker.Actors.Amqp.Topology;

/// <summary>
/// This node's copy of the cluster topology, read by every channel of the node to route publishes where they
/// arrive. Only the node's <see cref="TopologyReplica"/> replaces the view.
/// </summary>
public sealed class AmqpTopology
{
    private readonly Lock _gate = new();
    // Waiters by the version they wait for; a version's waiters share one completion.
    private readonly SortedDictionary<long, TaskCompletionSource> _waiters = [];
    private TopologyView _view = TopologyView.Empty;
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TopologyView View => Volatile.Read(ref _view);

    /// <summary>Completes when the replica has applied its first view from the owner.</summary>
    public Task Synced => _synced.Task;

    /// <summary>
    /// Completes once <see cref="View"/> is at <paramref name="version"/> or later: a channel answers a declare or
    /// bind only when a publish through this node already sees the change.
    /// </summary>
    public Task WaitForVersionAsync(long version, CancellationToken cancellationToken = default)
    {
        if (View.Version >= version)
        {
            return Task.CompletedTask;
        }
        Task task;
        lock (_gate)
        {
            // Checked again under the lock: Publish may have completed the waiters between the two reads.
            if (View.Version >= version)
            {
                return Task.CompletedTask;
            }
            if (!_waiters.TryGetValue(version, out var tcs))
            {
                tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiters.Add(version, tcs);
            }
            task = tcs.Task;
        }
        return cancellationToken.CanBeCanceled ? task.WaitAsync(cancellationToken) : task;
    }

    internal void Publish(TopologyView view)
    {
        Volatile.Write(ref _view, view);
        _synced.TrySetResult();
        List<TaskCompletionSource>? done = null;
        lock (_gate)
        {
            while (_waiters.Count > 0)
            {
                var (version, tcs) = _waiters.First();
                if (version > view.Version)
                {
                    break;
                }
                _waiters.Remove(version);
                (done ??= []).Add(tcs);
            }
        }
        if (done is not null)
        {
            foreach (var tcs in done)
            {
                tcs.TrySetResult();
            }
        }
    }
}
