using System.Buffers;
using Broker.Actors.Amqp.Content;
using Broker.Edge.Amqp;

namespace Broker.Edge.Tests.Amqp;

public class AmqpMethodRoundTripTests
{
    public static TheoryData<AmqpMethod> Methods => AmqpMethodSamples.Data();

    [Theory]
    [MemberData(nameof(Methods))]
    public void Every_method_decodes_to_what_was_encoded(AmqpMethod method)
    {
        var payload = AmqpMethodCodec.Encode(method);

        var decoded = AmqpMethodCodec.Decode(payload);

        Assert.Equal(method, decoded);
        Assert.Equal(method.GetType(), decoded.GetType());
        Assert.Equal(payload, AmqpMethodCodec.Encode(decoded));
    }

    [Theory]
    [MemberData(nameof(Methods))]
    public void Every_method_survives_a_frame_split_into_one_byte_segments(AmqpMethod method)
    {
        var output = new ArrayBufferWriter<byte>();
        AmqpFrameWriter.WriteMethod(output, 7, method);
        var buffer = Segments.Bytewise(output.WrittenSpan.ToArray());

        Assert.Equal(AmqpFrameStatus.Complete, AmqpFrameReader.TryRead(ref buffer, 0, out var frame));

        Assert.True(buffer.IsEmpty);
        Assert.Equal(AmqpFrameType.Method, frame.Type);
        Assert.Equal(7, frame.Channel);
        Assert.Equal(method, AmqpMethodCodec.Decode(frame.Payload));
    }

    [Fact]
    public void The_samples_cover_every_method_record()
    {
        var recordTypes = typeof(AmqpMethod).Assembly.GetTypes()
            .Where(t => t.IsSubclassOf(typeof(AmqpMethod)) && !t.IsAbstract)
            .Select(t => t.Name)
            .Order();
        var sampled = AmqpMethodSamples.All.Select(m => m.GetType().Name).Distinct().Order();

        Assert.Equal(recordTypes, sampled);
        Assert.Equal(64, recordTypes.Count());
    }

    [Fact]
    public void Class_and_method_ids_are_unique()
    {
        var ids = AmqpMethodSamples.All.DistinctBy(m => m.GetType()).Select(m => (m.ClassId, m.MethodId)).ToList();

        Assert.Equal(ids.Count, ids.Distinct().Count());
    }

    [Fact]
    public void Exactly_publish_return_deliver_and_get_ok_carry_content()
    {
        var withContent = AmqpMethodSamples.All.Where(m => m.HasContent).Select(m => m.GetType()).Distinct();

        Assert.Equal([typeof(BasicPublish), typeof(BasicReturn), typeof(BasicDeliver), typeof(BasicGetOk)], withContent);
    }

    [Fact]
    public void A_large_method_split_across_segments_decodes_through_a_pooled_copy()
    {
        var properties = FieldTable.Create([.. Enumerable.Range(0, 100).Select(i => new KeyValuePair<string, object?>("key" + i, new byte[10]))]);
        var start = new ConnectionStart(0, 9, properties, "PLAIN", "en_US");
        var payload = AmqpMethodCodec.Encode(start);
        Assert.True(payload.Length > 1000);

        Assert.Equal(start, AmqpMethodCodec.Decode(Segments.Split(payload, 3, 500, 501, 999)));
    }

    [Fact]
    public void Binding_arguments_raw_are_the_table_bytes_the_client_sent()
    {
        // queue.bind with a headers-exchange table, as a client puts it on the wire.
        byte[] table =
        [
            0x00, 0x00, 0x00, 0x17,                         // table of 23 bytes
            0x07, .. "x-match"u8, (byte)'S', 0, 0, 0, 3, .. "any"u8, // "x-match" long string "any"
            0x01, (byte)'k', (byte)'b', 0xFF,               // "k" int8 -1
            0x01, (byte)'z', (byte)'V',                     // "z" void
        ];
        byte[] payload = [0x00, 0x32, 0x00, 0x14, 0x00, 0x00, 0x01, (byte)'q', 0x01, (byte)'x', 0x00, 0x00, .. table];

        var bind = Assert.IsType<QueueBind>(AmqpMethodCodec.Decode(payload));

        Assert.Equal(table, bind.ArgumentsRaw);
        Assert.Empty(new QueueBind("q", "x", "", false, FieldTable.Empty).ArgumentsRaw);
        Assert.Empty(new ExchangeUnbind("d", "s", "", false, FieldTable.Empty).ArgumentsRaw);
    }

    [Fact]
    public void Reserved_arguments_with_other_values_are_ignored()
    {
        // basic.publish with ticket 5 (old clients sent access tickets).
        byte[] payload = [0x00, 0x3C, 0x00, 0x28, 0x00, 0x05, 0x00, 0x01, (byte)'q', 0x00];

        Assert.Equal(new BasicPublish("", "q", false, false), AmqpMethodCodec.Decode(payload));
    }

    [Fact]
    public void Unused_bits_in_a_bit_octet_are_ignored()
    {
        // basic.ack with bits 0xFE: only bit 0 (multiple) means anything.
        byte[] payload = [0x00, 0x3C, 0x00, 0x50, 0, 0, 0, 0, 0, 0, 0, 1, 0xFE];

        Assert.Equal(new BasicAck(1, false), AmqpMethodCodec.Decode(payload));
    }
}
