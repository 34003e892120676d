using System.Net;

namespace Broker.Edge.Hosting;

/// <summary>Why a new connection was turned away at accept (before any of its bytes were acted on).</summary>
internal enum Refusal : byte
{
    None,

    /// <summary>The node holds broker.limits.max-connections.</summary>
    NodeFull,

    /// <summary>This listener holds broker.limits.max-connections-per-listener.</summary>
    ListenerFull,

    /// <summary>The source address opened connections faster than broker.limits.connect-rate-per-ip allows.</summary>
    ConnectRate,

    /// <summary>The source address failed to log in more often than broker.limits.failed-logins-per-ip allows.</summary>
    FailedLogins,
}

/// <summary>The connection limits of <c>broker.limits</c>, in one place.</summary>
internal sealed record ConnectionLimits
{
    /// <summary>Connections the node holds at most, all listeners together; 0 = no limit (broker.limits.max-connections).</summary>
    public int MaxConnections { get; init; }

    /// <summary>Connections one listener holds at most; 0 = no limit (broker.limits.max-connections-per-listener).</summary>
    public int MaxConnectionsPerListener { get; init; }

    /// <summary>New connections one source address may open per second, on average; 0 = no limit.</summary>
    public double ConnectRatePerIp { get; init; }

    /// <summary>New connections one source address may open at once before the rate applies.</summary>
    public int ConnectBurstPerIp { get; init; } = 1;

    /// <summary>Failed logins one source address may have in a row (refilled one per <see cref="FailedLoginRefill"/>); 0 = no limit.</summary>
    public int FailedLoginsPerIp { get; init; }

    public TimeSpan FailedLoginRefill { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>PUBLISH packets (MQTT) or basic.publish methods (AMQP) one connection may send per second; 0 = no limit.</summary>
    public double PublishRatePerClient { get; init; }

    /// <summary>Publish bytes one connection may send per second; 0 = no limit.</summary>
    public double PublishBytesPerClient { get; init; }

    /// <summary>Source addresses remembered at most for the two per-address limits.</summary>
    public int TrackedAddresses { get; init; } = 100_000;

    /// <summary>Refused connections answered in their protocol at the same time; the others are closed unanswered.</summary>
    public int RefusalsAnswered { get; init; } = 64;

    public static ConnectionLimits None { get; } = new();
}

/// <summary>
/// Decides at accept whether a new connection may stay, and keeps the counts that decide it: connections per node and
/// per listener, a token bucket of connects per source address and one of failed logins per source address. Plain
/// class, thread-safe; the listeners call <see cref="TryAdmit"/> and <see cref="Release"/>, the connection actors
/// <see cref="LoginFailed"/>.
/// </summary>
internal sealed class Admission(ConnectionLimits limits, Func<long>? nowMs = null)
{
    private readonly Func<long> _now = nowMs ?? (() => Environment.TickCount64);
    private readonly AddressBuckets _connects = new(limits.TrackedAddresses);
    private readonly AddressBuckets _failures = new(limits.TrackedAddresses);
    private int _connections;

    /// <summary>Nothing limited (tests, tools).</summary>
    public static Admission Unlimited { get; } = new(ConnectionLimits.None);

    public ConnectionLimits Limits => limits;

    /// <summary>Connections admitted and not yet released, node-wide.</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>Admits a connection from <paramref name="address"/> to the listener whose count is <paramref name="listenerCount"/>, counting it, or says why not.</summary>
    public Refusal TryAdmit(IPAddress? address, ref int listenerCount)
    {
        if (address is not null && limits.FailedLoginsPerIp > 0 && _failures.IsEmpty(address, _now(), FailureRate, limits.FailedLoginsPerIp))
        {
            return Refusal.FailedLogins;
        }
        if (address is not null && limits.ConnectRatePerIp > 0 && !_connects.TryTake(address, _now(), limits.ConnectRatePerIp, limits.ConnectBurstPerIp))
        {
            return Refusal.ConnectRate;
        }
        if (Interlocked.Increment(ref _connections) > limits.MaxConnections && limits.MaxConnections > 0)
        {
            Interlocked.Decrement(ref _connections);
            return Refusal.NodeFull;
        }
        if (Interlocked.Increment(ref listenerCount) > limits.MaxConnectionsPerListener && limits.MaxConnectionsPerListener > 0)
        {
            Interlocked.Decrement(ref listenerCount);
            Interlocked.Decrement(ref _connections);
            return Refusal.ListenerFull;
        }
        return Refusal.None;
    }

