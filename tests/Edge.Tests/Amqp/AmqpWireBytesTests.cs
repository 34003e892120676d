using System.Buffers;
using Broker.Actors.Amqp.Content;
using Broker.Edge.Amqp;

namespace Broker.Edge.Tests.Amqp;

/// <summary>Frames byte for byte as the AMQP 0.9.1 spec (RabbitMQ's extended edition) lays them out.</summary>
public class AmqpWireBytesTests
{
    private static string MethodFrame(ushort channel, AmqpMethod method)
    {
        var output = new ArrayBufferWriter<byte>();
        AmqpFrameWriter.WriteMethod(output, channel, method);
        return Convert.ToHexString(output.WrittenSpan);
    }

    private static string Hex(params byte[] bytes) => Convert.ToHexString(bytes);

    [Fact]
    public void Connection_start_as_the_server_sends_it()
    {
        var start = new ConnectionStart(0, 9,
            FieldTable.Create([new("product", "broker"u8.ToArray()), new("capabilities", FieldTable.Create([new("basic.nack", true)]))]),
            "PLAIN", "en_US");

        byte[] expected =
        [
            0x01,                                           // frame type: method
            0x00, 0x00,                                     // channel 0
            0x00, 0x00, 0x00, 0x4E,                         // payload size: 78
            0x00, 0x0A, 0x00, 0x0A,                         // class 10 connection, method 10 start
            0x00,                                           // version-major 0
            0x09,                                           // version-minor 9
            0x00, 0x00, 0x00, 0x32,                         // server-properties: table of 50 bytes
            0x07, .. "product"u8, (byte)'S',                //   "product" long string
            0x00, 0x00, 0x00, 0x06, .. "broker"u8,          //     size 6, "broker"
            0x0C, .. "capabilities"u8, (byte)'F',           //   "capabilities" table
            0x00, 0x00, 0x00, 0x0D,                         //     of 13 bytes
            0x0A, .. "basic.nack"u8, (byte)'t', 0x01,       //       "basic.nack" bool true
            0x00, 0x00, 0x00, 0x05, .. "PLAIN"u8,           // mechanisms: long string "PLAIN"
            0x00, 0x00, 0x00, 0x05, .. "en_US"u8,           // locales: long string "en_US"
            0xCE,                                           // frame end
        ];

        Assert.Equal(Hex(expected), MethodFrame(0, start));
    }

    [Fact]
    public void Basic_publish()
    {
        byte[] expected =
        [
            0x01,                                           // frame type: method
            0x00, 0x01,                                     // channel 1
            0x00, 0x00, 0x00, 0x0D,                         // payload size: 13
            0x00, 0x3C, 0x00, 0x28,                         // class 60 basic, method 40 publish
            0x00, 0x00,                                     // reserved ticket
            0x02, (byte)'e', (byte)'x',                     // exchange "ex"
            0x02, (byte)'r', (byte)'k',                     // routing-key "rk"
            0x01,                                           // bits: mandatory (bit 0) set, immediate (bit 1) clear
            0xCE,                                           // frame end
        ];

        Assert.Equal(Hex(expected), MethodFrame(1, new BasicPublish("ex", "rk", Mandatory: true, Immediate: false)));
    }

    [Fact]
    public void Basic_deliver()
    {
        byte[] expected =
        [
            0x01,                                           // frame type: method
            0x00, 0x01,                                     // channel 1
            0x00, 0x00, 0x00, 0x18,                         // payload size: 24
            0x00, 0x3C, 0x00, 0x3C,                         // class 60 basic, method 60 deliver
            0x04, .. "ctag"u8,                              // consumer-tag "ctag"
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // delivery-tag 0x0102030405060708
            0x01,                                           // bits: redelivered
            0x02, (byte)'e', (byte)'x',                     // exchange "ex"
            0x02, (byte)'r', (byte)'k',                     // routing-key "rk"
            0xCE,                                           // frame end
        ];

        Assert.Equal(Hex(expected), MethodFrame(1, new BasicDeliver("ctag", 0x0102030405060708, true, "ex", "rk")));
    }

