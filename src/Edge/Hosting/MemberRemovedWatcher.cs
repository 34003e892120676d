using Akka.Actor;
using Akka.Cluster;

namespace Broker.Edge.Hosting;

/// <summary>
/// Calls <c>onRemoved</c> shortly after, and again a few seconds after, a member left the cluster: by then
/// the shard regions have stopped sending to it and sharding places its entities on the survivors.
/// </summary>
internal sealed class MemberRemovedWatcher : ReceiveActor, IWithTimers
{
    private static readonly TimeSpan[] Delays = [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5)];

    private sealed record Fire
    {
        public static readonly Fire Instance = new();
    }

    private int _timers;

    public ITimerScheduler Timers { get; set; } = null!;

    public MemberRemovedWatcher(Action onRemoved)
    {
        Receive<ClusterEvent.MemberRemoved>(_ =>
        {
            foreach (var delay in Delays)
            {
                Timers.StartSingleTimer(++_timers, Fire.Instance, delay);
            }
        });
        Receive<Fire>(_ => onRemoved());
    }

    public static Props Props(Action onRemoved) => Akka.Actor.Props.Create(() => new MemberRemovedWatcher(onRemoved));

    protected override void PreStart() => Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.MemberRemoved));

    protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);
}
