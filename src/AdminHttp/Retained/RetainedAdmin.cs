using Akka.Actor;
using Akka.Cluster.Sharding;
using Broker.Actors.Retained;
using Broker.Actors.Sessions;
using Broker.AdminHttp.Sessions;

namespace Broker.AdminHttp.Retained;

/// <summary>One retained message: its topic, QoS, payload size and when the store took it (null: recovered since, time unknown).</summary>
public sealed record RetainedBody(string Topic, int Qos, int PayloadBytes, string? UpdatedAt);

/// <summary>
/// A page of retained messages; <c>unreachable_nodes</c> only when the store did not answer while those members were
/// unreachable (the store may live on one of them): the page is then empty, not failed.
/// </summary>
public sealed record RetainedPageBody(IReadOnlyList<RetainedBody> Retained, string NextPageToken,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    IReadOnlyList<string>? UnreachableNodes = null);

/// <summary>
/// The cluster's retained messages for the admin API. They live in one store entity (wherever sharding runs it), so a
/// page is one question to it: topics after the page token, in UTF-8 order, at most a page. While the store does not
/// answer and members do not answer either (it is moving off a dead node), the page is empty and names them. Every member
/// is asked at the same time as the store, so a member killed just before the question is named even while the cluster
/// has not yet marked it unreachable.
/// </summary>
public sealed class RetainedAdmin(SessionQueryService members)
{
    private ActorSystem System => members.System;

    private TimeSpan Timeout => members.Timeout;

    private IActorRef Store => ClusterSharding.Get(System).ShardRegion(RetainedStoreActor.TypeName);

    public async Task<RetainedPageBody> ListAsync(string? after, string prefix, int limit)
    {
        // A lookup only a live index answers (an Identify would be answered for a dead member by its dead letters).
        var silent = members.AskIndexesAsync<object>(new FindSession(""));
        RetainedPage page;
        try
        {
            page = await Store.Ask<RetainedPage>(new ListRetained(after, prefix, limit), Timeout).ConfigureAwait(false);
        }
        catch (AskTimeoutException)
        {
            var unreachable = Silent(await silent.ConfigureAwait(false));
            if (unreachable.Count == 0)
            {
                throw;
            }
            return new RetainedPageBody([], "", unreachable);
        }
        var rows = page.Rows.Select(r => new RetainedBody(r.Topic, r.Qos, r.PayloadBytes, SessionJson.Timestamp(r.UpdatedAtMs))).ToList();
        return new RetainedPageBody(rows, page.HasMore && rows.Count > 0 ? PageToken.Encode(rows[^1].Topic) : "");
    }

    /// <summary>The members that did not answer, and those the cluster marks unreachable now.</summary>
    private List<string> Silent((List<object> Answers, List<string> Unreachable) asked) =>
        [.. asked.Unreachable
            .Concat(Akka.Cluster.Cluster.Get(System).State.Unreachable.Select(SessionQueryService.NodeName))
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)];

    /// <summary>True when the topic held a retained message, now durably removed.</summary>
    public async Task<bool> DeleteAsync(string topic) =>
        (await Store.Ask<RetainedDeleted>(new DeleteRetained(topic), Timeout).ConfigureAwait(false)).Found;
}
