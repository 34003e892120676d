using Akka.Actor;
using Akka.Cluster;
using Broker.Actors.Sessions;

namespace Broker.AdminHttp.Sessions;

/// <summary>One page of sessions merged from every node, and the nodes that did not answer.</summary>
public sealed record SessionsPageResult(IReadOnlyList<SessionInfo> Sessions, bool HasMore, IReadOnlyList<string> UnreachableNodes, bool AnyAnswered);

/// <summary>
/// Answers session queries for the whole cluster: asks the session index of every Up member (this node
/// included) with a per-node timeout, gathers with <see cref="Task.WhenAll(IEnumerable{Task})"/>, and
/// merges the per-node pages by client ID. A node that does not answer leaves its rows out and is named
/// in the result instead of failing the page. Sessions no node runs (at rest) come from the session catalog
/// (<paramref name="resting"/>) and are merged the same way; a session listed by a node and the catalog at once
/// (it is just starting or going to rest) appears once, as the node reports it.
/// </summary>
public sealed class SessionQueryService(ActorSystem system, TimeSpan timeout, RestingSessions? resting = null, int maxPageSize = 10000)
{
    public const string IndexActorName = "session-index";

    /// <summary>Named in <c>unreachable_nodes</c> when the catalog of sessions at rest could not be read.</summary>
    public const string CatalogSource = "session-catalog";

    private readonly Cluster _cluster = Cluster.Get(system);

    public ActorSystem System => system;

    /// <summary>The catalog of sessions at rest, when the node has one.</summary>
    public RestingSessions? Resting => resting;

    /// <summary>How long a member (or an entity) has to answer an admin query.</summary>
    public TimeSpan Timeout => timeout;

    /// <summary>True while this node is an Up member and can reach the session shards.</summary>
    public bool IsAvailable => _cluster.SelfMember.Status == MemberStatus.Up;

    private IReadOnlyList<(string Node, ActorSelection Index)> Targets() =>
        [.. _cluster.State.Members
            .Where(m => m.Status is MemberStatus.Up or MemberStatus.Leaving)
            .Select(m => (NodeName(m), system.ActorSelection(new RootActorPath(m.Address) / "user" / IndexActorName)))];

    /// <summary>The node name a member announces as its <c>node:NAME</c> role, else its address.</summary>
    public static string NodeName(Member m) =>
        m.Roles.FirstOrDefault(r => r.StartsWith("node:", StringComparison.Ordinal))?["node:".Length..] ?? m.Address.ToString();

    /// <summary>The node names of the members the admin API asks.</summary>
    public IReadOnlyList<string> MemberNames => [.. Targets().Select(t => t.Node)];

