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

/// <summary>Journal → catalog: load this session's journal; answered with <see cref="JournalLoaded"/>.</summary>
public sealed record JournalLoad(string ClientId);

/// <summary><paramref name="Journal"/> is null when it could not be read.</summary>
public sealed record JournalLoaded(StoredJournal? Journal);

/// <summary>Journal → catalog: make <paramref name="Change"/> durable; answered with <see cref="JournalStored"/>.</summary>
public sealed record JournalStore(JournalChange Change, long Token);

public sealed record JournalStored(long Token, bool Ok);

/// <summary>
/// This node's access to the <see cref="SessionCatalogStore"/>: catalog rows and session journals. Changes, lookups and
/// journal loads from every session of the node are gathered while a round trip runs and go in the next one: all
/// changes (catalog rows, then journal events, snapshots and deletions, each in the order sent) in one transaction,
/// followed by one query for all lookups and one for all loads. A lookup or load therefore always sees every change
/// sent before it, and a session's journal changes are durable in the order it sent them.
/// When the transaction fails, its changes are tried again one at a time, so a refused change (a stale writer's
/// sequence number) fails only its own session, and every later change of that session in the batch with it.
/// </summary>
public sealed class SessionCatalog : UntypedActor
{
    public const string Name = "session-catalog";

    private sealed record Flushed(Exception? Error, bool CatalogOk, bool[]? JournalOk, HashSet<string>? Found, Dictionary<string, StoredJournal>? Loaded);

    private sealed class Batch
    {
        public readonly List<CatalogChange> Changes = [];
        public readonly List<(IActorRef Session, long Token)> WriteWaiters = [];
        public readonly List<JournalChange> Journal = [];
        public readonly List<(IActorRef Journal, long Token)> JournalWaiters = [];
        public readonly List<(IActorRef Session, string ClientId)> Lookups = [];
        public readonly List<(IActorRef Journal, string ClientId)> Loads = [];

        public bool IsEmpty => Changes.Count == 0 && Journal.Count == 0 && Lookups.Count == 0 && Loads.Count == 0;
    }

    private readonly SessionCatalogStore _store;
    private readonly string _host;
    private readonly Akka.Dispatch.MessageDispatcher? _databaseDispatcher;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private Batch _next = new();
    private Batch? _flushing;

    /// <param name="databaseDispatcher">
    /// The dispatcher whose threads run each round trip, when the database driver blocks the calling thread (SQLite);
    /// null runs them on the thread pool (PostgreSQL's driver waits without a thread).
    /// </param>
    public static Props Props(SessionCatalogStore store, string host, string? databaseDispatcher = null) =>
        Akka.Actor.Props.Create(() => new SessionCatalog(store, host, databaseDispatcher));

    public SessionCatalog(SessionCatalogStore store, string host, string? databaseDispatcher = null)
    {
        _store = store;
        _host = host;
        _databaseDispatcher = databaseDispatcher is null ? null : Context.System.Dispatchers.Lookup(databaseDispatcher);
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case CatalogLookup l:
                _next.Lookups.Add((Sender, l.ClientId));
                MaybeFlush();
                break;
            case CatalogPut p:
                _next.Changes.Add(new CatalogChange(p.ClientId, new CatalogEntry(p.Resting ? "" : _host, p.DueAtMs, p.Routes, p.Info)));
                _next.WriteWaiters.Add((Sender, p.Token));
                MaybeFlush();
                break;
            case CatalogRemove r:
                _next.Changes.Add(new CatalogChange(r.ClientId, null));
                MaybeFlush();
                break;
            case JournalStore j:
                _next.Journal.Add(j.Change);
                _next.JournalWaiters.Add((Sender, j.Token));
                MaybeFlush();
                break;
            case JournalLoad l:
                _next.Loads.Add((Sender, l.ClientId));
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
        if (_flushing is not null || _next.IsEmpty)
        {
            return;
        }
        var batch = _flushing = _next;
        _next = new Batch();
        var store = _store;
        if (_databaseDispatcher is null)
        {
            Task.Run(() => FlushAsync(store, batch)).PipeTo(Self);
            return;
        }
        var self = Self;
        _databaseDispatcher.Schedule(() => FlushAsync(store, batch).PipeTo(self));
    }

    private static async Task<Flushed> FlushAsync(SessionCatalogStore store, Batch batch)
    {
        Exception? error = null;
        var catalogOk = true;
        bool[]? journalOk = null;
        try
        {
            await store.WriteAsync(batch.Changes, batch.Journal).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            error = e;
            catalogOk = await TryAsync(() => store.WriteAsync(batch.Changes, [])).ConfigureAwait(false);
            journalOk = new bool[batch.Journal.Count];
            var failed = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < batch.Journal.Count; i++)
            {
                var change = batch.Journal[i];
                journalOk[i] = !failed.Contains(change.PersistenceId)
                    && await TryAsync(() => store.WriteAsync([], [change])).ConfigureAwait(false);
                if (!journalOk[i])
                {
                    failed.Add(change.PersistenceId);
                }
            }
        }
        HashSet<string>? found = null;
        Dictionary<string, StoredJournal>? loaded = null;
        try
        {
            found = await store.ExistingAsync(batch.Lookups.Select(l => l.ClientId).Distinct(StringComparer.Ordinal).ToList()).ConfigureAwait(false);
            loaded = await store.LoadJournalsAsync(batch.Loads.Select(l => l.ClientId).Distinct(StringComparer.Ordinal).ToList()).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            error ??= e;
        }
        return new Flushed(error, catalogOk, journalOk, found, loaded);
    }

    private static async Task<bool> TryAsync(Func<Task> write)
    {
        try
        {
            await write().ConfigureAwait(false);
            return true;
        }
        catch (Exception)
        {
            return false;
        }
    }

    private void OnFlushed(Flushed f)
    {
        var batch = _flushing!;
        if (f.Error is not null)
        {
            _log.Error(f.Error, "session catalog: a batch of {0} catalog changes, {1} journal changes, {2} lookups and {3} loads failed; " +
                "catalog changes {4}, journal changes refused {5}",
                batch.Changes.Count, batch.Journal.Count, batch.Lookups.Count, batch.Loads.Count,
                f.CatalogOk ? "written" : "failed", f.JournalOk?.Count(ok => !ok) ?? 0);
        }
        foreach (var (session, token) in batch.WriteWaiters)
        {
            session.Tell(new CatalogWritten(token, f.CatalogOk));
        }
        for (var i = 0; i < batch.JournalWaiters.Count; i++)
        {
            var (journal, token) = batch.JournalWaiters[i];
            journal.Tell(new JournalStored(token, f.JournalOk is null || f.JournalOk[i]));
        }
        foreach (var (session, clientId) in batch.Lookups)
        {
            session.Tell(new CatalogFound(clientId, f.Found is null || f.Found.Contains(clientId)));
        }
        foreach (var (journal, clientId) in batch.Loads)
        {
            journal.Tell(new JournalLoaded(f.Loaded is null ? null : f.Loaded[clientId]));
        }
        _flushing = null;
        MaybeFlush();
    }
}
