using Akka.Actor;
using Akka.Event;

namespace Broker.Actors.Sessions;

/// <summary>Session → catalog: does this client ID have a row? Answered with <see cref="CatalogFound"/>.</summary>
public sealed record CatalogLookup(string ClientId);

/// <summary><paramref name="Exists"/> is also true when the catalog could not be read (the session then recovers in full).</summary>
public sealed record CatalogFound(string ClientId, bool Exists);

/// <summary>
/// Session → catalog: its row, hosted on this node (or at rest: <paramref name="Resting"/>); answered with
/// <see cref="CatalogWritten"/> once durable. See <see cref="CatalogEntry"/> for the fields.
/// </summary>
public sealed record CatalogPut(string ClientId, long Token, bool Resting, long? DueAtMs, byte[]? Routes, byte[]? Info);

public sealed record CatalogWritten(long Token, bool Ok);

/// <summary>Session → catalog: its journal is deleted, so the row goes (no answer).</summary>
public sealed record CatalogRemove(string ClientId);

/// <summary>
/// This node's access to the <see cref="SessionCatalogStore"/>: changes and lookups from every session of the node are
/// gathered while a round trip runs and go in the next one, all changes in one transaction followed by one query for
/// all lookups. A lookup therefore always sees every change sent before it.
/// </summary>
public sealed class SessionCatalog : UntypedActor
{
    public const string Name = "session-catalog";

    private sealed record Flushed(Exception? Error, HashSet<string>? Found);

    private readonly SessionCatalogStore _store;
    private readonly string _host;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private List<CatalogChange> _changes = [];
    private List<(IActorRef Session, long Token)> _writeWaiters = [];
    private List<(IActorRef Session, string ClientId)> _lookups = [];
    private List<(IActorRef Session, long Token)>? _flushingWaiters;
    private List<(IActorRef Session, string ClientId)>? _flushingLookups;

    public static Props Props(SessionCatalogStore store, string host) => Akka.Actor.Props.Create(() => new SessionCatalog(store, host));

    public SessionCatalog(SessionCatalogStore store, string host)
    {
        _store = store;
        _host = host;
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case CatalogLookup l:
                _lookups.Add((Sender, l.ClientId));
                MaybeFlush();
                break;
            case CatalogPut p:
                _changes.Add(new CatalogChange(p.ClientId, new CatalogEntry(p.Resting ? "" : _host, p.DueAtMs, p.Routes, p.Info)));
                _writeWaiters.Add((Sender, p.Token));
                MaybeFlush();
                break;
            case CatalogRemove r:
                _changes.Add(new CatalogChange(r.ClientId, null));
                MaybeFlush();
                break;
            case Flushed f:
                OnFlushed(f);
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private void MaybeFlush()
    {
        if (_flushingWaiters is not null || (_changes.Count == 0 && _lookups.Count == 0))
        {
            return;
        }
        var changes = _changes;
        var ids = _lookups.Select(l => l.ClientId).Distinct(StringComparer.Ordinal).ToList();
        _flushingWaiters = _writeWaiters;
        _flushingLookups = _lookups;
        _changes = [];
        _writeWaiters = [];
        _lookups = [];
        var store = _store;
        Task.Run(async () =>
        {
            await store.WriteAsync(changes).ConfigureAwait(false);
            return await store.ExistingAsync(ids).ConfigureAwait(false);
        }).PipeTo(Self, success: found => new Flushed(null, found), failure: e => new Flushed(e, null));
    }

    private void OnFlushed(Flushed f)
    {
        if (f.Error is not null)
        {
            _log.Error(f.Error, "session catalog: {0} changes and {1} lookups failed", _flushingWaiters!.Count, _flushingLookups!.Count);
        }
        foreach (var (session, token) in _flushingWaiters!)
        {
            session.Tell(new CatalogWritten(token, f.Error is null));
        }
        foreach (var (session, clientId) in _flushingLookups!)
        {
            session.Tell(new CatalogFound(clientId, f.Found is null || f.Found.Contains(clientId)));
        }
        _flushingWaiters = null;
        _flushingLookups = null;
        MaybeFlush();
    }
}
