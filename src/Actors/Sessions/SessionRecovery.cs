using Akka.Actor;
using Akka.Cluster.Sharding;
using Broker.Actors.Messages;

namespace Broker.Actors.Sessions;

/// <summary>Answered with <see cref="SessionProbeAck"/> once the session has recovered from the journal.</summary>
public sealed record SessionProbe(string ClientId) : ISessionCommand;

public sealed record SessionProbeAck(string ClientId) : IBrokerSerializable;

/// <summary>
/// After a restart, remembered sessions come back on their own, but a publish that arrived before a
/// session had re-registered its subscriptions would miss it. The node therefore opens its listeners
/// only after this has run: it starts every shard (so each restarts its remembered sessions) and then
/// waits until every hosted session has finished its recovery.
/// </summary>
public static class SessionRecovery
{
    /// <summary>Client IDs reserved for starting shards; a probe entity holds no session and passivates.</summary>
    public const string ProbePrefix = "$shard-probe-";

    public static IReadOnlyList<string> ProbeIds(IMessageExtractor extractor, int shardCount)
    {
        var ids = new string?[shardCount];
        var found = 0;
        for (var n = 0; found < shardCount; n++)
        {
            var id = ProbePrefix + n.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var shard = int.Parse(extractor.ShardId(id, new SessionProbe(id))!, System.Globalization.CultureInfo.InvariantCulture);
            if (ids[shard] is null)
            {
                ids[shard] = id;
                found++;
            }
        }
        return ids!;
    }

    /// <summary>Returns the number of recovered sessions hosted by <paramref name="region"/>.</summary>
    public static async Task<int> WaitForRememberedSessionsAsync(IActorRef region, TimeSpan timeout, CancellationToken ct = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        var extractor = new SessionMessageExtractor();
        await Task.WhenAll(ProbeIds(extractor, SessionMessageExtractor.ShardCount).Select(id => ProbeAsync(region, id, deadline, ct))).ConfigureAwait(false);
        var state = await region.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, timeout, ct).ConfigureAwait(false);
        var sessions = state.Shards.SelectMany(s => s.EntityIds).Where(id => !id.StartsWith(ProbePrefix, StringComparison.Ordinal)).ToList();
        await Task.WhenAll(sessions.Select(id => ProbeAsync(region, id, deadline, ct))).ConfigureAwait(false);
        return sessions.Count;
    }

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
