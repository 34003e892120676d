namespace Broker.Actors.Messages;

/// <summary>One MQTT 5 user property; order and duplicates are kept as published.</summary>
public readonly record struct UserProperty(string Name, string Value);

/// <summary>
/// An application message as it travels from a publisher through routing to sessions.
/// Immutable: the payload array is never written after construction. <paramref name="Id"/> is random and
/// non-zero for QoS 1/2 publishes (0 otherwise): a session recognises a message resent to it after a node
/// failure by it.
/// </summary>
public sealed record PublishedMessage(
    string Topic,
    byte[] Payload,
    byte Qos,
    bool Retain,
    string? ContentType = null,
    string? ResponseTopic = null,
    byte[]? CorrelationData = null,
    byte PayloadFormat = 0,
    long ExpiresAtUnixMs = 0,
    IReadOnlyList<UserProperty>? UserProperties = null,
    string? OriginClientId = null,
    long Id = 0)
{
    /// <summary>
    /// An upper estimate of the serialized size in bytes (strings counted at 3 bytes a char), used to keep
    /// replies that carry many messages within one cluster frame (see <see cref="RemoteChunks"/>).
    /// </summary>
    public long ApproximateSize
    {
        get
        {
            long size = 64 + 3L * (Topic.Length + (ContentType?.Length ?? 0) + (ResponseTopic?.Length ?? 0) + (OriginClientId?.Length ?? 0))
                + Payload.Length + (CorrelationData?.Length ?? 0);
            if (UserProperties is not null)
            {
                foreach (var p in UserProperties)
                {
                    size += 8 + 3L * (p.Name.Length + p.Value.Length);
                }
            }
            return size;
        }
    }

    public bool IsExpired(long nowUnixMs) => ExpiresAtUnixMs != 0 && nowUnixMs >= ExpiresAtUnixMs;

    /// <summary>Seconds left of the message expiry interval, rounded up; 0 when the message never expires.</summary>
    public uint RemainingExpirySeconds(long nowUnixMs)
    {
        if (ExpiresAtUnixMs == 0)
        {
            return 0;
        }
        var left = ExpiresAtUnixMs - nowUnixMs;
        return left <= 0 ? 1 : (uint)Math.Min((left + 999) / 1000, uint.MaxValue);
    }
}
