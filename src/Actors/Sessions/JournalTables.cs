using Akka.Actor;
using Akka.Persistence;

namespace Broker.Actors.Sessions;

/// <summary>
/// Session journals are read and written with plain SQL on Akka.Persistence.Sql's tables (<see cref="SessionJournalTables"/>),
/// which that plugin creates when its journal and snapshot store first run. At start-up the node recovers this empty
/// persistent actor, which loads a snapshot and replays events through both, so the tables exist (in the plugin's own
/// layout) before any session touches them.
/// </summary>
internal sealed class JournalTablesProbe : UntypedPersistentActor
{
    private readonly TaskCompletionSource<bool> _done;

    public JournalTablesProbe(TaskCompletionSource<bool> done) => _done = done;

    public override string PersistenceId => "broker-journal-tables";

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _done.TrySetException(reason);
        base.OnRecoveryFailure(reason, message);
    }

    protected override void OnRecover(object message)
    {
        if (message is RecoveryCompleted)
        {
            _done.TrySetResult(true);
        }
    }

    protected override void OnCommand(object message) => Unhandled(message);
}

/// <summary>See <see cref="JournalTablesProbe"/>.</summary>
public static class JournalTables
{
    /// <summary>Completes once the journal and the snapshot store have answered a recovery; fails with the recovery's error.</summary>
    public static async Task EnsureAsync(ActorSystem system, TimeSpan timeout, CancellationToken ct = default)
    {
        var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var probe = system.ActorOf(Props.Create(() => new JournalTablesProbe(done)));
        try
        {
            await done.Task.WaitAsync(timeout, ct).ConfigureAwait(false);
        }
        finally
        {
            system.Stop(probe);
        }
    }

}
