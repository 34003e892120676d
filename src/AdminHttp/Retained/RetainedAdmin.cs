using Akka.Actor;
using Akka.Cluster.Sharding;
using Broker.Actors.Retained;
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
/// answer and members are unreachable (it is moving off a dead node), the page is empty and names them.
/// </summary>
public sealed class RetainedAdmin(ActorSystem system, TimeSpan timeout)
{
    private IActorRef Store => ClusterSharding.Get(system).ShardRegion(RetainedStoreActor.TypeName);

    public async Task<RetainedPageBody> ListAsync(string? after, string prefix, int limit)
    {
        RetainedPage page;
        try
        {
            page = await Store.Ask<RetainedPage>(new ListRetained(after, prefix, limit), timeout).ConfigureAwait(false);
        }
        catch (AskTimeoutException) when (UnreachableMembers() is { Count: > 0 } unreachable)
        {
            return new RetainedPageBody([], "", unreachable);
        }
        var rows = page.Rows.Select(r => new RetainedBody(r.Topic, r.Qos, r.PayloadBytes, SessionJson.Timestamp(r.UpdatedAtMs))).ToList();
        return new RetainedPageBody(rows, page.HasMore && rows.Count > 0 ? PageToken.Encode(rows[^1].Topic) : "");
    }

    private List<string> UnreachableMembers() =>
        [.. Akka.Cluster.Cluster.Get(system).State.Unreachable.Select(SessionQueryService.NodeName).Order(StringComparer.Ordinal)];

    /// <summary>True when the topic held a retained message, now durably removed.</summary>
    public async Task<bool> DeleteAsync(string topic) =>
        (await Store.Ask<RetainedDeleted>(new DeleteRetained(topic), timeout).ConfigureAwait(false)).Found;
}