    /// <param name="node">only the sessions that member hosts (none at rest), or every member's and those at rest</param>
    public async Task<SessionsPageResult> ListAsync(ListSessions query, string? node = null)
    {
        var targets = Targets().Where(t => node is null || t.Node == node).ToList();
        var asks = targets.Select(t => t.Index.Ask<SessionsPage>(query, timeout)).ToArray();
        var atRest = node is null ? resting?.ListAsync(query, maxPageSize).WaitAsync(timeout) : null;
        await WhenAllSettled([.. asks, atRest ?? Task.CompletedTask]).ConfigureAwait(false);
        var rows = new List<SessionInfo>();
        var unreachable = new List<string>();
        var more = false;
        var answered = 0;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < asks.Length; i++)
        {
            if (asks[i].IsCompletedSuccessfully)
            {
                answered++;
                foreach (var row in asks[i].Result.Sessions)
                {
                    if (seen.Add(row.ClientId))
                    {
                        rows.Add(row);
                    }
                }
                more |= asks[i].Result.HasMore;
            }
            else
            {
                unreachable.Add(targets[i].Node);
            }
        }
        if (atRest is not null)
        {
            if (atRest.IsCompletedSuccessfully)
            {
                rows.AddRange(atRest.Result.Sessions.Where(r => seen.Add(r.ClientId)));
                more |= atRest.Result.HasMore;
            }
            else
            {
                unreachable.Add(CatalogSource);
            }
        }
        rows.Sort((a, b) => Utf8Ordinal.Instance.Compare(a.ClientId, b.ClientId));
        if (query.Limit > 0 && rows.Count > query.Limit)
        {
            rows.RemoveRange(query.Limit, rows.Count - query.Limit);
            more = true;
        }
        // The catalog is not a node: the page is served (naming the catalog as unreachable) whenever a node answered.
        return new SessionsPageResult(rows, more, unreachable, answered > 0);
    }

    /// <summary>The session wherever it is hosted; null when no node knows it. <c>Answered</c> is false when no node answered.</summary>
    public async Task<(SessionInfo? Session, bool Answered, IReadOnlyList<string> Unreachable)> FindAsync(string clientId)
    {
        var targets = Targets();
        var asks = targets.Select(t => t.Index.Ask<object>(new FindSession(clientId), timeout)).ToArray();
        await WhenAllSettled(asks).ConfigureAwait(false);
        SessionInfo? found = null;
        var answered = false;
        var unreachable = new List<string>();
        for (var i = 0; i < asks.Length; i++)
        {
            if (!asks[i].IsCompletedSuccessfully)
            {
                unreachable.Add(targets[i].Node);
                continue;
            }
            answered = true;
            if (asks[i].Result is SessionInfo info && (found is null || info.Connected))
            {
                found = info;
            }
        }
        if (found is null && resting is not null)
        {
            try
            {
                found = await resting.FindAsync(clientId).WaitAsync(timeout).ConfigureAwait(false);
            }
            catch (Exception)
            {
                unreachable.Add(CatalogSource);
            }
        }
        return (found, answered, unreachable);
    }

    /// <summary>
    /// Disconnects the client of <paramref name="clientId"/> wherever it is connected, and with
    /// <paramref name="discard"/> ends its session (also one at rest). <c>Found</c>: false when no member and not the
    /// catalog knows the client ID; <c>Answered</c>: false when that cannot be told (a member or the catalog did not answer).
    /// </summary>
    public async Task<(bool Found, bool Answered)> KickAsync(string clientId, bool discard, IActorRef sessionRegion)
    {
        var targets = Targets();
        var kick = new KickClient(clientId, discard);
        var asks = targets.Select(t => t.Index.Ask<KickDone>(kick, timeout)).ToArray();
        await WhenAllSettled(asks).ConfigureAwait(false);
        if (asks.Any(a => a.IsCompletedSuccessfully && a.Result.Found))
        {
            return (true, true);
        }
        var allAnswered = asks.All(a => a.IsCompletedSuccessfully);
        if (resting is null || clientId.StartsWith("amqp091:", StringComparison.Ordinal))
        {
            return (false, allAnswered);
        }
        SessionInfo? atRest;
        try
        {
            atRest = await resting.FindAsync(clientId).WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (Exception)
        {
            return (false, false);
        }
        if (atRest is null)
        {
            return (false, allAnswered);
        }
        if (discard)
        {
            // No node runs it: its entity starts, recovers the session and ends it.
            var done = await sessionRegion.Ask<KickDone>(kick, timeout).ConfigureAwait(false);
            return (done.Found, true);
        }
        return (true, true);
    }

    /// <summary>Asks every member's session index <paramref name="query"/>: the answers, and the members that did not answer.</summary>
    public async Task<(List<T> Answers, List<string> Unreachable)> AskIndexesAsync<T>(object query)
    {
        var targets = Targets();
        var asks = targets.Select(t => t.Index.Ask<T>(query, timeout)).ToArray();
        await WhenAllSettled(asks).ConfigureAwait(false);
        var answers = new List<T>();
        var unreachable = new List<string>();
        for (var i = 0; i < asks.Length; i++)
        {
            if (asks[i].IsCompletedSuccessfully)
            {
                answers.Add(asks[i].Result);
            }
            else
            {
                unreachable.Add(targets[i].Node);
            }
        }
        return (answers, unreachable);
    }

    private static async Task WhenAllSettled(Task[] tasks)
    {
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Each task is inspected by the caller; a failed or timed-out node only marks that node.
        }
    }
}
