using System.Buffers.Binary;
using Broker.Actors.Amqp.Content;

namespace Broker.Actors.Tests.Amqp;

public class FieldTableTests
{
    /// <summary>One entry of every field type, with the value each test expects back.</summary>
    private static readonly FieldTable EveryType =
    [
        new("a", true),
        new("b", (sbyte)-2),
        new("c", (byte)200),
        new("d", (short)-300),
        new("e", (ushort)65000),
        new("f", -70000),
        new("g", 4000000000u),
        new("h", -5000000000L),
        new("i", 1.5f),
        new("j", -2.25d),
        new("k", new AmqpDecimal(2, 12345)),
        new("l", "hi"u8.ToArray()),
        new("m", new AmqpTimestamp(1700000000)),
        new("n", FieldTable.Create([new("x", 1)])),
        new("o", new object?[] { (byte)1, null, "z"u8.ToArray() }),
        new("p", null),
        new("q", new AmqpBinary([0x01, 0x02])),
    ];

    /// <summary>The fields of <see cref="EveryType"/> as RabbitMQ encodes them (rabbit_binary_generator).</summary>
    private static readonly byte[] EveryTypeFields =
    [
        0x01, (byte)'a', (byte)'t', 0x01,                                         // "a" 't' bool: true
        0x01, (byte)'b', (byte)'b', 0xFE,                                         // "b" 'b' int8: -2
        0x01, (byte)'c', (byte)'B', 0xC8,                                         // "c" 'B' uint8: 200
        0x01, (byte)'d', (byte)'s', 0xFE, 0xD4,                                   // "d" 's' int16 (not a short string): -300
        0x01, (byte)'e', (byte)'u', 0xFD, 0xE8,                                   // "e" 'u' uint16: 65000
        0x01, (byte)'f', (byte)'I', 0xFF, 0xFE, 0xEE, 0x90,                       // "f" 'I' int32: -70000
        0x01, (byte)'g', (byte)'i', 0xEE, 0x6B, 0x28, 0x00,                       // "g" 'i' uint32: 4000000000
        0x01, (byte)'h', (byte)'l', 0xFF, 0xFF, 0xFF, 0xFE, 0xD5, 0xFA, 0x0E, 0x00, // "h" 'l' int64: -5000000000
        0x01, (byte)'i', (byte)'f', 0x3F, 0xC0, 0x00, 0x00,                       // "i" 'f' float32: 1.5
        0x01, (byte)'j', (byte)'d', 0xC0, 0x02, 0, 0, 0, 0, 0, 0,                 // "j" 'd' float64: -2.25
        0x01, (byte)'k', (byte)'D', 0x02, 0x00, 0x00, 0x30, 0x39,                 // "k" 'D' decimal: scale 2, value 12345 (123.45)
        0x01, (byte)'l', (byte)'S', 0x00, 0x00, 0x00, 0x02, (byte)'h', (byte)'i', // "l" 'S' long string: size 2, "hi"
        0x01, (byte)'m', (byte)'T', 0, 0, 0, 0, 0x65, 0x53, 0xF1, 0x00,           // "m" 'T' timestamp: 1700000000 s
        0x01, (byte)'n', (byte)'F', 0x00, 0x00, 0x00, 0x07,                       // "n" 'F' table of 7 bytes:
        /**/ 0x01, (byte)'x', (byte)'I', 0x00, 0x00, 0x00, 0x01,                  //       "x" 'I' int32: 1
        0x01, (byte)'o', (byte)'A', 0x00, 0x00, 0x00, 0x09,                       // "o" 'A' array of 9 bytes:
        /**/ (byte)'B', 0x01,                                                     //       'B' uint8: 1
        /**/ (byte)'V',                                                           //       'V' void
        /**/ (byte)'S', 0x00, 0x00, 0x00, 0x01, (byte)'z',                        //       'S' long string "z"
        0x01, (byte)'p', (byte)'V',                                               // "p" 'V' void
        0x01, (byte)'q', (byte)'x', 0x00, 0x00, 0x00, 0x02, 0x01, 0x02,           // "q" 'x' byte array: size 2, 01 02
    ];

    private static byte[] WithSize(byte[] fields)
    {
        var wire = new byte[4 + fields.Length];
        BinaryPrimitives.WriteUInt32BigEndian(wire, (uint)fields.Length);
        fields.CopyTo(wire, 4);
        return wire;
    }

    [Fact]
    public void Every_field_type_is_written_as_RabbitMQ_writes_it()
    {
        Assert.Equal(Convert.ToHexString(WithSize(EveryTypeFields)), Convert.ToHexString(FieldTableCodec.Write(EveryType)));
        Assert.Equal(4 + EveryTypeFields.Length, FieldTableCodec.SizeOf(EveryType));
    }

