using Akka.Configuration;
using Akka.Dispatch;

namespace Broker.Actors.Dispatch;

/// <summary>
/// A dispatcher executor of a few dedicated threads that go to sleep as soon as they find no work, for the dispatchers
/// that must not share the .NET thread pool (remoting, cluster membership: see cluster.hocon). Akka's fork-join executor
/// lets an idle thread spin first (up to a hundred <c>sched_yield</c> calls on two cores), once per message it runs; at a
/// thousand messages a second across nodes that was a tenth of a core per node spent spinning, taken from the threads
/// that carry the messages (docs/benchmarks.md). A sleeping thread is woken by the next message instead.
/// </summary>
/// <remarks>
/// Configured as <c>executor = "Broker.Actors.Dispatch.BlockingThreadsExecutorConfigurator, Broker.Actors"</c> with
/// <c>blocking-threads-executor.thread-count</c> (default 2).
/// </remarks>
public sealed class BlockingThreadsExecutorConfigurator(Config config, IDispatcherPrerequisites prerequisites)
    : ExecutorServiceConfigurator(config, prerequisites)
{
    public const string Type = "Broker.Actors.Dispatch.BlockingThreadsExecutorConfigurator, Broker.Actors";

    private readonly int _threads = ThreadCount(config);

    public override ExecutorService Produce(string id) => new BlockingThreadsExecutor(id, _threads);

    private static int ThreadCount(Config config)
    {
        var count = config.GetInt("blocking-threads-executor.thread-count", 2);
        if (count is < 1 or > 64)
        {
            throw new ConfigurationException($"blocking-threads-executor.thread-count must be 1 to 64, not {count}");
        }
        return count;
    }
}

/// <summary>
/// A FIFO of runnables and <c>threads</c> background threads that take from it, waiting on a monitor (no spinning) while
/// it is empty. After <see cref="Shutdown"/> the threads finish what was queued and exit; later work is refused.
/// </summary>
public sealed class BlockingThreadsExecutor : ExecutorService
{
    private readonly Queue<IRunnable> _queue = new();
    private readonly object _gate = new();
    private int _waiting;
    private bool _shutdown;

    public BlockingThreadsExecutor(string id, int threads) : base(id)
    {
        for (var i = 0; i < threads; i++)
        {
            new Thread(Work) { IsBackground = true, Name = $"{id}-{i + 1}" }.Start();
        }
    }

    public override void Execute(IRunnable run)
    {
        lock (_gate)
        {
            if (_shutdown)
            {
                throw new RejectedExecutionException($"executor {Id} is shut down");
            }
            _queue.Enqueue(run);
            if (_waiting > 0)
            {
                Monitor.Pulse(_gate);
            }
        }
    }

    public override void Shutdown()
    {
        lock (_gate)
        {
            _shutdown = true;
            Monitor.PulseAll(_gate);
        }
    }

    private void Work()
    {
        while (true)
        {
            IRunnable run;
            lock (_gate)
            {
                while (_queue.Count == 0)
                {
                    if (_shutdown)
                    {
                        return;
                    }
                    _waiting++;
                    Monitor.Wait(_gate);
                    _waiting--;
                }
                run = _queue.Dequeue();
            }
            try
            {
                run.Run();
            }
            catch (Exception ex)
            {
                // A mailbox run handles its actor's failures; anything escaping it is a bug to see, not to stop the thread for.
                Console.Error.WriteLine($"executor {Id}: a run failed: {ex}");
            }
        }
    }
}
