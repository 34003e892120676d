using Akka.Actor;
using Broker.Actors.Serialization;

namespace Broker.Actors.Sessions;

/// <summary>A session's admin summary as the catalog stores it while the session is at rest (the cross-node encoding of <see cref="SessionInfo"/>).</summary>
public sealed class SessionInfoCodec(ActorSystem system)
{
    private readonly BrokerSerializer _serializer = new((ExtendedActorSystem)system);

    public byte[] Encode(SessionInfo info) => _serializer.ToBinary(info);

    public SessionInfo Decode(byte[] data) => (SessionInfo)_serializer.FromBinary(data, BrokerSerializer.SessionInfoManifest);
}

/// <summary>
/// The sessions no node runs (at rest in the catalog), for the admin API: it merges them with the pages of the nodes'
/// session indexes, where a session that is running is listed instead.
/// </summary>
public sealed class RestingSessions(SessionCatalogStore store, SessionInfoCodec codec)
{
    public async Task<SessionsPage> ListAsync(ListSessions query, int maxRows)
    {
        // At rest means disconnected; no AMQP connection rests; the user name of a session at rest is not kept.
        if (query.State == SessionStateFilter.Connected || query.ProtocolLevel == 0 || query.Username is not null)
        {
            return new SessionsPage("", [], false);
        }
        var limit = query.Limit > 0 ? Math.Min(query.Limit, maxRows) : maxRows;
        if (query.ProtocolLevel is not { } level)
        {
            var (rows, more) = await store.ListRestingAsync(query.After, query.Prefix, limit).ConfigureAwait(false);
            return new SessionsPage("", [.. rows.Select(r => Info(r.ClientId, r.Info))], more);
        }
        // Filtered by protocol: read on in batches until a page of matches (or the end), so the cursor stays exact.
        var found = new List<SessionInfo>();
        var after = query.After;
        while (true)
        {
            var (rows, more) = await store.ListRestingAsync(after, query.Prefix, Math.Max(limit, 500)).ConfigureAwait(false);
            foreach (var (clientId, data) in rows)
            {
                var info = Info(clientId, data);
                if (info.ProtocolLevel != level)
                {
                    continue;
                }
                if (found.Count == limit)
                {
                    return new SessionsPage("", found, true);
                }
                found.Add(info);
            }
            if (!more || rows.Count == 0)
            {
                return new SessionsPage("", found, false);
            }
            after = rows[^1].ClientId;
        }
    }

    public Task<long> CountAsync() => store.CountRestingAsync();

    /// <summary>Every session at rest, in client ID order, read in batches (for the subscription lists, which need them all).</summary>
    public async IAsyncEnumerable<SessionInfo> AllAsync(string? after = null)
    {
        while (true)
        {
            var (rows, more) = await store.ListRestingAsync(after, "", 1000).ConfigureAwait(false);
            foreach (var (clientId, data) in rows)
            {
                yield return Info(clientId, data);
            }
            if (!more || rows.Count == 0)
            {
                yield break;
            }
            after = rows[^1].ClientId;
        }
    }

    public async Task<SessionInfo?> FindAsync(string clientId)
    {
        var (resting, info) = await store.FindRestingAsync(clientId).ConfigureAwait(false);
        return resting ? Info(clientId, info) : null;
    }

    /// <summary>A row imported from an older journal has no summary until its session has run once: it is listed by ID only.</summary>
    private SessionInfo Info(string clientId, byte[]? data) => data is null
        ? new SessionInfo(clientId, false, 0, false, 0, null, null, 0, 0, 0, false, false, false, 0, 0, [], "")
        : codec.Decode(data) with { ClientId = clientId, Connected = false, Node = "" };
}
