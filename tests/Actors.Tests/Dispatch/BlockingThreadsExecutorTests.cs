using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Configuration;
using Akka.Dispatch;
using Broker.Actors.Dispatch;

namespace Broker.Actors.Tests.Dispatch;

public class BlockingThreadsExecutorTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private static ActionRunnable Run(Action action) => new(action);

    [Fact]
    public void Every_run_executes_on_the_executors_own_threads_and_none_on_the_thread_pool()
    {
        var executor = new BlockingThreadsExecutor("test-exec", 2);
        var threads = new ConcurrentDictionary<int, bool>();
        using var done = new CountdownEvent(1000);
        for (var i = 0; i < 1000; i++)
        {
            executor.Execute(Run(() =>
            {
                threads[Environment.CurrentManagedThreadId] = Thread.CurrentThread.IsThreadPoolThread;
                done.Signal();
            }));
        }
        Assert.True(done.Wait(Timeout));
        Assert.InRange(threads.Count, 1, 2);
        Assert.All(threads.Values, onPool => Assert.False(onPool));
        executor.Shutdown();
    }

    [Fact]
    public void Idle_threads_sleep_and_wake_for_the_next_run()
    {
        var executor = new BlockingThreadsExecutor("test-idle", 2);
        for (var round = 0; round < 5; round++)
        {
            // Long enough for both threads to have gone to sleep on the monitor.
            using var ran = new ManualResetEventSlim();
            Thread.Sleep(50);
            executor.Execute(Run(ran.Set));
            Assert.True(ran.Wait(Timeout), $"round {round}: a sleeping executor did not wake");
        }
        executor.Shutdown();
    }

    [Fact]
    public void Shutdown_finishes_what_was_queued_and_refuses_what_comes_after()
    {
        var executor = new BlockingThreadsExecutor("test-shutdown", 1);
        using var gate = new ManualResetEventSlim();
        var ran = 0;
        executor.Execute(Run(() => gate.Wait(Timeout)));
        for (var i = 0; i < 10; i++)
        {
            executor.Execute(Run(() => Interlocked.Increment(ref ran)));
        }
        executor.Shutdown();
        Assert.Throws<RejectedExecutionException>(() => executor.Execute(Run(() => Interlocked.Increment(ref ran))));
        gate.Set();
        var deadline = DateTime.UtcNow + Timeout;
        while (Volatile.Read(ref ran) < 10 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(5);
        }
        Assert.Equal(10, Volatile.Read(ref ran));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(65)]
    public void A_thread_count_out_of_range_is_refused(int count)
    {
        var config = ConfigurationFactory.ParseString($"blocking-threads-executor.thread-count = {count}");
        Assert.Throws<ConfigurationException>(() => new BlockingThreadsExecutorConfigurator(config, null!));
    }

    [Fact]
    public async Task An_actor_on_a_dispatcher_with_this_executor_gets_its_messages_in_order()
    {
        var config = ConfigurationFactory.ParseString($$"""
            akka.loglevel = WARNING
            test-dispatcher {
              type = Dispatcher
              executor = "{{BlockingThreadsExecutorConfigurator.Type}}"
              blocking-threads-executor.thread-count = 2
            }
            """);
        using var system = ActorSystem.Create("blocking-executor", config);
        var seen = new List<int>();
        var all = new TaskCompletionSource();
        var actor = system.ActorOf(Props.Create(() => new Collector(seen, all, 5000)).WithDispatcher("test-dispatcher"));
        for (var i = 0; i < 5000; i++)
        {
            actor.Tell(i);
        }
        await all.Task.WaitAsync(Timeout);
        Assert.Equal(Enumerable.Range(0, 5000), seen);
        await system.Terminate();
    }

    private sealed class Collector : ReceiveActor
    {
        public Collector(List<int> seen, TaskCompletionSource all, int expected) =>
            Receive<int>(i =>
            {
                Assert.False(Thread.CurrentThread.IsThreadPoolThread);
                seen.Add(i);
                if (seen.Count == expected)
                {
                    all.SetResult();
                }
            });
    }
}
