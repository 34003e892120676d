using Akka.Actor;
using Akka.Cluster;
using Akka.Event;

namespace Broker.Actors.Sessions;

/// <summary>
/// When a member is removed from the cluster, starts again on the survivors every session the catalog says it hosted
/// (its connected clients' wills, its expiry and its routes live on), as remembered entities would, but only for
/// sessions that have a journal. Every member does it; starting a session that already runs is a no-op.
/// </summary>
public sealed class SessionWaker : ReceiveActor
{
    public const string Name = "session-waker";

    /// <summary>Sharding moves the removed member's shards to the survivors first.</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(500);

    private sealed record Woken(string Host, int Count, Exception? Error);

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
    }

    private static async Task<int> Wake(SessionCatalogStore catalog, IActorRef region, string host)
    {
        await Task.Delay(Settle).ConfigureAwait(false);
        var ids = await catalog.HostedOnAsync(host).ConfigureAwait(false);
        await SessionRecovery.WakeAsync(region, ids, TimeSpan.FromSeconds(120)).ConfigureAwait(false);
        return ids.Count;
    }

    protected override void PreStart() => Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.MemberRemoved));

    protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);
}
