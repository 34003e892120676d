using System.Data.Common;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;

namespace Broker.Actors.Storage;

/// <summary>
/// How a SQLite connection of this node waits for the database's one write lock. SQLite's own <c>busy_timeout</c>
/// sleeps between attempts in growing steps (1, 2, 5, 10, ... up to 100 ms), so two writers that take turns, such as
/// the journal and the session catalog under a burst of new sessions, leave the lock free most of the time while the
/// waiting one sleeps: measured, 2,000 new persistent sessions ran at 175/s with about a core's worth of threads
/// blocked in those sleeps. This handler yields first and then polls every millisecond, so the lock passes on within
/// about a millisecond of being released; it gives up (SQLITE_BUSY) after the same timeout as before.
/// </summary>
public static class SqliteLockWait
{
    /// <summary>How long a statement waits for the lock before it fails with SQLITE_BUSY.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private const int Yields = 20;

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate int BusyHandler(IntPtr state, int attempt);

    // Kept in a static field: native code holds the pointer for as long as the connections live.
    private static readonly BusyHandler Handler = OnBusy;

    [ThreadStatic]
    private static long _since;

    [DllImport("e_sqlite3", EntryPoint = "sqlite3_busy_handler", CallingConvention = CallingConvention.Cdecl)]
    private static extern int SetBusyHandler(IntPtr db, BusyHandler handler, IntPtr state);

    /// <summary>Installs the handler on an open connection (replacing any <c>busy_timeout</c>); other providers are left alone.</summary>
    public static void Install(DbConnection connection)
    {
        if (connection is SqliteConnection { Handle: { } db })
        {
            var rc = SetBusyHandler(db.DangerousGetHandle(), Handler, IntPtr.Zero);
            if (rc != 0)
            {
                throw new InvalidOperationException($"sqlite3_busy_handler failed with {rc}");
            }
        }
    }

    /// <summary>Called by SQLite on the thread running the statement, with the attempts made so far for this lock.</summary>
    private static int OnBusy(IntPtr state, int attempt)
    {
        if (attempt == 0)
        {
            _since = Stopwatch.GetTimestamp();
        }
        else if (Stopwatch.GetElapsedTime(_since) > Timeout)
        {
            return 0;
        }
        if (attempt < Yields)
        {
            Thread.Yield();
        }
        else
        {
            Thread.Sleep(1);
        }
        return 1;
    }
}
