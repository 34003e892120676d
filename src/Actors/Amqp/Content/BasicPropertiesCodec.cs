using System.Buffers.Binary;

namespace Broker.Actors.Amqp.Content;

/// <summary>
/// Reads and writes the property section of a basic-class content header frame. The broker keeps that
/// section as raw bytes and forwards it verbatim; the helpers here answer the few questions routing and
/// queues ask (persistent? TTL? headers?) without decoding the rest.
/// <code>
///  +---------------------+----------------------------------------------------------------+
///  | property flags (2)  | the present properties, in flag order                          |
///  +---------------------+----------------------------------------------------------------+
///   bit 15 content-type      shortstr     bit 8 expiration     shortstr
///   bit 14 content-encoding  shortstr     bit 7 message-id     shortstr
///   bit 13 headers           table        bit 6 timestamp      longlong
///   bit 12 delivery-mode     octet        bit 5 type           shortstr
///   bit 11 priority          octet        bit 4 user-id        shortstr
///   bit 10 correlation-id    shortstr     bit 3 app-id         shortstr
///   bit  9 reply-to          shortstr     bit 2 cluster-id     shortstr
///   bit 1 unused (ignored, as RabbitMQ does); bit 0 "another flags word follows", which no basic
///   property needs, so it is refused.
/// </code>
/// </summary>
public static class BasicPropertiesCodec
{
    private const int ContentTypeBit = 15;
    private const int HeadersBit = 13;
    private const int DeliveryModeBit = 12;
    private const int ExpirationBit = 8;
    private const int PriorityBit = 11;
    private const int TimestampBit = 6;

    /// <summary>Decodes the property section: <paramref name="raw"/> starts at the flags word and holds nothing after the last property.</summary>
    /// <exception cref="AmqpFormatException">truncated, a malformed property, the continuation bit, or trailing bytes.</exception>
    public static BasicProperties Read(ReadOnlySpan<byte> raw)
    {
        var reader = new AmqpReader(raw);
        var flags = ReadFlags(ref reader);
        var properties = new BasicProperties
        {
            ContentType = Has(flags, 15) ? reader.ReadShortString() : null,
            ContentEncoding = Has(flags, 14) ? reader.ReadShortString() : null,
            Headers = Has(flags, 13) ? reader.ReadTable() : null,
            DeliveryMode = Has(flags, 12) ? reader.ReadOctet() : null,
            Priority = Has(flags, 11) ? reader.ReadOctet() : null,
            CorrelationId = Has(flags, 10) ? reader.ReadShortString() : null,
            ReplyTo = Has(flags, 9) ? reader.ReadShortString() : null,
            Expiration = Has(flags, 8) ? reader.ReadShortString() : null,
            MessageId = Has(flags, 7) ? reader.ReadShortString() : null,
            Timestamp = Has(flags, 6) ? reader.ReadUInt64() : null,
            Type = Has(flags, 5) ? reader.ReadShortString() : null,
            UserId = Has(flags, 4) ? reader.ReadShortString() : null,
            AppId = Has(flags, 3) ? reader.ReadShortString() : null,
            ClusterId = Has(flags, 2) ? reader.ReadShortString() : null,
        };
        reader.EnsureEnd();
        return properties;
    }

    /// <exception cref="ArgumentException">a string property over 255 UTF-8 bytes, or a header value with no field type.</exception>
    public static byte[] Write(BasicProperties properties)
    {
        Span<byte> small = stackalloc byte[1024];
        var bound = MaxSizeOf(properties);
        var buffer = bound <= small.Length ? small : new byte[bound];
        return buffer[..Write(properties, buffer)].ToArray();
    }