    [Fact]
    public void Every_field_type_is_read_with_its_exact_CLR_type()
    {
        var table = FieldTableCodec.Read(WithSize(EveryTypeFields));

        // Table equality compares the CLR type of every value, not only the number it holds.
        Assert.Equal(EveryType, table);
        Assert.IsType<bool>(table[0].Value);
        Assert.IsType<sbyte>(table[1].Value);
        Assert.IsType<short>(table[3].Value);
        Assert.IsType<uint>(table[6].Value);
        Assert.IsType<byte[]>(table[11].Value);
        Assert.IsType<AmqpBinary>(table[16].Value);
        var array = Assert.IsAssignableFrom<IReadOnlyList<object?>>(table[14].Value);
        Assert.Equal((byte)1, array[0]);
        Assert.Null(array[1]);
    }

    [Fact]
    public void A_table_with_every_type_nested_in_tables_and_arrays_round_trips()
    {
        FieldTable table =
        [
            .. EveryType,
            new("nested", new FieldTable([.. EveryType, new("deeper", EveryType)])),
            new("list", new object?[] { EveryType, new object?[] { 1L, (short)2, null }, new AmqpBinary([]), Array.Empty<byte>() }),
            new("empty-table", FieldTable.Empty),
            new("empty-array", Array.Empty<object?>()),
            new("nan", double.NaN),
            new("caf\u00e9 \u2603", "unicode name"u8.ToArray()),
        ];

        var wire = FieldTableCodec.Write(table);
        var back = FieldTableCodec.Read(wire);

        Assert.Equal(table, back);
        Assert.Equal(wire, FieldTableCodec.Write(back));
    }

    [Fact]
    public void Order_and_duplicate_names_are_kept_and_TryGet_finds_the_first()
    {
        FieldTable table = [new("z", 1), new("a", 2), new("z", 3)];

        var back = FieldTableCodec.Read(FieldTableCodec.Write(table));

        Assert.Equal(["z", "a", "z"], back.Select(e => e.Key));
        Assert.True(back.TryGet("z", out var z));
        Assert.Equal(1, z);
        Assert.False(back.TryGet("Z", out _));
    }

    [Fact]
    public void Equality_is_exact_in_type_while_ValuesMatch_compares_numbers_by_value()
    {
        FieldTable asInt = [new("n", 1)];
        FieldTable asLong = [new("n", 1L)];

        Assert.NotEqual(asInt, asLong);
        Assert.True(FieldTableCodec.ValuesMatch(asInt, asLong));
    }

    [Fact]
    public void A_string_value_is_written_as_a_long_string_and_read_back_as_bytes()
    {
        var back = FieldTableCodec.Read(FieldTableCodec.Write([new("s", "h\u00e9")]));

        Assert.Equal("68C3A9", Convert.ToHexString(Assert.IsType<byte[]>(back[0].Value)));
    }

    [Fact]
    public void The_empty_table_is_four_zero_bytes()
    {
        Assert.Equal(new byte[4], FieldTableCodec.Write(FieldTable.Empty));
        Assert.Empty(FieldTableCodec.Read(new byte[4]));
    }

    [Fact]
    public void Writing_a_value_with_no_field_type_or_a_long_name_is_refused()
    {
        Assert.Throws<ArgumentException>(() => FieldTableCodec.Write([new("u", 1UL)]));
        Assert.Throws<ArgumentException>(() => FieldTableCodec.Write([new("d", DateTime.UnixEpoch)]));
        Assert.Throws<ArgumentException>(() => FieldTableCodec.Write([new(new string('n', 256), 1)]));
        FieldTableCodec.Write([new(new string('n', 255), 1)]);
    }

    [Fact]
    public void Every_truncation_of_a_valid_table_throws_AmqpFormatException()
    {
        var wire = WithSize(EveryTypeFields);
        for (var length = 0; length < wire.Length; length++)
        {
            var cut = wire[..length];
            Assert.Throws<AmqpFormatException>(() => FieldTableCodec.Read(cut));
        }
    }

    [Fact]
    public void The_fields_cut_short_with_a_matching_size_throw_AmqpFormatException()
    {
        for (var length = 1; length < EveryTypeFields.Length; length++)
        {
            var wire = WithSize(EveryTypeFields[..length]);
            // Cuts that fall between two fields leave a valid, shorter table.
            try
            {
                var table = FieldTableCodec.Read(wire);
                Assert.Equal(wire, FieldTableCodec.Write(table));
            }
            catch (AmqpFormatException)
            {
            }
        }
    }

