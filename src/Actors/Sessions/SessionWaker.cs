using Akka.Actor;
using Akka.Cluster;
using Akka.Event;

namespace Broker.Actors.Sessions;

/// <summary>
/// Starts sessions that have a journal when something is due for them and no actor runs them: when a member is removed
/// from the cluster, every session the catalog says it hosted (their clients' wills, expiries and resumes), and every
/// second, sessions at rest whose will-delay or expiry deadline has come (the durable schedule: a session at rest holds
/// no timer). Every member does both; starting a session that already runs is a no-op.
/// </summary>
public sealed class SessionWaker : ReceiveActor, IWithTimers
{
    public const string Name = "session-waker";

    /// <summary>Sharding moves the removed member's shards to the survivors first.</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(500);

    private sealed record Woken(string Host, int Count, Exception? Error);

    private sealed record Tick
    {
        public static readonly Tick Instance = new();
    }

    private sealed record DueWoken(int Count, Exception? Error);

    /// <summary>How often the schedule is read, and how many due sessions one read starts at most.</summary>
    private static readonly TimeSpan TickEvery = TimeSpan.FromSeconds(1);
    private const int DueBatch = 1000;

    private bool _dueRunning;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(SessionCatalogStore catalog, Func<IActorRef> region) => Akka.Actor.Props.Create(() => new SessionWaker(catalog, region));

    public SessionWaker(SessionCatalogStore catalog, Func<IActorRef> region)
    {
        var log = Context.GetLogger();
        Receive<ClusterEvent.MemberRemoved>(m =>
        {
            var host = SessionRecovery.HostOf(m.Member.UniqueAddress);
            var target = region();
            Wake(catalog, target, host).PipeTo(Self, success: n => new Woken(host, n, null), failure: e => new Woken(host, 0, e));
        });
        Receive<Woken>(w =>
        {
            if (w.Error is not null)
            {
                log.Warning(w.Error, "sessions of removed member {0}: not all restarted", w.Host);
            }
            else if (w.Count > 0)
            {
                log.Info("{0} sessions of removed member {1} restarted", w.Count, w.Host);
            }
        });
        Receive<Tick>(_ =>
        {
            if (_dueRunning)
            {
                return;
            }
            _dueRunning = true;
            WakeDue(catalog, region()).PipeTo(Self, success: n => new DueWoken(n, null), failure: e => new DueWoken(0, e));
        });
        Receive<DueWoken>(d =>
        {
            _dueRunning = false;
            if (d.Error is not null)
            {
                log.Warning(d.Error, "sessions at rest with a deadline due: not all started");
            }
        });

    }

    private static async Task<int> Wake(SessionCatalogStore catalog, IActorRef region, string host)
    {
        await Task.Delay(Settle).ConfigureAwait(false);
        var ids = await catalog.HostedOnAsync(host).ConfigureAwait(false);
        await SessionRecovery.WakeAsync(region, ids, TimeSpan.FromSeconds(120)).ConfigureAwait(false);
        return ids.Count;
    }

    private static async Task<int> WakeDue(SessionCatalogStore catalog, IActorRef region)
    {
        var ids = await catalog.DueAsync(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), DueBatch).ConfigureAwait(false);
        await SessionRecovery.WakeAsync(region, ids, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        return ids.Count;
    }

    protected override void PreStart()
    {
        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.MemberRemoved));
        Timers.StartPeriodicTimer("due", Tick.Instance, TickEvery);
    }

    protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);
}
