namespace Broker.Edge.Security;

/// <summary>
/// The parsed contents of a file that operators edit while the node runs (passwords, ACLs, tokens): read at start (a
/// bad file stops the start), then read again when its modification time or size changes, looked at no more than
/// once a second. A changed file that does not parse is reported and the previous contents stay in force.
/// </summary>
public sealed class ReloadingFile<T> where T : class
{
    private readonly string[] _paths;
    private readonly Func<T> _load;
    private readonly Action<string> _report;
    private readonly Func<long> _nowMs;
    private volatile T _current;
    private string _stamp;
    private long _nextCheckMs;
    private int _checking;

    public ReloadingFile(string path, Func<string, T> load, Action<string> report, Func<long>? nowMs = null)
        : this([path], () => load(path), report, nowMs)
    {
    }

    /// <summary>Contents made from several files (a certificate and its key): read again when any of them changes.</summary>
    public ReloadingFile(string[] paths, Func<T> load, Action<string> report, Func<long>? nowMs = null)
    {
        _paths = paths;
        _load = load;
        _report = report;
        _nowMs = nowMs ?? (() => Environment.TickCount64);
        _stamp = Stamp();
        _current = load();
        _nextCheckMs = _nowMs() + 1000;
    }

    public string Path => string.Join(", ", _paths);

    /// <summary>The contents in force; the file is looked at again if a second has passed since the last look.</summary>
    public T Current
    {
        get
        {
            var now = _nowMs();
            if (now >= Volatile.Read(ref _nextCheckMs) && Interlocked.Exchange(ref _checking, 1) == 0)
            {
                try
                {
                    Volatile.Write(ref _nextCheckMs, now + 1000);
                    Reload(force: false);
                }
                finally
                {
                    Volatile.Write(ref _checking, 0);
                }
            }
            return _current;
        }
    }

    /// <summary>Reads the file again now (SIGHUP), or only if it changed.</summary>
    public void Reload(bool force)
    {
        string stamp;
        try
        {
            stamp = Stamp();
        }
        catch (IOException ex)
        {
            _report($"{Path}: {ex.Message}; the previous contents stay in force");
            return;
        }
        if (!force && stamp == _stamp)
        {
            return;
        }
        try
        {
            _current = _load();
            _stamp = stamp;
            _report($"{Path}: read again");
        }
        catch (Exception ex) when (ex is IOException or FormatException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            _stamp = stamp;
            _report($"{Path}: {ex.Message}; the previous contents stay in force");
        }
    }

    private string Stamp() => string.Join('|', _paths.Select(path =>
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"{path} does not exist", path);
        }
        return $"{info.LastWriteTimeUtc.Ticks}:{info.Length}";
    }));
}
