using System.Buffers;

namespace Broker.Edge.Amqp;

/// <summary>
/// The 8 bytes a client sends before its first frame.
/// <code>
/// +-----+-----+-----+-----+------+----------+---------+----------+
/// | 'A' | 'M' | 'Q' | 'P' | 0x00 | major 0  | minor 9 | rev 1    |
/// +-----+-----+-----+-----+------+----------+---------+----------+
/// </code>
/// Any other header (another AMQP version, HTTP, TLS) is answered with <see cref="Bytes"/> and the socket closed.
/// </summary>
public static class AmqpProtocolHeader
{
    public const int Length = 8;

    public static ReadOnlySpan<byte> Bytes => [(byte)'A', (byte)'M', (byte)'Q', (byte)'P', 0, 0, 9, 1];

    /// <summary>
    /// False while fewer than 8 bytes are in and they agree with the header so far. Otherwise true, with
    /// <paramref name="valid"/> telling whether they were the 0-9-1 header, and <paramref name="buffer"/> advanced
    /// past the bytes looked at: all 8, or fewer when a difference showed before 8 arrived (no need to wait
    /// for the rest of a "GET /" to refuse it).
    /// </summary>
    public static bool TryRead(ref ReadOnlySequence<byte> buffer, out bool valid)
    {
        var available = (int)Math.Min(buffer.Length, Length);
        Span<byte> received = stackalloc byte[Length];
        buffer.Slice(0, available).CopyTo(received);
        valid = received[..available].SequenceEqual(Bytes[..available]);
        if (valid && available < Length)
        {
            return false;
        }
        buffer = buffer.Slice(available);
        return true;
    }
}
