using System.Buffers;
using Broker.Edge.Mqtt;

namespace Broker.Edge.Tests.Mqtt;

public class MqttFrameReaderTests
{
    private const int NoLimit = int.MaxValue;

    // PUBLISH, QoS 0, topic "a/b", payload "hello"
    private static readonly byte[] Publish =
    [
        0x30,                          // fixed header: type 3 (PUBLISH), flags 0 (QoS 0, no DUP, no RETAIN)
        0x0A,                          // remaining length 10 = 2 + 3 + 5
        0x00, 0x03,                    // topic length 3
        0x61, 0x2F, 0x62,              // "a/b"
        0x68, 0x65, 0x6C, 0x6C, 0x6F,  // payload "hello"
    ];

    // PINGREQ
    private static readonly byte[] PingReq =
    [
        0xC0,  // fixed header: type 12 (PINGREQ), flags 0
        0x00,  // remaining length 0
    ];

    // SUBSCRIBE, packet id 10, filter "x/#" at QoS 1
    private static readonly byte[] Subscribe =
    [
        0x82,                    // fixed header: type 8 (SUBSCRIBE), flags 0b0010 (required)
        0x08,                    // remaining length 8 = 2 + 2 + 3 + 1
        0x00, 0x0A,              // packet identifier 10
        0x00, 0x03,              // filter length 3
        0x78, 0x2F, 0x23,        // "x/#"
        0x01,                    // options: maximum QoS 1
    ];

    private static FrameStatus Read(ref ReadOnlySequence<byte> buffer, out byte header, out byte[] body, out int total, int max = NoLimit)
    {
        var status = MqttFrameReader.TryRead(ref buffer, max, out header, out var b, out total);
        body = b.ToArray();
        return status;
    }

