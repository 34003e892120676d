using System.Collections.Immutable;

namespace Broker.Actors.Sessions;

/// <summary>A filter as the admin API lists it: how many sessions hold it and the highest QoS among them.</summary>
public sealed record FilterRow(string Filter, int Subscribers, byte MaxQos);

/// <summary>One session's subscription to a filter.</summary>
public sealed record FilterClient(string ClientId, byte Qos);

/// <summary>
/// The subscriptions of the sessions one node holds in memory, by filter (UTF-8 order) and by client, for the admin
/// API's subscription lists. A session gives its whole (immutable) subscription map on every change; only the
/// difference is applied. Plain class: the session index actor is its shell.
/// </summary>
public sealed class SubscriptionIndex
{
    private readonly Dictionary<string, Dictionary<string, byte>> _byFilter = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _filters = new(Utf8Ordinal.Instance);
    private readonly Dictionary<string, ImmutableSortedDictionary<string, Subscription>> _byClient = new(StringComparer.Ordinal);

    public int FilterCount => _filters.Count;

    /// <summary>Subscriptions held, all sessions together.</summary>
    public long SubscriptionCount { get; private set; }

    /// <summary>The session of <paramref name="clientId"/> now holds exactly <paramref name="subscriptions"/>.</summary>
    public void Set(string clientId, ImmutableSortedDictionary<string, Subscription> subscriptions)
    {
        var old = _byClient.GetValueOrDefault(clientId);
        if (ReferenceEquals(old, subscriptions))
        {
            return;
        }
        if (old is not null)
        {
            foreach (var filter in old.Keys)
            {
                if (!subscriptions.ContainsKey(filter))
                {
                    Unlink(filter, clientId);
                    SubscriptionCount--;
                }
            }
        }
        foreach (var (filter, sub) in subscriptions)
        {
            if (!_byFilter.TryGetValue(filter, out var clients))
            {
                _byFilter[filter] = clients = new Dictionary<string, byte>(1, StringComparer.Ordinal);
                _filters.Add(filter);
            }
            if (clients.TryAdd(clientId, sub.Qos))
            {
                SubscriptionCount++;
            }
            else
            {
                clients[clientId] = sub.Qos;
            }
        }
        if (subscriptions.IsEmpty)
        {
            _byClient.Remove(clientId);
        }
        else
        {
            _byClient[clientId] = subscriptions;
        }
    }

    /// <summary>The session left this node's memory.</summary>
    public void Remove(string clientId) => Set(clientId, ImmutableSortedDictionary<string, Subscription>.Empty);

    private void Unlink(string filter, string clientId)
    {
        if (_byFilter.TryGetValue(filter, out var clients) && clients.Remove(clientId) && clients.Count == 0)
        {
            _byFilter.Remove(filter);
            _filters.Remove(filter);
        }
    }

    /// <summary>
    /// Up to <paramref name="limit"/> filters after <paramref name="after"/> starting with <paramref name="prefix"/>,
    /// counting only the sessions <paramref name="include"/> accepts (a filter none of them holds is left out).
    /// </summary>
    public (List<FilterRow> Rows, bool HasMore) Filters(string? after, string prefix, Func<string, bool> include, int limit)
    {
        var rows = new List<FilterRow>();
        foreach (var filter in Utf8Ordinal.KeysAfter(_filters, after, prefix))
        {
            if (!Utf8Ordinal.StartsWith(filter, prefix))
            {
                break;
            }
            var count = 0;
            byte maxQos = 0;
            foreach (var (clientId, qos) in _byFilter[filter])
            {
                if (include(clientId))
                {
                    count++;
                    maxQos = Math.Max(maxQos, qos);
                }
            }
            if (count == 0)
            {
                continue;
            }
            if (rows.Count == limit)
            {
                return (rows, true);
            }
            rows.Add(new FilterRow(filter, count, maxQos));
        }
        return (rows, false);
    }

    /// <summary>Up to <paramref name="limit"/> sessions holding <paramref name="filter"/>, by client ID after <paramref name="after"/>.</summary>
    public (List<FilterClient> Rows, bool HasMore) Clients(string filter, string? after, string prefix, Func<string, bool> include, int limit)
    {
        if (!_byFilter.TryGetValue(filter, out var clients))
        {
            return ([], false);
        }
        var matching = clients
            .Where(c => Utf8Ordinal.StartsWith(c.Key, prefix) && (after is null || Utf8Ordinal.Instance.Compare(c.Key, after) > 0) && include(c.Key))
            .Select(c => new FilterClient(c.Key, c.Value))
            .ToList();
        matching.Sort((a, b) => Utf8Ordinal.Instance.Compare(a.ClientId, b.ClientId));
        return matching.Count > limit ? (matching.GetRange(0, limit), true) : (matching, false);
    }
}
