using System.Buffers;
using System.Buffers.Binary;

namespace Broker.Edge.Amqp;

/// <summary>Frame type octets.</summary>
public static class AmqpFrameType
{
    public const byte Method = 1;
    public const byte Header = 2;
    public const byte Body = 3;
    public const byte Heartbeat = 8;
}

public enum AmqpFrameStatus
{
    /// <summary>A whole frame was read.</summary>
    Complete,
    /// <summary>More bytes are needed.</summary>
    Incomplete,
    /// <summary>The declared size exceeds the frame maximum; the payload was not awaited.</summary>
    TooLarge,
    /// <summary>The frame does not end with 0xCE, or its type is not one of the four frame types (501 frame error).</summary>
    Malformed,
}

/// <summary>One frame; <see cref="Payload"/> points into the reader's buffer and is valid until that is advanced.</summary>
public readonly struct AmqpFrame(byte type, ushort channel, ReadOnlySequence<byte> payload)
{
    /// <summary>One of <see cref="AmqpFrameType"/>.</summary>
    public byte Type { get; } = type;
    public ushort Channel { get; } = channel;
    public ReadOnlySequence<byte> Payload { get; } = payload;
}

/// <summary>
/// Splits a byte stream into AMQP 0.9.1 frames.
/// <code>
/// +------+-----------+-----------+-------------------+-----------+
/// | type | channel   | size      | payload           | frame-end |
/// | 1    | 2 (BE)    | 4 (BE)    | size bytes        | 1 = 0xCE  |
/// +------+-----------+-----------+-------------------+-----------+
///  &lt;------- 7-byte header ------&gt;                    frame = size + 8
/// </code>
/// </summary>
public static class AmqpFrameReader
{
    public const byte FrameEnd = 0xCE;

    /// <summary>Header and end octet around a payload.</summary>
    public const int FrameOverhead = 8;

    /// <summary>
    /// The largest frame accepted when the negotiated frame-max is 0 ("no limit"): a peer may not make the
    /// broker buffer gigabytes for one frame.
    /// </summary>
    public const uint UnlimitedFrameCap = 128 * 1024 * 1024;

    private const int HeaderSize = 7;

    /// <summary>
    /// Reads one frame from the front of <paramref name="buffer"/>. On <see cref="AmqpFrameStatus.Complete"/>,
    /// <paramref name="buffer"/> is advanced past the frame. The frame size (payload + 8) is checked against
    /// <paramref name="frameMax"/> (0 meaning <see cref="UnlimitedFrameCap"/>) as soon as the 7-byte header
    /// is in, so an oversized frame is refused before any of its payload is buffered.
    /// </summary>
    public static AmqpFrameStatus TryRead(ref ReadOnlySequence<byte> buffer, uint frameMax, out AmqpFrame frame)
    {
        frame = default;
        if (buffer.Length < HeaderSize)
        {
            return AmqpFrameStatus.Incomplete;
        }
        // Almost always the header sits in the first segment; copy only when it straddles two.
        var first = buffer.FirstSpan;
        Span<byte> copy = stackalloc byte[HeaderSize];
        ReadOnlySpan<byte> header = first.Length >= HeaderSize ? first : Copy(buffer, copy);
        var type = header[0];
        if (type is not (AmqpFrameType.Method or AmqpFrameType.Header or AmqpFrameType.Body or AmqpFrameType.Heartbeat))
        {
            return AmqpFrameStatus.Malformed;
        }
        var channel = BinaryPrimitives.ReadUInt16BigEndian(header[1..]);
        var size = BinaryPrimitives.ReadUInt32BigEndian(header[3..]);
        var frameSize = (long)size + FrameOverhead;
        if (frameSize > (frameMax == 0 ? UnlimitedFrameCap : frameMax))
        {
            return AmqpFrameStatus.TooLarge;
        }
        if (buffer.Length < frameSize)
        {
            return AmqpFrameStatus.Incomplete;
        }
        var endAt = HeaderSize + size;
        var end = endAt < first.Length ? first[(int)endAt] : ByteAt(buffer, endAt);
        if (end != FrameEnd)
        {
            return AmqpFrameStatus.Malformed;
        }
        frame = new AmqpFrame(type, channel, buffer.Slice(HeaderSize, size));
        buffer = buffer.Slice(frameSize);
        return AmqpFrameStatus.Complete;
    }

    private static byte ByteAt(ReadOnlySequence<byte> buffer, long index)
    {
        Span<byte> one = stackalloc byte[1];
        buffer.Slice(index, 1).CopyTo(one);
        return one[0];
    }

    private static ReadOnlySpan<byte> Copy(ReadOnlySequence<byte> buffer, Span<byte> destination)
    {
        buffer.Slice(0, destination.Length).CopyTo(destination);
        return destination;
    }
}
