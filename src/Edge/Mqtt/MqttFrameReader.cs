using System.Buffers;

namespace Broker.Edge.Mqtt;

public enum FrameStatus
{
    /// <summary>A whole packet was read.</summary>
    Complete,
    /// <summary>More bytes are needed.</summary>
    Incomplete,
    /// <summary>The remaining length is not a valid variable byte integer.</summary>
    Malformed,
    /// <summary>The declared packet size exceeds the maximum; nothing was allocated.</summary>
    TooLarge,
}

/// <summary>
/// Splits a byte stream into MQTT control packets.
/// <code>
///   byte 1        bytes 2..5 (1 to 4 bytes)                 remaining length bytes
/// +-------------+-----------------------------------------+--------------------------+
/// | type | flags| remaining length, 7 bits per byte, LSB  | variable header, payload |
/// | 4 b  | 4 b  | first; bit 7 set = another byte follows |                          |
/// +-------------+-----------------------------------------+--------------------------+
/// </code>
/// </summary>
public static class MqttFrameReader
{
    /// <summary>
    /// Reads one packet from the front of <paramref name="buffer"/>. On <see cref="FrameStatus.Complete"/>,
    /// <paramref name="body"/> is the packet after its fixed header and <paramref name="buffer"/> is advanced
    /// past it. The declared size is checked against <paramref name="maxPacketSize"/> before the body is
    /// awaited, so an oversized packet is refused without buffering it.
    /// </summary>
    public static FrameStatus TryRead(ref ReadOnlySequence<byte> buffer, int maxPacketSize, out byte fixedHeader, out ReadOnlySequence<byte> body, out int totalLength)
    {
        fixedHeader = 0;
        body = default;
        totalLength = 0;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryRead(out fixedHeader))
        {
            return FrameStatus.Incomplete;
        }
        var remaining = 0;
        var multiplier = 1;
        var lengthBytes = 0;
        while (true)
        {
            if (!reader.TryRead(out var b))
            {
                return FrameStatus.Incomplete;
            }
            lengthBytes++;
            remaining += (b & 0x7F) * multiplier;
            if ((b & 0x80) == 0)
            {
                break;
            }
            if (lengthBytes == 4)
            {
                return FrameStatus.Malformed;
            }
            multiplier *= 128;
        }
        totalLength = 1 + lengthBytes + remaining;
        if (totalLength > maxPacketSize)
        {
            return FrameStatus.TooLarge;
        }
        if (reader.Remaining < remaining)
        {
            return FrameStatus.Incomplete;
        }
        body = buffer.Slice(1 + lengthBytes, remaining);
        buffer = buffer.Slice(totalLength);
        return FrameStatus.Complete;
    }
}
