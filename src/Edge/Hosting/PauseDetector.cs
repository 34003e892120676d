using Akka.Actor;
using Akka.Cluster;
using Akka.Event;

namespace Broker.Edge.Hosting;

/// <summary>
/// A node that was not running for longer than the failure detector and the split brain resolver allow (SIGSTOP, a
/// frozen VM, a very long GC pause) has been downed by the other members, which took its sessions over. On waking it
/// must not act on what its actors still hold, so this thread, which notices the gap within a fraction of a second of
/// waking, logs it and ends the process (exit code 2) for its supervisor to start it again as a new member. The
/// database refuses the journal writes of such a stale session owner anyway (a sequence number exists once); this
/// shortens the moment in which it could try. A node alone in its cluster is never downed and keeps running.
/// </summary>
internal sealed class PauseDetector : IDisposable
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(200);

    /// <summary>A stall this long is logged as a warning: half way to what the failure detector tolerates by default.</summary>
    private static readonly TimeSpan WarnAfter = TimeSpan.FromSeconds(1);
    private readonly Thread _thread;
    private volatile bool _stopped;

    public PauseDetector(ActorSystem system, TimeSpan limit, Action<string> exit)
    {
        var cluster = Cluster.Get(system);
        _thread = new Thread(() =>
        {
            var last = System.Diagnostics.Stopwatch.GetTimestamp();
            var gcPaused = GC.GetTotalPauseDuration();
            while (!_stopped)
            {
                Thread.Sleep(Tick);
                var now = System.Diagnostics.Stopwatch.GetTimestamp();
                var gap = System.Diagnostics.Stopwatch.GetElapsedTime(last, now);
                var gcNow = GC.GetTotalPauseDuration();
                last = now;
                if (gap - Tick > WarnAfter)
                {
                    // Whether the collector or the machine (CPU starved, swapping, a stopped VM) held the node.
                    system.Log.Warning("this node did not run for {0:0.00} s ({1:0.00} s of it in garbage collection pauses); the cluster downs a member silent for {2:0.0} s",
                        (gap - Tick).TotalSeconds, (gcNow - gcPaused).TotalSeconds, limit.TotalSeconds);
                }
                gcPaused = gcNow;
                if (gap > limit && !_stopped && cluster.State.Members.Count(m => m.Status == MemberStatus.Up) > 1)
                {
                    exit($"this node did not run for {gap.TotalSeconds:0.0} s, longer than the cluster tolerates ({limit.TotalSeconds:0.0} s): " +
                        "the other members have downed it and taken its sessions over; exiting so that it can be started again as a new member");
                    return;
                }
            }
        })
        {
            IsBackground = true,
            Name = "pause-detector",
        };
        _thread.Start();
    }

    /// <summary>Longest gap a member may have: the failure detector's acceptable pause plus the split brain resolver's stable-after.</summary>
    public static TimeSpan Limit(Akka.Configuration.Config config) =>
        config.GetTimeSpan("akka.cluster.failure-detector.acceptable-heartbeat-pause", TimeSpan.FromSeconds(3))
        + config.GetTimeSpan("akka.cluster.split-brain-resolver.stable-after", TimeSpan.FromSeconds(2));

    public void Dispose() => _stopped = true;
}
