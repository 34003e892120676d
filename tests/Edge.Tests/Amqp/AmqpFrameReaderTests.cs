using System.Buffers;
using Broker.Actors.Amqp.Content;
using Broker.Edge.Amqp;

namespace Broker.Edge.Tests.Amqp;

public class AmqpFrameReaderTests
{
    /// <summary>A publish as a client sends it, then a heartbeat: four kinds of frame back to back.</summary>
    private static readonly byte[] Stream = BuildStream();

    private static byte[] BuildStream()
    {
        var output = new ArrayBufferWriter<byte>();
        AmqpFrameWriter.WriteMethod(output, 1, new BasicPublish("ex", "rk", true, false));
        AmqpFrameWriter.WriteContent(output, 1, BasicPropertiesCodec.Write(new BasicProperties { DeliveryMode = 2 }), "hello, frames"u8, frameMax: 24);
        AmqpFrameWriter.WriteHeartbeat(output);
        AmqpFrameWriter.WriteMethod(output, 65535, new BasicAck(1, false));
        return output.WrittenSpan.ToArray();
    }

    private static List<(byte Type, ushort Channel, string Payload)> ReadAll(ReadOnlySequence<byte> buffer, out long rest)
    {
        var frames = new List<(byte, ushort, string)>();
        while (AmqpFrameReader.TryRead(ref buffer, 4096, out var frame) == AmqpFrameStatus.Complete)
        {
            frames.Add((frame.Type, frame.Channel, Convert.ToHexString(frame.Payload.ToArray())));
        }
        rest = buffer.Length;
        return frames;
    }

    [Fact]
    public void Back_to_back_frames_are_read_in_order()
    {
        var frames = ReadAll(new ReadOnlySequence<byte>(Stream), out var rest);

        Assert.Equal(0, rest);
        Assert.Equal(
            [AmqpFrameType.Method, AmqpFrameType.Header, AmqpFrameType.Body, AmqpFrameType.Heartbeat, AmqpFrameType.Method],
            frames.Select(f => f.Type));
        Assert.Equal([1, 1, 1, 0, 65535], frames.Select(f => (int)f.Channel));
        Assert.Equal(Convert.ToHexString("hello, frames"u8), frames[2].Payload);
        Assert.Equal("", frames[3].Payload);
    }

    [Fact]
    public void A_stream_cut_at_any_byte_reads_the_same_frames()
    {
        var whole = ReadAll(new ReadOnlySequence<byte>(Stream), out _);
        for (var cut = 0; cut <= Stream.Length; cut++)
        {
            Assert.Equal(whole, ReadAll(Segments.Split(Stream, cut), out var rest));
            Assert.Equal(0, rest);
        }
        Assert.Equal(whole, ReadAll(Segments.Bytewise(Stream), out _));
    }

    [Fact]
    public void Bytes_arriving_one_at_a_time_give_each_frame_once_it_is_complete()
    {
        var expected = ReadAll(new ReadOnlySequence<byte>(Stream), out _);
        var frames = new List<(byte, ushort, string)>();
        var pending = Array.Empty<byte>();
        foreach (var b in Stream)
        {
            pending = [.. pending, b];
            var buffer = Segments.Bytewise(pending);
            AmqpFrameStatus status;
            while ((status = AmqpFrameReader.TryRead(ref buffer, 4096, out var frame)) == AmqpFrameStatus.Complete)
            {
                frames.Add((frame.Type, frame.Channel, Convert.ToHexString(frame.Payload.ToArray())));
            }
            Assert.Equal(AmqpFrameStatus.Incomplete, status);
            pending = buffer.ToArray();
        }
        Assert.Equal(expected, frames);
        Assert.Empty(pending);
    }

    [Fact]
    public void An_oversized_frame_is_refused_from_its_header_alone()
    {
        // Only the 7-byte header has arrived: method frame, channel 1, payload 4089 (frame 4097).
        var buffer = new ReadOnlySequence<byte>([0x01, 0x00, 0x01, 0x00, 0x00, 0x0F, 0xF9]);

        Assert.Equal(AmqpFrameStatus.TooLarge, AmqpFrameReader.TryRead(ref buffer, 4096, out _));
        Assert.Equal(7, buffer.Length);

        // One byte less fits exactly: the reader waits for the payload.
        var fits = new ReadOnlySequence<byte>([0x01, 0x00, 0x01, 0x00, 0x00, 0x0F, 0xF8]);
        Assert.Equal(AmqpFrameStatus.Incomplete, AmqpFrameReader.TryRead(ref fits, 4096, out _));
    }

