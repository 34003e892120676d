using Akka.Actor;
using Akka.Event;

namespace Broker.Actors.Sessions;

/// <summary>Journal → its session: recovery is done; <paramref name="State"/> is what the journal held.</summary>
public sealed record JournalRecovered(SessionState State, long LastSequenceNr);

/// <summary>Session → journal: write <paramref name="Events"/> (may be none) and answer <see cref="JournalDone"/> once they and every earlier write are durable.</summary>
public sealed record JournalWrite(IReadOnlyList<ISessionEvent> Events, long Token);

/// <summary>Session → journal: delete every event and snapshot written so far; answered with <see cref="JournalDone"/>.</summary>
public sealed record JournalDeleteAll(long Token);

public sealed record JournalSnapshot(SessionState State);

public sealed record JournalDone(long Token, long LastSequenceNr);

/// <summary>
/// The journal of one persistent session, a child of its <see cref="SessionActor"/> that exists only while the session
/// has (or may have) journaled state: a session that lives in memory only never starts one, so it costs no journal
/// query or write. It loads the journal through the node's <see cref="SessionCatalog"/> (one query for many sessions)
/// and hands the rebuilt state to the session, then numbers, serializes and sends writes, snapshots and deletes to the
/// catalog (one transaction for many sessions), answering each request in order once it is durable. A refused write
/// (another node wrote the same sequence number: this copy of the session is stale) or an unreadable journal stops it,
/// and with it the session.
/// </summary>
public sealed class SessionJournal : UntypedActor, IWithUnboundedStash
{
    // Made when something is logged: a logger per session would be kept by every idle one.
    private static ILoggingAdapter Log => Context.GetLogger();
    private readonly IActorRef _catalog;
    private readonly string _clientId;
    private readonly Akka.Serialization.Serialization _serialization;
    private bool _loaded;
    private long _lastSequenceNr;
    private long _storeToken;

    /// <summary>Per change sent to the catalog: the sequence number after it and the session's tokens answered with it.</summary>
    private readonly Queue<(long StoreToken, long SequenceNr, List<long> Answers)> _inFlight = new();
    private List<long>? _lastAnswers;

    public static Props Props(IActorRef catalog, string clientId) =>
        Akka.Actor.Props.Create(() => new SessionJournal(catalog, clientId)).WithMailbox(Dispatch.CompactMailbox.ConfigPath);

    public SessionJournal(IActorRef catalog, string clientId)
    {
        _catalog = catalog;
        _clientId = clientId;
        PersistenceId = PersistenceIdOf(clientId);
        _serialization = Context.System.Serialization;
    }

    public static string PersistenceIdOf(string clientId) => "session-" + clientId;

    public string PersistenceId { get; }

    public IStash Stash { get; set; } = null!;

    protected override void PreStart() => _catalog.Tell(new JournalLoad(_clientId));

    protected override void OnReceive(object message)
    {
        if (!_loaded)
        {
            if (message is JournalLoaded l)
            {
                OnLoaded(l);
            }
            else
            {
                Stash.Stash();
            }
            return;
        }
        switch (message)
        {
            case JournalWrite w:
                if (w.Events.Count > 0)
                {
                    var first = _lastSequenceNr + 1;
                    _lastSequenceNr += w.Events.Count;
                    Send(new JournalAppend(PersistenceId, first, [.. w.Events.Select(Serialize)]), [w.Token]);
                }
                else if (_inFlight.Count > 0)
                {
                    _lastAnswers!.Add(w.Token); // answered with the last change sent, once every change before it is durable
                }
                else
                {
                    Context.Parent.Tell(new JournalDone(w.Token, _lastSequenceNr));
                }
                break;
            case JournalSnapshot s:
                Send(new JournalSnapshotSave(PersistenceId, _lastSequenceNr, Serialize(s.State)), []);
                break;
            case JournalDeleteAll d:
                Send(new JournalErase(PersistenceId, _lastSequenceNr), [d.Token]);
                break;
            case JournalStored stored:
                OnStored(stored);
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private void OnLoaded(JournalLoaded l)
    {
        if (l.Journal is not { } journal)
        {
            Log.Error("{0}: the journal could not be read", PersistenceId);
            Context.Stop(Self);
            return;
        }
        try
        {
            var state = journal.Snapshot is { } snapshot ? (SessionState)Deserialize(snapshot) : SessionState.Empty(_clientId);
            foreach (var (_, e) in journal.Events)
            {
                state = state.Apply((ISessionEvent)Deserialize(e));
            }
            _lastSequenceNr = journal.HighestSequenceNr;
            _loaded = true;
            Context.Parent.Tell(new JournalRecovered(state, _lastSequenceNr));
            Stash.UnstashAll();
        }
        catch (Exception e)
        {
            Log.Error(e, "{0}: the journal could not be replayed", PersistenceId);
            Context.Stop(Self);
        }
    }

    private void Send(JournalChange change, List<long> answers)
    {
        var token = ++_storeToken;
        _inFlight.Enqueue((token, _lastSequenceNr, answers));
        _lastAnswers = answers;
        _catalog.Tell(new JournalStore(change, token));
    }

    private void OnStored(JournalStored stored)
    {
        if (_inFlight.Count == 0 || _inFlight.Peek().StoreToken != stored.Token)
        {
            return;
        }
        var (_, sequenceNr, answers) = _inFlight.Dequeue();
        if (!stored.Ok)
        {
            Log.Error("{0}: a journal write was refused or failed; the session stops", PersistenceId);
            Context.Stop(Self);
            return;
        }
        foreach (var token in answers)
        {
            Context.Parent.Tell(new JournalDone(token, sequenceNr));
        }
    }

    private StoredBlob Serialize(object value)
    {
        var serializer = _serialization.FindSerializerFor(value);
        return new StoredBlob(serializer.ToBinary(value), Akka.Serialization.Serialization.ManifestFor(serializer, value), serializer.Identifier);
    }

    private object Deserialize(StoredBlob blob) => _serialization.Deserialize(blob.Payload, blob.SerializerId, blob.Manifest);
}
