using Akka.Actor;
using Akka.Event;
using Akka.Persistence;

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
/// query or write. It rebuilds the state on recovery and hands it to the session, then writes, snapshots and deletes
/// on the session's behalf, answering each request in order once it is durable.
/// </summary>
public sealed class SessionJournal : UntypedPersistentActor
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly bool _fresh;
    private SessionState? _recovering;
    private long _deleteToken;
    private long _deleteUpTo = -1;
    private bool _messagesDeleted;
    private bool _snapshotsDeleted;

    /// <param name="fresh">The catalog had no row: nothing to replay, so recovery only reads the highest sequence number.</param>
    public static Props Props(string clientId, bool fresh) =>
        Akka.Actor.Props.Create(() => new SessionJournal(clientId, fresh)).WithMailbox(Dispatch.CompactMailbox.ConfigPath);

    public SessionJournal(string clientId, bool fresh)
    {
        _fresh = fresh;
        _recovering = SessionState.Empty(clientId);
        PersistenceId = PersistenceIdOf(clientId);
    }

    public static string PersistenceIdOf(string clientId) => "session-" + clientId;

    public override string PersistenceId { get; }

    public override Recovery Recovery => _fresh ? new Recovery(SnapshotSelectionCriteria.None, 0) : Recovery.Default;

    protected override void OnRecover(object message)
    {
        switch (message)
        {
            case SnapshotOffer { Snapshot: SessionState s }:
                _recovering = s;
                break;
            case SessionHandedOff h:
                _recovering = h.State;
                break;
            case ISessionEvent e:
                _recovering = _recovering!.Apply(e);
                break;
            case RecoveryCompleted:
                Context.Parent.Tell(new JournalRecovered(_recovering!, LastSequenceNr));
                _recovering = null;
                break;
        }
    }

    protected override void OnCommand(object message)
    {
        switch (message)
        {
            case JournalWrite w:
                if (w.Events.Count > 0)
                {
                    PersistAllAsync(w.Events, _ => { });
                }
                var parent = Context.Parent;
                DeferAsync(w.Token, t => parent.Tell(new JournalDone(t, LastSequenceNr)));
                break;
            case JournalSnapshot s:
                SaveSnapshot(s.State);
                break;
            case JournalDeleteAll d:
                DeferAsync(d.Token, t =>
                {
                    _deleteToken = t;
                    _deleteUpTo = LastSequenceNr;
                    _messagesDeleted = _snapshotsDeleted = false;
                    DeleteMessages(LastSequenceNr);
                    DeleteSnapshots(new SnapshotSelectionCriteria(LastSequenceNr));
                });
                break;
            case SaveSnapshotSuccess s:
                DeleteMessages(s.Metadata.SequenceNr);
                DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1));
                break;
            case SaveSnapshotFailure f:
                _log.Warning(f.Cause, "{0}: snapshot failed", PersistenceId);
                break;
            case DeleteMessagesSuccess d:
                DeleteDone(messages: d.ToSequenceNr >= _deleteUpTo, snapshots: false);
                break;
            case DeleteSnapshotsSuccess d:
                DeleteDone(messages: false, snapshots: d.Criteria.MaxSequenceNr >= _deleteUpTo);
                break;
            case DeleteMessagesFailure f:
                _log.Warning(f.Cause, "{0}: journal cleanup failed", PersistenceId);
                DeleteDone(messages: f.ToSequenceNr >= _deleteUpTo, snapshots: false);
                break;
            case DeleteSnapshotsFailure f:
                _log.Warning(f.Cause, "{0}: snapshot cleanup failed", PersistenceId);
                DeleteDone(messages: false, snapshots: f.Criteria.MaxSequenceNr >= _deleteUpTo);
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    /// <summary>
    /// Answers a <see cref="JournalDeleteAll"/> once events and snapshots up to its sequence number are gone (the clean-up
    /// after a snapshot answers too; only one reaching as far counts).
    /// </summary>
    private void DeleteDone(bool messages, bool snapshots)
    {
        if (_deleteUpTo < 0)
        {
            return;
        }
        _messagesDeleted |= messages;
        _snapshotsDeleted |= snapshots;
        if (_messagesDeleted && _snapshotsDeleted)
        {
            _deleteUpTo = -1;
            Context.Parent.Tell(new JournalDone(_deleteToken, LastSequenceNr));
        }
    }
}