    [Fact]
    public void Basic_ack()
    {
        byte[] expected =
        [
            0x01,                                           // frame type: method
            0x00, 0x02,                                     // channel 2
            0x00, 0x00, 0x00, 0x0D,                         // payload size: 13
            0x00, 0x3C, 0x00, 0x50,                         // class 60 basic, method 80 ack
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // delivery-tag 7
            0x01,                                           // bits: multiple
            0xCE,                                           // frame end
        ];

        Assert.Equal(Hex(expected), MethodFrame(2, new BasicAck(7, Multiple: true)));
    }

    [Fact]
    public void Consecutive_bits_share_one_octet_from_bit_0_up()
    {
        // basic.nack: multiple is bit 0, requeue bit 1.
        Assert.EndsWith("0000000000000009" + "02" + "CE", MethodFrame(1, new BasicNack(9, Multiple: false, Requeue: true)), StringComparison.Ordinal);
        // queue.declare: passive 0, durable 1, exclusive 2, auto-delete 3, no-wait 4; then an empty table.
        Assert.EndsWith("0000" + "0171" + "12" + "00000000" + "CE", MethodFrame(1, new QueueDeclare("q", false, true, false, false, true, FieldTable.Empty)), StringComparison.Ordinal);
        // exchange.declare: passive 0, durable 1, auto-delete 2, internal 3, no-wait 4.
        Assert.EndsWith("0178" + "06646972656374" + "0D" + "00000000" + "CE", MethodFrame(1, new ExchangeDeclare("x", "direct", true, false, true, true, false, FieldTable.Empty)), StringComparison.Ordinal);
    }

    [Fact]
    public void Reserved_arguments_are_written_with_their_defaults()
    {
        // connection.open: virtual-host "/", reserved capabilities "" and insist 0.
        Assert.Equal("01" + "0000" + "00000008" + "000A0028" + "012F" + "00" + "00" + "CE", MethodFrame(0, new ConnectionOpen("/")));
        // channel.open-ok: reserved channel-id, an empty long string.
        Assert.Equal("01" + "0001" + "00000008" + "0014000B" + "00000000" + "CE", MethodFrame(1, ChannelOpenOk.Instance));
    }

    [Fact]
    public void Content_header_and_body_frames_split_by_frame_max()
    {
        var output = new ArrayBufferWriter<byte>();
        var properties = BasicPropertiesCodec.Write(new BasicProperties { DeliveryMode = 2 });
        var body = "0123456789abcdefghijklmnopqrst"u8.ToArray();

        // frame-max 24 leaves 16 payload bytes per body frame: 30 bytes go out as 16 + 14.
        AmqpFrameWriter.WriteContent(output, 1, properties, body, frameMax: 24);

        byte[] expected =
        [
            0x02,                                           // frame type: content header
            0x00, 0x01,                                     // channel 1
            0x00, 0x00, 0x00, 0x0F,                         // payload size: 15
            0x00, 0x3C,                                     // class 60 basic
            0x00, 0x00,                                     // weight 0
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1E, // body size 30
            0x10, 0x00,                                     // property flags: delivery-mode
            0x02,                                           // delivery-mode 2, persistent
            0xCE,                                           // frame end

            0x03,                                           // frame type: body
            0x00, 0x01,                                     // channel 1
            0x00, 0x00, 0x00, 0x10,                         // payload size: 16 = 24 - 8
            .. "0123456789abcdef"u8,
            0xCE,                                           // frame end

            0x03,                                           // frame type: body
            0x00, 0x01,                                     // channel 1
            0x00, 0x00, 0x00, 0x0E,                         // payload size: the 14 left
            .. "ghijklmnopqrst"u8,
            0xCE,                                           // frame end
        ];
        Assert.Equal(Hex(expected), Convert.ToHexString(output.WrittenSpan));
    }

    [Fact]
    public void A_body_that_fills_frames_exactly_has_no_empty_last_frame()
    {
        var output = new ArrayBufferWriter<byte>();

        AmqpFrameWriter.WriteContent(output, 1, [0, 0], new byte[32], frameMax: 24);

        // header (7 + 14 + 1) then two full body frames of 16.
        Assert.Equal(22 + 24 + 24, output.WrittenCount);
    }

