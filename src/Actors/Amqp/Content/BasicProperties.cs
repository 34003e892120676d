namespace Broker.Actors.Amqp.Content;

/// <summary>
/// The properties of a basic-class content header (a message's metadata). A <c>null</c> property is absent
/// on the wire, which is not the same as present and empty.
/// </summary>
public sealed record BasicProperties
{
    public static BasicProperties Empty { get; } = new();

    public string? ContentType { get; init; }
    public string? ContentEncoding { get; init; }
    public FieldTable? Headers { get; init; }
    /// <summary>1 transient, 2 persistent.</summary>
    public byte? DeliveryMode { get; init; }
    public byte? Priority { get; init; }
    public string? CorrelationId { get; init; }
    public string? ReplyTo { get; init; }
    /// <summary>Per-message TTL in milliseconds, as decimal text (RabbitMQ's convention).</summary>
    public string? Expiration { get; init; }
    public string? MessageId { get; init; }
    /// <summary>Seconds since the Unix epoch.</summary>
    public ulong? Timestamp { get; init; }
    public string? Type { get; init; }
    public string? UserId { get; init; }
    public string? AppId { get; init; }
    public string? ClusterId { get; init; }
}