    /// <summary>An admitted connection ended.</summary>
    public void Release(ref int listenerCount)
    {
        Interlocked.Decrement(ref listenerCount);
        Interlocked.Decrement(ref _connections);
    }

    /// <summary>A login from <paramref name="address"/> was refused (wrong password, unknown or anonymous user).</summary>
    public void LoginFailed(IPAddress? address)
    {
        if (address is not null && limits.FailedLoginsPerIp > 0)
        {
            _failures.TryTake(address, _now(), FailureRate, limits.FailedLoginsPerIp);
        }
    }

    private double FailureRate => 1000.0 / limits.FailedLoginRefill.TotalMilliseconds;
}

/// <summary>
/// Token buckets per source address, at most <paramref name="capacity"/> of them: when full, buckets that have filled
/// up again (addresses quiet long enough) are forgotten; if none has, a new address is not tracked and passes (a
/// flood from more addresses than the capacity is then bounded by the node-wide limit, never by unbounded memory).
/// </summary>
internal sealed class AddressBuckets(int capacity)
{
    private sealed class Bucket
    {
        public double Tokens;
        public long AtMs;
    }

    private readonly Dictionary<IPAddress, Bucket> _buckets = [];
    private readonly Lock _gate = new();

    /// <summary>After a pruning pass that freed nothing, none runs again before this (a pass walks every bucket).</summary>
    private long _nextPruneMs;

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _buckets.Count;
            }
        }
    }

    /// <summary>Takes one token of <paramref name="address"/>'s bucket (<paramref name="perSecond"/> refill, <paramref name="burst"/> size); false when empty.</summary>
    public bool TryTake(IPAddress address, long nowMs, double perSecond, int burst)
    {
        lock (_gate)
        {
            if (!_buckets.TryGetValue(address, out var bucket))
            {
                if (_buckets.Count >= capacity && !Prune(nowMs, perSecond, burst))
                {
                    return true;
                }
                _buckets[address] = bucket = new Bucket { Tokens = burst, AtMs = nowMs };
            }
            Refill(bucket, nowMs, perSecond, burst);
            if (bucket.Tokens < 1)
            {
                return false;
            }
            bucket.Tokens -= 1;
            return true;
        }
    }

    /// <summary>True when <paramref name="address"/>'s bucket has no whole token (without taking one).</summary>
    public bool IsEmpty(IPAddress address, long nowMs, double perSecond, int burst)
    {
        lock (_gate)
        {
            if (!_buckets.TryGetValue(address, out var bucket))
            {
                return false;
            }
            Refill(bucket, nowMs, perSecond, burst);
            return bucket.Tokens < 1;
        }
    }

    private static void Refill(Bucket bucket, long nowMs, double perSecond, int burst)
    {
        bucket.Tokens = Math.Min(burst, bucket.Tokens + (nowMs - bucket.AtMs) * perSecond / 1000.0);
        bucket.AtMs = nowMs;
    }

    private bool Prune(long nowMs, double perSecond, int burst)
    {
        if (nowMs < _nextPruneMs)
        {
            return false;
        }
        var full = new List<IPAddress>();
        foreach (var (address, bucket) in _buckets)
        {
            Refill(bucket, nowMs, perSecond, burst);
            if (bucket.Tokens >= burst)
            {
                full.Add(address);
            }
        }
        foreach (var address in full)
        {
            _buckets.Remove(address);
        }
        if (full.Count == 0)
        {
            _nextPruneMs = nowMs + 1000;
        }
        return full.Count > 0;
    }
}