    /// <summary>Writes into <paramref name="destination"/>, which must hold <see cref="MaxSizeOf"/> bytes; returns the bytes written.</summary>
    public static int Write(BasicProperties properties, Span<byte> destination)
    {
        var writer = new AmqpWriter(destination);
        writer.WriteUInt16(0);
        var flags = 0;
        void Flag(int bit) => flags |= 1 << bit;
        if (properties.ContentType is { } contentType)
        {
            Flag(15);
            writer.WriteShortString(contentType);
        }
        if (properties.ContentEncoding is { } contentEncoding)
        {
            Flag(14);
            writer.WriteShortString(contentEncoding);
        }
        if (properties.Headers is { } headers)
        {
            Flag(13);
            writer.WriteTable(headers);
        }
        if (properties.DeliveryMode is { } deliveryMode)
        {
            Flag(12);
            writer.WriteOctet(deliveryMode);
        }
        if (properties.Priority is { } priority)
        {
            Flag(11);
            writer.WriteOctet(priority);
        }
        if (properties.CorrelationId is { } correlationId)
        {
            Flag(10);
            writer.WriteShortString(correlationId);
        }
        if (properties.ReplyTo is { } replyTo)
        {
            Flag(9);
            writer.WriteShortString(replyTo);
        }
        if (properties.Expiration is { } expiration)
        {
            Flag(8);
            writer.WriteShortString(expiration);
        }
        if (properties.MessageId is { } messageId)
        {
            Flag(7);
            writer.WriteShortString(messageId);
        }
        if (properties.Timestamp is { } timestamp)
        {
            Flag(6);
            writer.WriteUInt64(timestamp);
        }
        if (properties.Type is { } type)
        {
            Flag(5);
            writer.WriteShortString(type);
        }
        if (properties.UserId is { } userId)
        {
            Flag(4);
            writer.WriteShortString(userId);
        }
        if (properties.AppId is { } appId)
        {
            Flag(3);
            writer.WriteShortString(appId);
        }
        if (properties.ClusterId is { } clusterId)
        {
            Flag(2);
            writer.WriteShortString(clusterId);
        }
        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)flags);
        return writer.Position;
    }

    /// <summary>An upper bound of the encoded size: each string counted at 3 bytes per character.</summary>
    public static int MaxSizeOf(BasicProperties p) =>
        2 + Str(p.ContentType) + Str(p.ContentEncoding) + (p.Headers is null ? 0 : FieldTableCodec.SizeOf(p.Headers)) +
        (p.DeliveryMode is null ? 0 : 1) + (p.Priority is null ? 0 : 1) + Str(p.CorrelationId) + Str(p.ReplyTo) +
        Str(p.Expiration) + Str(p.MessageId) + (p.Timestamp is null ? 0 : 8) + Str(p.Type) + Str(p.UserId) +
        Str(p.AppId) + Str(p.ClusterId);

    private static int Str(string? value) => value is null ? 0 : AmqpWriter.MaxSizeOfShortString(value);

    /// <summary>
    /// What the broker needs of every publish, in one pass that stops at the expiration: whether delivery-mode
    /// is 2 (persistent), and the expiration property (per-message TTL text, <c>null</c> when absent).
    /// </summary>
    public static (bool Persistent, string? Expiration) ReadDelivery(ReadOnlySpan<byte> raw)
    {
        var reader = new AmqpReader(raw);
        var flags = ReadFlags(ref reader);
        var persistent = false;
        for (var bit = ContentTypeBit; bit >= ExpirationBit; bit--)
        {
            if (!Has(flags, bit))
            {
                continue;
            }
            switch (bit)
            {
                case ExpirationBit:
                    return (persistent, reader.ReadShortString());
                case DeliveryModeBit:
                    persistent = reader.ReadOctet() == 2;
                    break;
                default:
                    Skip(ref reader, bit);
                    break;
            }
        }
        return (persistent, null);
    }

    /// <summary>The headers table, or <c>null</c> when absent.</summary>
    /// <param name="maxTableDepth">deepest nesting accepted (at most <see cref="FieldTableCodec.MaxDepth"/>).</param>
    public static FieldTable? ReadHeaders(ReadOnlySpan<byte> raw, int maxTableDepth = FieldTableCodec.MaxDepth)
    {
        var reader = new AmqpReader(raw, maxTableDepth);
        return SeekTo(ref reader, HeadersBit) ? reader.ReadTable() : null;
    }

    private static ushort ReadFlags(ref AmqpReader reader)
    {
        var flags = reader.ReadUInt16();
        if ((flags & 1) != 0)
        {
            throw new AmqpFormatException("property flags continuation bit set; basic properties fit in one flags word");
        }
        return flags;
    }

    private static bool Has(ushort flags, int bit) => (flags & (1 << bit)) != 0;

    /// <summary>
    /// Reads the flags and skips the present properties before <paramref name="target"/>; false when the
    /// target is absent. Skipping checks each length, so malformed input still throws.
    /// </summary>
    private static bool SeekTo(ref AmqpReader reader, int target)
    {
        var flags = ReadFlags(ref reader);
        if (!Has(flags, target))
        {
            return false;
        }
        for (var bit = ContentTypeBit; bit > target; bit--)
        {
            if (Has(flags, bit))
            {
                Skip(ref reader, bit);
            }
        }
        return true;
    }

    /// <summary>Skips the present property of flag <paramref name="bit"/>, checking its length.</summary>
    private static void Skip(ref AmqpReader reader, int bit)
    {
        switch (bit)
        {
            case HeadersBit:
                reader.ReadTableBytes();
                break;
            case DeliveryModeBit or PriorityBit:
                reader.ReadOctet();
                break;
            case TimestampBit:
                reader.ReadUInt64();
                break;
            default:
                reader.SkipShortString();
                break;
        }
    }
}