    [Fact]
    public void An_unknown_type_tag_throws()
    {
        byte[] wire = [0, 0, 0, 3, 0x01, (byte)'k', (byte)'Q'];

        var error = Assert.Throws<AmqpFormatException>(() => FieldTableCodec.Read(wire));
        Assert.Contains("0x51", error.Message, StringComparison.Ordinal);
        Assert.Equal(502, error.ReplyCode);
    }

    [Fact]
    public void A_string_longer_than_its_table_throws_even_when_the_buffer_goes_on()
    {
        // The table says 7 bytes; the string inside claims 100, and 100 bytes do follow the table.
        byte[] wire = [0, 0, 0, 7, 0x01, (byte)'k', (byte)'S', 0, 0, 0, 100, .. new byte[100]];

        Assert.Throws<AmqpFormatException>(() => FieldTableCodec.Read(wire));
        Assert.Throws<AmqpFormatException>(() => FieldTableCodec.Read(wire, out _));
    }

    [Fact]
    public void A_table_size_beyond_the_input_throws()
    {
        Assert.Throws<AmqpFormatException>(() => FieldTableCodec.Read([0xFF, 0xFF, 0xFF, 0xFF, 0x01, (byte)'k', (byte)'V']));
    }

    [Fact]
    public void Bytes_after_the_table_throw_unless_the_caller_asks_how_many_were_used()
    {
        byte[] wire = [0, 0, 0, 3, 0x01, (byte)'k', (byte)'V', 0xAA];

        Assert.Throws<AmqpFormatException>(() => FieldTableCodec.Read(wire));
        var table = FieldTableCodec.Read(wire, out var consumed);
        Assert.Equal(7, consumed);
        Assert.Single(table);
    }

    [Fact]
    public void A_boolean_other_than_0_or_1_throws_since_it_would_be_written_back_differently()
    {
        Assert.False((bool)FieldTableCodec.Read([0, 0, 0, 4, 0x01, (byte)'k', (byte)'t', 0])[0].Value!);
        Assert.Throws<AmqpFormatException>(() => FieldTableCodec.Read([0, 0, 0, 4, 0x01, (byte)'k', (byte)'t', 2]));
    }

    [Fact]
    public void A_field_name_that_is_not_UTF8_throws()
    {
        Assert.Throws<AmqpFormatException>(() => FieldTableCodec.Read([0, 0, 0, 3, 0x01, 0xFF, (byte)'V']));
    }

    private static FieldTable Nested(int levels) => levels == 1 ? FieldTable.Empty : [new("t", Nested(levels - 1))];

    private static object?[] NestedArrays(int levels) => levels == 1 ? [] : [NestedArrays(levels - 1)];

    [Fact]
    public void Tables_nested_64_deep_are_read_and_65_deep_are_refused()
    {
        Assert.Equal(Nested(64), FieldTableCodec.Read(FieldTableCodec.Write(Nested(64))));

        // Writing refuses 65 levels too, so the wire form is built by hand: level n is {"t": F level n-1}.
        var wire = new byte[4];
        for (var level = 2; level <= 65; level++)
        {
            wire = [.. WithSize([0x01, (byte)'t', (byte)'F', .. wire])];
        }
        Assert.Throws<ArgumentException>(() => FieldTableCodec.Write(Nested(65)));
        Assert.Throws<AmqpFormatException>(() => FieldTableCodec.Read(wire));
    }

    [Fact]
    public void A_reader_with_a_lower_depth_limit_refuses_tables_and_arrays_past_it()
    {
        var tables = FieldTableCodec.Write(Nested(4));
        var arrays = FieldTableCodec.Write([new("a", NestedArrays(3))]);
        foreach (var wire in new[] { tables, arrays })
        {
            var within = new AmqpReader(wire, maxTableDepth: 4);
            Assert.Equal(FieldTableCodec.Read(wire), within.ReadTable());
            Assert.Throws<AmqpFormatException>(() => new AmqpReader(wire, maxTableDepth: 3).ReadTable());
        }
    }

    [Fact]
    public void Arrays_count_towards_the_nesting_limit()
    {
        FieldTable ok = [new("a", NestedArrays(63))];
        FieldTable tooDeep = [new("a", NestedArrays(64))];
        Assert.Equal(ok, FieldTableCodec.Read(FieldTableCodec.Write(ok)));

        // Level n of the array is 'A' holding level n-1; 64 array levels below the table is 65 in all.
        var array = new byte[4];
        for (var level = 2; level <= 64; level++)
        {
            array = WithSize([(byte)'A', .. array]);
        }
        var wire = WithSize([0x01, (byte)'a', (byte)'A', .. array]);
        Assert.Throws<ArgumentException>(() => FieldTableCodec.Write(tooDeep));
        Assert.Throws<AmqpFormatException>(() => FieldTableCodec.Read(wire));
    }