    [Fact]
    public void An_empty_body_has_a_header_frame_and_no_body_frame()
    {
        var output = new ArrayBufferWriter<byte>();

        AmqpFrameWriter.WriteContent(output, 3, [0, 0], [], frameMax: 4096);

        Assert.Equal("02" + "0003" + "0000000E" + "003C" + "0000" + "0000000000000000" + "0000" + "CE", Convert.ToHexString(output.WrittenSpan));
    }

    [Fact]
    public void Frame_max_0_writes_small_bodies_in_one_frame_and_large_ones_in_128_KiB_frames()
    {
        var small = new ArrayBufferWriter<byte>();
        AmqpFrameWriter.WriteContent(small, 1, [0, 0], new byte[10_000], frameMax: 0);
        Assert.Equal(22 + 8 + 10_000, small.WrittenCount);

        var large = new ArrayBufferWriter<byte>();
        AmqpFrameWriter.WriteContent(large, 1, [0, 0], new byte[AmqpFrameWriter.UnlimitedBodyChunk + 1], frameMax: 0);
        Assert.Equal(22 + 8 + AmqpFrameWriter.UnlimitedBodyChunk + 8 + 1, large.WrittenCount);
    }

    [Fact]
    public void A_content_header_that_does_not_fit_in_frame_max_is_refused_before_writing()
    {
        var output = new ArrayBufferWriter<byte>();

        Assert.Throws<ArgumentOutOfRangeException>(() => AmqpFrameWriter.WriteContent(output, 1, new byte[10], [1], frameMax: 29));
        Assert.Equal(0, output.WrittenCount);
        AmqpFrameWriter.WriteContent(output, 1, new byte[10], [1], frameMax: 30);
    }

    [Fact]
    public void Heartbeat_frame()
    {
        var output = new ArrayBufferWriter<byte>();

        AmqpFrameWriter.WriteHeartbeat(output);

        Assert.Equal("08" + "0000" + "00000000" + "CE", Convert.ToHexString(output.WrittenSpan));
    }

    [Fact]
    public void Protocol_header()
    {
        Assert.Equal("414D515000000901", Convert.ToHexString(AmqpProtocolHeader.Bytes));
    }

    [Fact]
    public void A_short_string_over_255_bytes_is_refused_and_nothing_is_written()
    {
        var output = new ArrayBufferWriter<byte>();

        Assert.Throws<ArgumentException>(() => AmqpFrameWriter.WriteMethod(output, 1, new BasicPublish("", new string('k', 256), false, false)));
        Assert.Equal(0, output.WrittenCount);
        AmqpFrameWriter.WriteMethod(output, 1, new BasicPublish("", new string('k', 255), false, false));
        Assert.Equal(7 + 4 + 2 + 1 + 256 + 1 + 1, output.WrittenCount);
    }

    [Fact]
    public void The_content_header_is_read_back_with_its_properties_verbatim()
    {
        var output = new ArrayBufferWriter<byte>();
        var properties = BasicPropertiesCodec.Write(new BasicProperties { ContentType = "text/plain", Headers = FieldTable.Create([new("a", 1)]) });
        AmqpFrameWriter.WriteContent(output, 1, properties, new byte[5], frameMax: 4096);
        var buffer = new ReadOnlySequence<byte>(output.WrittenMemory);
        Assert.Equal(AmqpFrameStatus.Complete, AmqpFrameReader.TryRead(ref buffer, 4096, out var frame));

        Assert.True(AmqpFrameWriter.TryReadContentHeader(frame.Payload, out var classId, out var bodySize, out var raw));

        Assert.Equal(60, classId);
        Assert.Equal(5UL, bodySize);
        Assert.Equal(properties, raw.ToArray());
        Assert.False(AmqpFrameWriter.TryReadContentHeader(frame.Payload.Slice(0, 13), out _, out _, out _));
    }
}
