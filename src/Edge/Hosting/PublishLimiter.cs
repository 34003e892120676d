namespace Broker.Edge.Hosting;

/// <summary>
/// The publish rate of one client (broker.limits.publish-rate-per-client, publish-bytes-per-client): token buckets of
/// messages and of bytes, each holding one second of its rate. A message larger than the byte bucket still passes
/// when the bucket is full and leaves it in debt, so every size gets through at the configured average. Created for a
/// connection only when a rate is set; used by its read loop alone.
/// </summary>
internal sealed class PublishLimiter
{
    private readonly double _messagesPerSecond;
    private readonly double _bytesPerSecond;
    private double _messages;
    private double _bytes;
    private long _atMs;

    /// <param name="messagesPerSecond">0 = no message rate.</param>
    /// <param name="bytesPerSecond">0 = no byte rate.</param>
    public PublishLimiter(double messagesPerSecond, double bytesPerSecond, long nowMs)
    {
        _messagesPerSecond = messagesPerSecond;
        _bytesPerSecond = bytesPerSecond;
        _messages = messagesPerSecond;
        _bytes = bytesPerSecond;
        _atMs = nowMs;
    }

    /// <summary>A limiter for one connection, or null when <paramref name="limits"/> set no publish rate.</summary>
    public static PublishLimiter? For(ConnectionLimits limits) =>
        limits.PublishRatePerClient > 0 || limits.PublishBytesPerClient > 0
            ? new PublishLimiter(limits.PublishRatePerClient, limits.PublishBytesPerClient, Environment.TickCount64)
            : null;

    /// <summary>
    /// Takes one message (or with <paramref name="message"/> false only bytes: an AMQP body frame) of
    /// <paramref name="bytes"/> and returns 0, or returns how many milliseconds to wait before it may pass (taking nothing).
    /// </summary>
    public long Take(long bytes, long nowMs, bool message = true)
    {
        var elapsed = Math.Max(0, nowMs - _atMs) / 1000.0;
        _atMs = nowMs;
        _messages = Math.Min(_messagesPerSecond, _messages + elapsed * _messagesPerSecond);
        _bytes = Math.Min(_bytesPerSecond, _bytes + elapsed * _bytesPerSecond);
        var wait = 0.0;
        if (message && _messagesPerSecond > 0 && _messages < 1)
        {
            wait = (1 - _messages) / _messagesPerSecond;
        }
        if (_bytesPerSecond > 0 && _bytes < Math.Min(bytes, _bytesPerSecond))
        {
            wait = Math.Max(wait, (Math.Min(bytes, _bytesPerSecond) - _bytes) / _bytesPerSecond);
        }
        if (wait > 0)
        {
            return Math.Max(1, (long)Math.Ceiling(wait * 1000));
        }
        _messages -= message ? 1 : 0;
        _bytes -= bytes;
        return 0;
    }
}
