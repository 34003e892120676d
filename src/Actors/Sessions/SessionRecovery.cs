using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Broker.Actors.Messages;

namespace Broker.Actors.Sessions;

/// <summary>Answered with <see cref="SessionProbeAck"/> once the session has recovered from the journal.</summary>
public sealed record SessionProbe(string ClientId) : ISessionCommand;

public sealed record SessionProbeAck(string ClientId) : IBrokerSerializable;

/// <summary>
/// Sessions with a journal are started again when the node that hosted them is gone, so their subscriptions are routed,
/// their wills published and their expiry kept: at start-up every session whose catalog row names a node incarnation
/// that is no longer a member (all of them after a restart of a single node), and after a member is removed, the
/// sessions it hosted. A publish that arrived before a session had re-registered its subscriptions would miss it, so
/// the node opens its listeners only after the start-up wake has been answered by every such session.
/// </summary>
public static class SessionRecovery
{
    /// <summary>The catalog's name of a node incarnation (a restarted node on the same address is another one).</summary>
    public static string HostOf(UniqueAddress node) => node.Address + "#" + node.Uid.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Starts every session of the catalog hosted by no current member and waits until each has recovered; returns how many.</summary>
    public static async Task<int> WakeOrphanedSessionsAsync(IActorRef region, SessionCatalogStore catalog, IReadOnlySet<string> liveHosts,
        TimeSpan timeout, CancellationToken ct = default)
    {
        var ids = await catalog.HostedElsewhereAsync(liveHosts, ct).ConfigureAwait(false);
        await WakeAsync(region, ids, timeout, ct).ConfigureAwait(false);
        return ids.Count;
    }

    /// <summary>Starts the sessions <paramref name="ids"/> (wherever sharding places them) and waits until each has recovered.</summary>
    public static async Task WakeAsync(IActorRef region, IReadOnlyCollection<string> ids, TimeSpan timeout, CancellationToken ct = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        using var gate = new SemaphoreSlim(WakeConcurrency);
        await Task.WhenAll(ids.Select(async id =>
        {
            await gate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                await ProbeAsync(region, id, deadline, ct).ConfigureAwait(false);
            }
            finally
            {
                gate.Release();
            }
        })).ConfigureAwait(false);
    }

    /// <summary>Sessions starting at once during a wake: enough to keep the journal busy, few enough not to time out.</summary>
    private const int WakeConcurrency = 512;

    /// <summary>A probe is asked again when it gets no answer: sharding drops messages to a shard that is moving.</summary>
    private static async Task ProbeAsync(IActorRef region, string id, DateTime deadline, CancellationToken ct)
    {
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                throw new TimeoutException($"session {id} did not answer its recovery probe");
            }
            try
            {
                await region.Ask<SessionProbeAck>(new SessionProbe(id), left < AttemptTimeout ? left : AttemptTimeout, ct).ConfigureAwait(false);
                return;
            }
            catch (AskTimeoutException)
            {
                // Asked again below.
            }
        }
    }

    private static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(5);
}
