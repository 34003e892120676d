using Akka.Actor;
using Akka.Cluster.Sharding;
using Broker.Actors.Retained;
using Broker.AdminHttp.Sessions;

namespace Broker.AdminHttp.Retained;

/// <summary>One retained message: its topic, QoS, payload size and when the store took it (null: recovered since, time unknown).</summary>
public sealed record RetainedBody(string Topic, int Qos, int PayloadBytes, string? UpdatedAt);

public sealed record RetainedPageBody(IReadOnlyList<RetainedBody> Retained, string NextPageToken);

/// <summary>
/// The cluster's retained messages for the admin API. They live in one store entity (wherever sharding runs it), so a
/// page is one question to it: topics after the page token, in UTF-8 order, at most a page.
/// </summary>
public sealed class RetainedAdmin(ActorSystem system, TimeSpan timeout)
{
    private IActorRef Store => ClusterSharding.Get(system).ShardRegion(RetainedStoreActor.TypeName);

    public async Task<RetainedPageBody> ListAsync(string? after, string prefix, int limit)
    {
        var page = await Store.Ask<RetainedPage>(new ListRetained(after, prefix, limit), timeout).ConfigureAwait(false);
        var rows = page.Rows.Select(r => new RetainedBody(r.Topic, r.Qos, r.PayloadBytes, SessionJson.Timestamp(r.UpdatedAtMs))).ToList();
        return new RetainedPageBody(rows, page.HasMore && rows.Count > 0 ? PageToken.Encode(rows[^1].Topic) : "");
    }

    /// <summary>True when the topic held a retained message, now durably removed.</summary>
    public async Task<bool> DeleteAsync(string topic) =>
        (await Store.Ask<RetainedDeleted>(new DeleteRetained(topic), timeout).ConfigureAwait(false)).Found;
}