    [Fact]
    public void Random_and_mutated_input_only_ever_throws_AmqpFormatException()
    {
        var random = new Random(20261126);
        var valid = FieldTableCodec.Write([.. EveryType, new("nested", EveryType)]);
        for (var i = 0; i < 5000; i++)
        {
            byte[] input;
            if (i % 2 == 0)
            {
                // Random fields behind a size that fits, so the reader gets past the prefix.
                var fields = new byte[random.Next(0, 64)];
                random.NextBytes(fields);
                input = WithSize(fields);
            }
            else
            {
                input = (byte[])valid.Clone();
                for (var flips = random.Next(1, 4); flips > 0; flips--)
                {
                    input[random.Next(input.Length)] = (byte)random.Next(256);
                }
            }
            try
            {
                var table = FieldTableCodec.Read(input);
                Assert.Equal(input, FieldTableCodec.Write(table));
            }
            catch (AmqpFormatException)
            {
            }
        }
    }

    [Theory]
    [InlineData((sbyte)1, 1)]
    [InlineData((byte)1, 1L)]
    [InlineData((short)-1, -1L)]
    [InlineData((ushort)65535, 65535)]
    [InlineData(4294967295u, 4294967295L)]
    [InlineData(1, 1.0d)]
    [InlineData(1.5f, 1.5d)]
    [InlineData(true, true)]
    [InlineData(null, null)]
    [InlineData("abc", "abc")]
    public void Values_that_match_for_routing(object? a, object? b)
    {
        Assert.True(FieldTableCodec.ValuesMatch(a, b));
        Assert.True(FieldTableCodec.ValuesMatch(b, a));
    }

    [Theory]
    [InlineData(1, 2)]
    [InlineData((sbyte)-1, (byte)255)]
    [InlineData(1, 1.5d)]
    [InlineData(long.MaxValue, 9.2233720368547758E18)]
    [InlineData(1, "1")]
    [InlineData(1, true)]
    [InlineData(null, 0)]
    [InlineData(null, "")]
    [InlineData("abc", "abd")]
    [InlineData(double.NaN, double.NaN)]
    public void Values_that_do_not_match_for_routing(object? a, object? b)
    {
        Assert.False(FieldTableCodec.ValuesMatch(a, b));
        Assert.False(FieldTableCodec.ValuesMatch(b, a));
    }

    [Fact]
    public void Strings_match_by_their_bytes_whatever_the_tag()
    {
        var bytes = "caf\u00e9"u8.ToArray();

        Assert.True(FieldTableCodec.ValuesMatch(bytes, "caf\u00e9"u8.ToArray()));
        Assert.True(FieldTableCodec.ValuesMatch(bytes, "caf\u00e9"));
        Assert.True(FieldTableCodec.ValuesMatch(bytes, new AmqpBinary("caf\u00e9"u8.ToArray())));
        Assert.False(FieldTableCodec.ValuesMatch(bytes, "cafe"));
        Assert.False(FieldTableCodec.ValuesMatch(bytes, 1));
    }

    [Fact]
    public void Decimals_timestamps_tables_and_arrays_match_by_content()
    {
        Assert.True(FieldTableCodec.ValuesMatch(new AmqpDecimal(2, 5), new AmqpDecimal(2, 5)));
        Assert.False(FieldTableCodec.ValuesMatch(new AmqpDecimal(2, 5), new AmqpDecimal(1, 5)));
        Assert.True(FieldTableCodec.ValuesMatch(new AmqpTimestamp(7), new AmqpTimestamp(7)));
        Assert.False(FieldTableCodec.ValuesMatch(new AmqpTimestamp(7), 7L));
        Assert.True(FieldTableCodec.ValuesMatch(new object?[] { 1, "x"u8.ToArray() }, new object?[] { 1L, "x" }));
        Assert.False(FieldTableCodec.ValuesMatch(new object?[] { 1 }, new object?[] { 1, 2 }));
        Assert.True(FieldTableCodec.ValuesMatch(FieldTable.Create([new("a", (byte)1)]), FieldTable.Create([new("a", 1L)])));
        Assert.False(FieldTableCodec.ValuesMatch(FieldTable.Create([new("a", 1)]), FieldTable.Create([new("b", 1)])));
    }
}
