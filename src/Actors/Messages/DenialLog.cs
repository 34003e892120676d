using Akka.Event;

namespace Broker.Actors.Messages;

/// <summary>
/// Logs denials (failed logins, refused topics) at a bounded rate: at most <see cref="LinesPerWindow"/> lines each
/// <see cref="WindowMs"/>, then one line saying how many were not logged. A flood of bad logins cannot fill the disk,
/// and every denial is still counted (<see cref="BrokerCounters"/>).
/// </summary>
public sealed class DenialLog
{
    public const int LinesPerWindow = 20;
    public const long WindowMs = 10_000;

    private readonly Func<long> _nowMs;
    private readonly object _gate = new();
    private long _windowEnd;
    private int _logged;
    private long _suppressed;

    public DenialLog(Func<long>? nowMs = null) => _nowMs = nowMs ?? (() => Environment.TickCount64);

    /// <summary>The node's one log of denials.</summary>
    public static DenialLog Shared { get; } = new();

    /// <summary>Logs <paramref name="line"/> if the window has room; returns whether it did.</summary>
    public bool Write(ILoggingAdapter log, string line)
    {
        long suppressed;
        lock (_gate)
        {
            var now = _nowMs();
            suppressed = 0;
            if (now >= _windowEnd)
            {
                suppressed = _suppressed;
                _suppressed = 0;
                _logged = 0;
                _windowEnd = now + WindowMs;
            }
            if (_logged >= LinesPerWindow)
            {
                _suppressed++;
                return false;
            }
            _logged++;
        }
        if (suppressed > 0)
        {
            log.Warning("{0} more denials in the last {1} s were counted but not logged", suppressed, WindowMs / 1000);
        }
        log.Warning(line);
        return true;
    }
}
