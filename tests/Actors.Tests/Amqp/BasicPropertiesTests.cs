using Broker.Actors.Amqp.Content;

namespace Broker.Actors.Tests.Amqp;

public class BasicPropertiesTests
{
    private static readonly BasicProperties All = new()
    {
        ContentType = "text/plain",
        ContentEncoding = "gzip",
        Headers = FieldTable.Create([new("h", 7)]),
        DeliveryMode = 2,
        Priority = 9,
        CorrelationId = "c1",
        ReplyTo = "r",
        Expiration = "60000",
        MessageId = "m-1",
        Timestamp = 1700000000,
        Type = "t",
        UserId = "guest",
        AppId = "app",
        ClusterId = "cl",
    };

    private static readonly byte[] AllBytes =
    [
        0xFF, 0xFC,                                                           // flags: bits 15..2 set, 1 unused, 0 no continuation
        0x0A, .. "text/plain"u8,                                              // content-type
        0x04, .. "gzip"u8,                                                    // content-encoding
        0x00, 0x00, 0x00, 0x07, 0x01, (byte)'h', (byte)'I', 0x00, 0x00, 0x00, 0x07, // headers: 7 bytes, "h" 'I' 7
        0x02,                                                                 // delivery-mode: persistent
        0x09,                                                                 // priority
        0x02, .. "c1"u8,                                                      // correlation-id
        0x01, .. "r"u8,                                                       // reply-to
        0x05, .. "60000"u8,                                                   // expiration
        0x03, .. "m-1"u8,                                                     // message-id
        0x00, 0x00, 0x00, 0x00, 0x65, 0x53, 0xF1, 0x00,                       // timestamp: 1700000000
        0x01, .. "t"u8,                                                       // type
        0x05, .. "guest"u8,                                                   // user-id
        0x03, .. "app"u8,                                                     // app-id
        0x02, .. "cl"u8,                                                      // cluster-id
    ];

    [Fact]
    public void All_fourteen_properties_are_written_in_flag_order()
    {
        Assert.Equal(Convert.ToHexString(AllBytes), Convert.ToHexString(BasicPropertiesCodec.Write(All)));
        Assert.Equal(All, BasicPropertiesCodec.Read(AllBytes));
    }

    public static TheoryData<string, string> SingleProperties => new()
    {
        // name, flags word then the one property
        { "content-type", "8000" + "0161" },
        { "content-encoding", "4000" + "0161" },
        { "headers", "2000" + "00000000" },
        { "delivery-mode", "1000" + "01" },
        { "priority", "0800" + "05" },
        { "correlation-id", "0400" + "0161" },
        { "reply-to", "0200" + "0161" },
        { "expiration", "0100" + "0161" },
        { "message-id", "0080" + "0161" },
        { "timestamp", "0040" + "0000000000000001" },
        { "type", "0020" + "0161" },
        { "user-id", "0010" + "0161" },
        { "app-id", "0008" + "0161" },
        { "cluster-id", "0004" + "0161" },
    };

