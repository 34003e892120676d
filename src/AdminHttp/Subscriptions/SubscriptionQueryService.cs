using System.Text.Json.Serialization;
using Akka.Actor;
using Broker.Actors.Sessions;
using Broker.AdminHttp.Sessions;

namespace Broker.AdminHttp.Subscriptions;

public sealed record FilterBody(string Filter, int SubscriberCount, int MaxQos);

public sealed record SubscriptionsPageBody(IReadOnlyList<FilterBody> Subscriptions, string NextPageToken,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? UnreachableNodes = null);

public sealed record FilterClientBody(string ClientId, int Qos);

public sealed record FilterClientsBody(string Filter, IReadOnlyList<FilterClientBody> Clients, string NextPageToken,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? UnreachableNodes = null);

/// <summary>
/// Subscriptions of the whole cluster for the admin API, by the same fan-out as sessions: every member's session index
/// aggregates the filters of the sessions it holds; the sessions at rest (disconnected, in the catalog) are read for
/// <c>state=disconnected</c> and <c>all</c>. A filter's count is the sum over members, its QoS the highest; a member
/// that does not answer is named, never fails the page.
/// </summary>
public sealed class SubscriptionQueryService(SessionQueryService sessions, RestingSessions? resting)
{
    private TimeSpan Timeout => sessions.Timeout;

    /// <summary>A page of filters after <paramref name="after"/> (UTF-8 order) starting with <paramref name="prefix"/>.</summary>
    public async Task<(SubscriptionsPageBody? Body, bool Answered)> FiltersAsync(string? after, string prefix, SessionStateFilter state, int limit)
    {
        var query = new ListFilters(after, prefix, state, limit);
        var (pages, unreachable) = await sessions.AskIndexesAsync<FiltersPage>(query).ConfigureAwait(false);
        if (pages.Count == 0)
        {
            return (null, false);
        }
        var merged = new SortedDictionary<string, (int Count, byte Qos)>(Utf8Ordinal.Instance);
        void Add(FilterRow row)
        {
            var (count, qos) = merged.GetValueOrDefault(row.Filter);
            merged[row.Filter] = (count + row.Subscribers, Math.Max(qos, row.MaxQos));
        }
        foreach (var row in pages.SelectMany(p => p.Rows))
        {
            Add(row);
        }
        // A filter after the last one a member with more returned may lack that member's sessions: such rows wait for the next page.
        var bound = pages.Where(p => p.HasMore && p.Rows.Count > 0).Select(p => p.Rows[^1].Filter).Min(Utf8Ordinal.Instance);
        var more = pages.Any(p => p.HasMore);
        if (state != SessionStateFilter.Connected && resting is not null)
        {
            try
            {
                using var cts = new CancellationTokenSource(Timeout);
                await foreach (var info in resting.AllAsync().WithCancellation(cts.Token).ConfigureAwait(false))
                {
                    foreach (var sub in info.Subscriptions)
                    {
                        if (Utf8Ordinal.StartsWith(sub.Filter, prefix) && (after is null || Utf8Ordinal.Instance.Compare(sub.Filter, after) > 0))
                        {
                            Add(new FilterRow(sub.Filter, 1, sub.Qos));
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or System.Data.Common.DbException)
            {
                unreachable = [.. unreachable, SessionQueryService.CatalogSource];
            }
        }
        var rows = merged.Where(kv => bound is null || Utf8Ordinal.Instance.Compare(kv.Key, bound) <= 0)
            .Select(kv => new FilterBody(kv.Key, kv.Value.Count, kv.Value.Qos)).ToList();
        if (rows.Count > limit || merged.Count > rows.Count)
        {
            more = true;
            rows = rows.Take(limit).ToList();
        }
        var next = more && rows.Count > 0 ? PageToken.Encode(rows[^1].Filter) : "";
        return (new SubscriptionsPageBody(rows, next, unreachable.Count > 0 ? unreachable : null), true);
    }

    /// <summary>A page of the sessions subscribed to <paramref name="filter"/>, by client ID.</summary>
    public async Task<(FilterClientsBody? Body, bool Answered)> ClientsAsync(string filter, string? after, string prefix, SessionStateFilter state, int limit)
    {
        var (pages, unreachable) = await sessions.AskIndexesAsync<FilterClientsPage>(new ListFilterClients(filter, after, prefix, state, limit)).ConfigureAwait(false);
        if (pages.Count == 0)
        {
            return (null, false);
        }
        var rows = new SortedDictionary<string, byte>(Utf8Ordinal.Instance);
        foreach (var row in pages.SelectMany(p => p.Rows))
        {
            rows.TryAdd(row.ClientId, row.Qos);
        }
        var more = pages.Any(p => p.HasMore);
        if (state != SessionStateFilter.Connected && resting is not null)
        {
            try
            {
                using var cts = new CancellationTokenSource(Timeout);
                await foreach (var info in resting.AllAsync(after).WithCancellation(cts.Token).ConfigureAwait(false))
                {
                    if (!Utf8Ordinal.StartsWith(info.ClientId, prefix))
                    {
                        continue;
                    }
                    if (info.Subscriptions.FirstOrDefault(s => s.Filter == filter) is { } sub)
                    {
                        rows.TryAdd(info.ClientId, sub.Qos);
                        if (rows.Count > limit)
                        {
                            break;
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or System.Data.Common.DbException)
            {
                unreachable = [.. unreachable, SessionQueryService.CatalogSource];
            }
        }
        var page = rows.Take(limit).Select(kv => new FilterClientBody(kv.Key, kv.Value)).ToList();
        more |= rows.Count > limit;
        var next = more && page.Count > 0 ? PageToken.Encode(page[^1].ClientId) : "";
        return (new FilterClientsBody(filter, page, next, unreachable.Count > 0 ? unreachable : null), true);
    }
}