    [Fact]
    public void Publish_frame_is_read_byte_exact()
    {
        var buffer = new ReadOnlySequence<byte>(Publish);
        Assert.Equal(FrameStatus.Complete, Read(ref buffer, out var header, out var body, out var total));
        Assert.Equal(0x30, header);
        Assert.Equal(Publish.Length, total);
        Assert.Equal(Publish[2..], body);
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void Packet_with_zero_remaining_length_has_an_empty_body()
    {
        var buffer = new ReadOnlySequence<byte>(PingReq);
        Assert.Equal(FrameStatus.Complete, Read(ref buffer, out var header, out var body, out var total));
        Assert.Equal(0xC0, header);
        Assert.Empty(body);
        Assert.Equal(2, total);
        Assert.True(buffer.IsEmpty);
    }

    [Theory]
    [InlineData(0, new byte[] { 0x00 })]
    [InlineData(127, new byte[] { 0x7F })]
    [InlineData(128, new byte[] { 0x80, 0x01 })]
    [InlineData(16383, new byte[] { 0xFF, 0x7F })]
    [InlineData(16384, new byte[] { 0x80, 0x80, 0x01 })]
    [InlineData(2097151, new byte[] { 0xFF, 0xFF, 0x7F })]
    [InlineData(2097152, new byte[] { 0x80, 0x80, 0x80, 0x01 })]
    public void Remaining_length_boundaries_are_decoded_and_the_whole_body_is_returned(int remaining, byte[] encoded)
    {
        var frame = new byte[1 + encoded.Length + remaining];
        frame[0] = 0x30;
        encoded.CopyTo(frame, 1);
        // Recognisable body: first and last byte set.
        if (remaining > 0)
        {
            frame[1 + encoded.Length] = 0xAB;
            frame[^1] = 0xCD;
        }
        var withTrailer = frame.Append((byte)0xE0).ToArray();
        var buffer = new ReadOnlySequence<byte>(withTrailer);

        Assert.Equal(FrameStatus.Complete, Read(ref buffer, out _, out var body, out var total));
        Assert.Equal(frame.Length, total);
        Assert.Equal(remaining, body.Length);
        if (remaining > 0)
        {
            Assert.Equal(0xAB, body[0]);
            Assert.Equal(0xCD, body[^1]);
        }
        Assert.Equal([0xE0], buffer.ToArray());
    }

    [Fact]
    public void Largest_remaining_length_is_accepted_and_awaits_its_body()
    {
        // 268435455 = FF FF FF 7F, the largest value a four-byte variable byte integer holds.
        byte[] header = [0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x01];
        var buffer = new ReadOnlySequence<byte>(header);
        Assert.Equal(FrameStatus.Incomplete, MqttFrameReader.TryRead(ref buffer, NoLimit, out _, out _, out var total));
        Assert.Equal(1 + 4 + 268435455, total);
        Assert.Equal(header.Length, buffer.Length);
    }

    [Fact]
    public void Fifth_length_byte_is_malformed()
    {
        byte[] frame = [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00];
        var buffer = new ReadOnlySequence<byte>(frame);
        Assert.Equal(FrameStatus.Malformed, MqttFrameReader.TryRead(ref buffer, NoLimit, out _, out _, out _));
    }

    [Fact]
    public void Four_continuation_bytes_are_malformed_before_a_fifth_byte_arrives()
    {
        byte[] frame = [0x30, 0x80, 0x80, 0x80, 0x80];
        var buffer = new ReadOnlySequence<byte>(frame);
        Assert.Equal(FrameStatus.Malformed, MqttFrameReader.TryRead(ref buffer, NoLimit, out _, out _, out _));
    }

    [Fact]
    public void Declared_size_over_the_maximum_is_too_large_before_the_body_arrives()
    {
        // remaining length 16383 (FF 7F): total 3 + 16383 = 16386 bytes; only the header is here.
        byte[] header = [0x30, 0xFF, 0x7F];
        var buffer = new ReadOnlySequence<byte>(header);
        Assert.Equal(FrameStatus.TooLarge, MqttFrameReader.TryRead(ref buffer, 16385, out _, out _, out var total));
        Assert.Equal(16386, total);

        buffer = new ReadOnlySequence<byte>(header);
        Assert.Equal(FrameStatus.Incomplete, MqttFrameReader.TryRead(ref buffer, 16386, out _, out _, out _));
    }

    [Fact]
    public void Packet_of_exactly_the_maximum_size_is_accepted()
    {
        var buffer = new ReadOnlySequence<byte>(Publish);
        Assert.Equal(FrameStatus.Complete, Read(ref buffer, out _, out _, out _, max: Publish.Length));
        buffer = new ReadOnlySequence<byte>(Publish);
        Assert.Equal(FrameStatus.TooLarge, Read(ref buffer, out _, out _, out _, max: Publish.Length - 1));
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0x30 })]
    [InlineData(new byte[] { 0x30, 0x80 })]
    [InlineData(new byte[] { 0x30, 0xFF, 0xFF })]
    [InlineData(new byte[] { 0x30, 0xFF, 0xFF, 0xFF })]
    [InlineData(new byte[] { 0x30, 0x0A, 0x00, 0x03, 0x61 })]
    [InlineData(new byte[] { 0x30, 0x0A, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x68, 0x65, 0x6C, 0x6C })]
    public void Incomplete_header_or_body_needs_more_bytes_and_consumes_nothing(byte[] partial)
    {
        var buffer = new ReadOnlySequence<byte>(partial);
        Assert.Equal(FrameStatus.Incomplete, MqttFrameReader.TryRead(ref buffer, NoLimit, out _, out _, out _));
        Assert.Equal(partial, buffer.ToArray());
    }

    [Fact]
    public void Back_to_back_frames_in_one_buffer_are_read_one_after_the_other()
    {
        var stream = Publish.Concat(PingReq).Concat(Subscribe).Concat(PingReq).ToArray();
        var frames = ReadAll(new ReadOnlySequence<byte>(stream), out var rest);
        Assert.Equal(Expected, frames);
        Assert.True(rest.IsEmpty);
    }

    private static readonly (byte Header, string Body)[] Expected =
    [
        (0x30, Convert.ToHexString(Publish[2..])),
        (0xC0, ""),
        (0x82, Convert.ToHexString(Subscribe[2..])),
        (0xC0, ""),
    ];

    private static byte[] Stream => [.. Publish, .. PingReq, .. Subscribe, .. PingReq];

    private static List<(byte Header, string Body)> ReadAll(ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> rest)
    {
        var frames = new List<(byte, string)>();
        while (true)
        {
            var status = MqttFrameReader.TryRead(ref buffer, NoLimit, out var header, out var body, out var total);
            if (status == FrameStatus.Incomplete)
            {
                break;
            }
            Assert.Equal(FrameStatus.Complete, status);
            Assert.Equal(total, body.Length + (body.Length > 127 ? 3 : 2));
            frames.Add((header, Convert.ToHexString(body.ToArray())));
        }
        rest = buffer;
        return frames;
    }

    [Fact]
    public void Stream_split_in_two_at_every_byte_position_reads_the_same_frames()
    {
        var stream = Stream;
        for (var cut = 0; cut <= stream.Length; cut++)
        {
            var frames = ReadAll(Segments.Split(stream, cut), out var rest);
            Assert.True(Expected.SequenceEqual(frames), $"split at {cut}");
            Assert.True(rest.IsEmpty, $"split at {cut}");
        }
    }

    [Fact]
    public void Stream_split_into_one_segment_per_byte_reads_the_same_frames()
    {
        var frames = ReadAll(Segments.Bytewise(Stream), out var rest);
        Assert.Equal(Expected, frames);
        Assert.True(rest.IsEmpty);
    }

    [Fact]
    public void Stream_cut_at_random_positions_reads_the_same_frames()
    {
        var random = new Random(1234);
        var stream = Stream;
        for (var round = 0; round < 500; round++)
        {
            var cuts = Enumerable.Range(0, random.Next(1, 8)).Select(_ => random.Next(0, stream.Length + 1)).Order().ToArray();
            var frames = ReadAll(Segments.Split(stream, cuts), out var rest);
            Assert.True(Expected.SequenceEqual(frames), $"cuts {string.Join(",", cuts)}");
            Assert.True(rest.IsEmpty);
        }
    }

    [Fact]
    public void Stream_arriving_in_pieces_is_framed_like_a_pipe_reader_sees_it()
    {
        // Each step appends one more byte to what is buffered; complete frames are consumed as soon as they are whole.
        var stream = Stream;
        for (var cut = 1; cut < stream.Length; cut++)
        {
            var frames = new List<(byte, string)>();
            var buffered = Segments.Split(stream[..cut]);
            frames.AddRange(ReadAll(buffered, out var rest));
            var consumed = cut - (int)rest.Length;
            frames.AddRange(ReadAll(Segments.Split(stream[consumed..], cut - consumed), out rest));
            Assert.True(Expected.SequenceEqual(frames), $"first read of {cut} bytes");
            Assert.True(rest.IsEmpty);
        }
    }

    [Fact]
    public void Large_frame_split_inside_its_length_and_its_body_is_read_whole()
    {
        var frame = new byte[3 + 300];
        frame[0] = 0x30;
        frame[1] = 0xAC; // 300 = 0b10_0101100: low 7 bits 0x2C with continuation
        frame[2] = 0x02;
        for (var i = 3; i < frame.Length; i++)
        {
            frame[i] = (byte)i;
        }
        foreach (var cut in new[] { 1, 2, 3, 4, 150, 302 })
        {
            var buffer = Segments.Split(frame, cut);
            Assert.Equal(FrameStatus.Complete, Read(ref buffer, out _, out var body, out var total));
            Assert.Equal(303, total);
            Assert.Equal(frame[3..], body);
        }
    }
}