    private static BasicProperties Only(string name) => name switch
    {
        "content-type" => new() { ContentType = "a" },
        "content-encoding" => new() { ContentEncoding = "a" },
        "headers" => new() { Headers = FieldTable.Empty },
        "delivery-mode" => new() { DeliveryMode = 1 },
        "priority" => new() { Priority = 5 },
        "correlation-id" => new() { CorrelationId = "a" },
        "reply-to" => new() { ReplyTo = "a" },
        "expiration" => new() { Expiration = "a" },
        "message-id" => new() { MessageId = "a" },
        "timestamp" => new() { Timestamp = 1 },
        "type" => new() { Type = "a" },
        "user-id" => new() { UserId = "a" },
        "app-id" => new() { AppId = "a" },
        "cluster-id" => new() { ClusterId = "a" },
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(SingleProperties))]
    public void Each_property_alone_sets_only_its_flag(string name, string hex)
    {
        var properties = Only(name);

        Assert.Equal(hex, Convert.ToHexString(BasicPropertiesCodec.Write(properties)));
        Assert.Equal(properties, BasicPropertiesCodec.Read(Convert.FromHexString(hex)));
    }

    [Fact]
    public void No_properties_is_a_zero_flags_word()
    {
        Assert.Equal([0, 0], BasicPropertiesCodec.Write(BasicProperties.Empty));
        Assert.Equal(BasicProperties.Empty, BasicPropertiesCodec.Read([0, 0]));
    }

    [Fact]
    public void An_empty_string_is_present_and_distinct_from_absent()
    {
        var properties = new BasicProperties { ContentType = "", AppId = "" };

        Assert.Equal("8008" + "00" + "00", Convert.ToHexString(BasicPropertiesCodec.Write(properties)));
        Assert.Equal(properties, BasicPropertiesCodec.Read(BasicPropertiesCodec.Write(properties)));
    }

    [Fact]
    public void Properties_round_trip_with_unicode_and_nested_headers()
    {
        var properties = All with
        {
            ContentType = "application/caf\u00e9",
            Headers = FieldTable.Create([new("x-match", "any"u8.ToArray()), new("nested", FieldTable.Create([new("a", new object?[] { 1, null })]))]),
            Priority = null,
            ReplyTo = new string('r', 255),
        };

        var back = BasicPropertiesCodec.Read(BasicPropertiesCodec.Write(properties));

        Assert.Equal(properties, back);
    }

    [Fact]
    public void A_string_over_255_bytes_cannot_be_written()
    {
        Assert.Throws<ArgumentException>(() => BasicPropertiesCodec.Write(new BasicProperties { ReplyTo = new string('\u00e9', 128) }));
    }

    [Fact]
    public void Every_truncation_throws_AmqpFormatException()
    {
        for (var length = 0; length < AllBytes.Length; length++)
        {
            var cut = AllBytes[..length];
            Assert.Throws<AmqpFormatException>(() => BasicPropertiesCodec.Read(cut));
        }
    }

    [Fact]
    public void The_continuation_bit_trailing_bytes_and_a_bad_header_table_throw()
    {
        Assert.Throws<AmqpFormatException>(() => BasicPropertiesCodec.Read([0x10, 0x01, 0x02]));
        Assert.Throws<AmqpFormatException>(() => BasicPropertiesCodec.Read([0x10, 0x00, 0x02, 0xFF]));
        Assert.Throws<AmqpFormatException>(() => BasicPropertiesCodec.Read([0x20, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, (byte)'k']));
    }

    [Fact]
    public void The_unused_bit_1_is_ignored_as_RabbitMQ_does()
    {
        Assert.Equal(new BasicProperties { DeliveryMode = 2 }, BasicPropertiesCodec.Read([0x10, 0x02, 0x02]));
    }

    [Fact]
    public void ReadDelivery_reads_delivery_mode_after_the_properties_before_it()
    {
        Assert.Equal((true, "60000"), BasicPropertiesCodec.ReadDelivery(AllBytes));
        Assert.Equal((false, "60000"), BasicPropertiesCodec.ReadDelivery(BasicPropertiesCodec.Write(All with { DeliveryMode = 1 })));
        Assert.Equal((false, "60000"), BasicPropertiesCodec.ReadDelivery(BasicPropertiesCodec.Write(All with { DeliveryMode = null })));
        Assert.Equal((false, null), BasicPropertiesCodec.ReadDelivery([0, 0]));
        Assert.Equal((true, null), BasicPropertiesCodec.ReadDelivery(BasicPropertiesCodec.Write(new BasicProperties { DeliveryMode = 2, MessageId = "m" })));
    }

    [Fact]
    public void The_helpers_do_not_read_past_what_they_need()
    {
        // Everything after the expiration is cut off: the helpers still answer.
        var expirationEnd = 2 + 11 + 5 + 11 + 1 + 1 + 3 + 2 + 6;
        var cut = AllBytes[..expirationEnd];

        Assert.Equal((true, "60000"), BasicPropertiesCodec.ReadDelivery(cut));
        Assert.Equal(All.Headers, BasicPropertiesCodec.ReadHeaders(cut));
        Assert.Throws<AmqpFormatException>(() => BasicPropertiesCodec.Read(cut));
    }

    [Fact]
    public void ReadDelivery_and_ReadHeaders_answer_null_when_absent()
    {
        var raw = BasicPropertiesCodec.Write(new BasicProperties { ContentType = "x", MessageId = "m" });

        Assert.Null(BasicPropertiesCodec.ReadDelivery(raw).Expiration);
        Assert.Null(BasicPropertiesCodec.ReadHeaders(raw));
        Assert.Equal("1", BasicPropertiesCodec.ReadDelivery(BasicPropertiesCodec.Write(new BasicProperties { Expiration = "1" })).Expiration);
    }

    [Fact]
    public void The_helpers_throw_AmqpFormatException_on_malformed_input()
    {
        for (var length = 0; length < 2 + 11 + 5 + 11 + 1 + 1 + 3 + 2 + 6; length++)
        {
            var cut = AllBytes[..length];
            Assert.Throws<AmqpFormatException>(() => BasicPropertiesCodec.ReadDelivery(cut));
        }
        Assert.Throws<AmqpFormatException>(() => BasicPropertiesCodec.ReadHeaders([0x20, 0x00, 0x00, 0x00, 0x00, 0x09]));
        Assert.Throws<AmqpFormatException>(() => BasicPropertiesCodec.ReadDelivery([0x10, 0x01, 0x02]));
    }

    [Fact]
    public void Random_input_only_ever_throws_AmqpFormatException()
    {
        var random = new Random(1126);
        for (var i = 0; i < 3000; i++)
        {
            var input = i % 2 == 0 ? new byte[random.Next(0, 48)] : (byte[])AllBytes.Clone();
            if (i % 2 == 0)
            {
                random.NextBytes(input);
            }
            else
            {
                input[random.Next(input.Length)] = (byte)random.Next(256);
            }
            Try(() => BasicPropertiesCodec.Read(input));
            Try(() => BasicPropertiesCodec.ReadDelivery(input));
            Try(() => BasicPropertiesCodec.ReadHeaders(input));
        }

        static void Try(Action action)
        {
            try
            {
                action();
            }
            catch (AmqpFormatException)
            {
            }
        }
    }
}
