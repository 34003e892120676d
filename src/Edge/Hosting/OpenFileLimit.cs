using System.Runtime.InteropServices;

namespace Broker.Edge.Hosting;

/// <summary>
/// Every client connection holds a file descriptor, and most systems start a process with a soft limit of 1,024. The
/// node raises its soft limit to the hard limit at start (as any process may) and logs how many connections it can
/// hold; beyond the hard limit is the operator's to raise (docs/architecture.md, "Going to a million connections").
/// </summary>
internal static partial class OpenFileLimit
{
    private const int RlimitNofile = 7; // Linux

    /// <summary>Descriptors the node keeps for itself: the database, remoting, listeners, logs and the runtime.</summary>
    public const int Reserved = 256;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Max;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrlimit(int resource, out RLimit limit);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setrlimit(int resource, in RLimit limit);

    /// <summary>The (soft, hard) limit of this process, or null where this is not Linux.</summary>
    public static (ulong Soft, ulong Hard)? Current() =>
        OperatingSystem.IsLinux() && getrlimit(RlimitNofile, out var limit) == 0 ? (limit.Current, limit.Max) : null;

    /// <summary>Sets the soft limit (tests lower it to see it raised again).</summary>
    internal static bool SetSoft(ulong soft) =>
        getrlimit(RlimitNofile, out var limit) == 0 && setrlimit(RlimitNofile, limit with { Current = soft }) == 0;

    /// <summary>Raises the soft limit to the hard one; returns (before, after), or null where this is not Linux or the call failed.</summary>
    public static (ulong Before, ulong After)? Raise()
    {
        if (!OperatingSystem.IsLinux() || getrlimit(RlimitNofile, out var limit) != 0)
        {
            return null;
        }
        var before = limit.Current;
        if (limit.Current < limit.Max)
        {
            var raised = limit with { Current = limit.Max };
            if (setrlimit(RlimitNofile, raised) == 0)
            {
                limit = raised;
            }
        }
        return (before, limit.Current);
    }
}
