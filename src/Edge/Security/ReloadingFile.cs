namespace Broker.Edge.Security;

/// <summary>
/// The parsed contents of a file that operators edit while the node runs (passwords, ACLs, tokens): read at start (a
/// bad file stops the start), then read again when its modification time or size changes, looked at no more than
/// once a second. A changed file that does not parse is reported and the previous contents stay in force.
/// </summary>
public sealed class ReloadingFile<T> where T : class
{
    private readonly string _path;
    private readonly Func<string, T> _load;
    private readonly Action<string> _report;
    private readonly Func<long> _nowMs;
    private volatile T _current;
    private (DateTime Written, long Length) _stamp;
    private long _nextCheckMs;
    private int _checking;

    public ReloadingFile(string path, Func<string, T> load, Action<string> report, Func<long>? nowMs = null)
    {
        _path = path;
        _load = load;
        _report = report;
        _nowMs = nowMs ?? (() => Environment.TickCount64);
        _stamp = Stamp();
        _current = load(path);
        _nextCheckMs = _nowMs() + 1000;
    }

    public string Path => _path;

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
        (DateTime, long) stamp;
        try
        {
            stamp = Stamp();
        }
        catch (IOException ex)
        {
            _report($"{_path}: {ex.Message}; the previous contents stay in force");
            return;
        }
        if (!force && stamp == _stamp)
        {
            return;
        }
        try
        {
            _current = _load(_path);
            _stamp = stamp;
            _report($"{_path}: read again");
        }
        catch (Exception ex) when (ex is IOException or FormatException or UnauthorizedAccessException)
        {
            _stamp = stamp;
            _report($"{_path}: {ex.Message}; the previous contents stay in force");
        }
    }

    private (DateTime, long) Stamp()
    {
        var info = new FileInfo(_path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"{_path} does not exist", _path);
        }
        return (info.LastWriteTimeUtc, info.Length);
    }
}
