using System.Buffers;
using System.Buffers.Binary;

namespace Broker.Edge.Amqp;

/// <summary>
/// Writes frames straight into an output buffer (the connection's <c>SocketOutput</c>): one <c>GetSpan</c> per frame, no
/// intermediate copies. Frame layout as in <see cref="AmqpFrameReader"/>.
/// </summary>
public static class AmqpFrameWriter
{
    /// <summary>Body frame payload size when frame-max is 0 (no limit): big bodies still go out in pieces of this size.</summary>
    public const int UnlimitedBodyChunk = 128 * 1024;

    private const int HeaderSize = 7;
    private const ushort BasicClassId = 60;

    /// <summary>
    /// Content header payload before the properties.
    /// <code>
    /// +-----------+------------+----------------+----------------------------------------+
    /// | class (2) | weight (2) | body size (8)  | property flags (2) + properties         |
    /// |   = 60    |    = 0     |                | (rawProperties, verbatim)               |
    /// +-----------+------------+----------------+----------------------------------------+
    /// </code>
    /// </summary>
    private const int ContentHeaderFixedSize = 12;

    /// <exception cref="ArgumentException">a short string over 255 UTF-8 bytes, or a table value with no field type; nothing was written.</exception>
    public static void WriteMethod(IBufferWriter<byte> output, ushort channel, AmqpMethod method)
    {
        var span = output.GetSpan(HeaderSize + 4 + method.MaxArgumentsSize() + 1);
        var size = AmqpMethodCodec.Write(method, span[HeaderSize..]);
        WriteHeader(span, AmqpFrameType.Method, channel, size);
        span[HeaderSize + size] = AmqpFrameReader.FrameEnd;
        output.Advance(HeaderSize + size + 1);
    }

    /// <summary>
    /// The content header frame, then the body in frames of at most <paramref name="frameMax"/> bytes
    /// (payload up to frameMax − 8); no body frame for an empty body. <paramref name="rawProperties"/> starts
    /// at the property flags, as <see cref="TryReadContentHeader"/> returns it.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="frameMax"/> leaves no room for a payload byte, or the header frame does not fit in it.</exception>
    public static void WriteContent(IBufferWriter<byte> output, ushort channel, ReadOnlySpan<byte> rawProperties, ReadOnlySpan<byte> body, uint frameMax)
    {
        var headerPayload = ContentHeaderFixedSize + rawProperties.Length;
        if (frameMax != 0 && (long)headerPayload + AmqpFrameReader.FrameOverhead > frameMax)
        {
            throw new ArgumentOutOfRangeException(nameof(frameMax), frameMax, $"a content header of {headerPayload} bytes does not fit in a frame");
        }
        var header = output.GetSpan(HeaderSize + headerPayload + 1);
        WriteHeader(header, AmqpFrameType.Header, channel, headerPayload);
        BinaryPrimitives.WriteUInt16BigEndian(header[7..], BasicClassId);
        BinaryPrimitives.WriteUInt16BigEndian(header[9..], 0);
        BinaryPrimitives.WriteUInt64BigEndian(header[11..], (ulong)body.Length);
        rawProperties.CopyTo(header[(HeaderSize + ContentHeaderFixedSize)..]);
        header[HeaderSize + headerPayload] = AmqpFrameReader.FrameEnd;
        output.Advance(HeaderSize + headerPayload + 1);

        var chunk = frameMax == 0 ? UnlimitedBodyChunk : (int)Math.Min(frameMax - AmqpFrameReader.FrameOverhead, int.MaxValue);
        while (!body.IsEmpty)
        {
            var size = Math.Min(chunk, body.Length);
            var frame = output.GetSpan(HeaderSize + size + 1);
            WriteHeader(frame, AmqpFrameType.Body, channel, size);
            body[..size].CopyTo(frame[HeaderSize..]);
            frame[HeaderSize + size] = AmqpFrameReader.FrameEnd;
            output.Advance(HeaderSize + size + 1);
            body = body[size..];
        }
    }

    /// <summary>A heartbeat: type 8, channel 0, empty payload.</summary>
    public static void WriteHeartbeat(IBufferWriter<byte> output)
    {
        var span = output.GetSpan(AmqpFrameReader.FrameOverhead);
        WriteHeader(span, AmqpFrameType.Heartbeat, 0, 0);
        span[HeaderSize] = AmqpFrameReader.FrameEnd;
        output.Advance(AmqpFrameReader.FrameOverhead);
    }

    /// <summary>
    /// Splits a content header frame's payload; false when it is shorter than the fixed part and the flags word.
    /// <paramref name="rawProperties"/> starts at the property flags and is a view into <paramref name="payload"/>.
    /// </summary>
    public static bool TryReadContentHeader(ReadOnlySequence<byte> payload, out ushort classId, out ulong bodySize, out ReadOnlySequence<byte> rawProperties)
    {
        classId = 0;
        bodySize = 0;
        rawProperties = default;
        if (payload.Length < ContentHeaderFixedSize + 2)
        {
            return false;
        }
        Span<byte> fixedPart = stackalloc byte[ContentHeaderFixedSize];
        payload.Slice(0, ContentHeaderFixedSize).CopyTo(fixedPart);
        classId = BinaryPrimitives.ReadUInt16BigEndian(fixedPart);
        bodySize = BinaryPrimitives.ReadUInt64BigEndian(fixedPart[4..]);
        rawProperties = payload.Slice(ContentHeaderFixedSize);
        return true;
    }

    private static void WriteHeader(Span<byte> span, byte type, ushort channel, int size)
    {
        span[0] = type;
        BinaryPrimitives.WriteUInt16BigEndian(span[1..], channel);
        BinaryPrimitives.WriteUInt32BigEndian(span[3..], (uint)size);
    }
}