    [Fact]
    public void Frame_max_0_still_caps_frames_at_128_MiB()
    {
        var atCap = new ReadOnlySequence<byte>([0x03, 0x00, 0x01, 0x07, 0xFF, 0xFF, 0xF8]);
        var overCap = new ReadOnlySequence<byte>([0x03, 0x00, 0x01, 0x07, 0xFF, 0xFF, 0xF9]);
        var huge = new ReadOnlySequence<byte>([0x03, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFF]);

        Assert.Equal(AmqpFrameStatus.Incomplete, AmqpFrameReader.TryRead(ref atCap, 0, out _));
        Assert.Equal(AmqpFrameStatus.TooLarge, AmqpFrameReader.TryRead(ref overCap, 0, out _));
        Assert.Equal(AmqpFrameStatus.TooLarge, AmqpFrameReader.TryRead(ref huge, 0, out _));
        Assert.Equal(AmqpFrameStatus.TooLarge, AmqpFrameReader.TryRead(ref huge, uint.MaxValue, out _));
    }

    [Fact]
    public void A_frame_without_its_end_octet_is_malformed()
    {
        byte[] frame = [0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xCD];
        var buffer = new ReadOnlySequence<byte>(frame);

        Assert.Equal(AmqpFrameStatus.Malformed, AmqpFrameReader.TryRead(ref buffer, 4096, out _));
        Assert.Equal(8, buffer.Length);
    }

    [Fact]
    public void An_end_octet_in_the_wrong_place_is_malformed()
    {
        // The size says 2 but 3 payload bytes precede 0xCE: the byte after 2 is not the frame end.
        var buffer = new ReadOnlySequence<byte>([0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0xAA, 0xBB, 0xCC, 0xCE]);

        Assert.Equal(AmqpFrameStatus.Malformed, AmqpFrameReader.TryRead(ref buffer, 4096, out _));
    }

    [Theory]
    [InlineData(0x00)]
    [InlineData(0x04)]
    [InlineData((byte)'A')]
    public void An_unknown_frame_type_is_malformed_without_waiting_for_the_payload(byte type)
    {
        var buffer = new ReadOnlySequence<byte>([type, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00]);

        Assert.Equal(AmqpFrameStatus.Malformed, AmqpFrameReader.TryRead(ref buffer, 4096, out _));
    }

    [Fact]
    public void A_frame_missing_only_its_end_octet_is_incomplete()
    {
        var buffer = new ReadOnlySequence<byte>(Stream.AsMemory(0, 7 + 13));

        Assert.Equal(AmqpFrameStatus.Incomplete, AmqpFrameReader.TryRead(ref buffer, 4096, out _));
        Assert.Equal(20, buffer.Length);
    }

    [Fact]
    public void The_protocol_header_is_recognised_whole_or_in_pieces()
    {
        byte[] header = [.. AmqpProtocolHeader.Bytes, 0x01];

        var whole = new ReadOnlySequence<byte>(header);
        Assert.True(AmqpProtocolHeader.TryRead(ref whole, out var valid));
        Assert.True(valid);
        Assert.Equal(1, whole.Length);

        var pieces = Segments.Split(header, 2, 5);
        Assert.True(AmqpProtocolHeader.TryRead(ref pieces, out valid));
        Assert.True(valid);

        var partial = new ReadOnlySequence<byte>(header.AsMemory(0, 5));
        Assert.False(AmqpProtocolHeader.TryRead(ref partial, out _));
        Assert.Equal(5, partial.Length);
    }

    [Fact]
    public void Another_protocol_header_is_refused_as_soon_as_it_differs()
    {
        var amqp10 = new ReadOnlySequence<byte>([(byte)'A', (byte)'M', (byte)'Q', (byte)'P', 0, 1, 0, 0]);
        Assert.True(AmqpProtocolHeader.TryRead(ref amqp10, out var valid));
        Assert.False(valid);

        var http = new ReadOnlySequence<byte>("GET"u8.ToArray());
        Assert.True(AmqpProtocolHeader.TryRead(ref http, out valid));
        Assert.False(valid);

        var otherProtocolId = new ReadOnlySequence<byte>([(byte)'A', (byte)'M', (byte)'Q', (byte)'P', 2]);
        Assert.True(AmqpProtocolHeader.TryRead(ref otherProtocolId, out valid));
        Assert.False(valid);
    }
}
