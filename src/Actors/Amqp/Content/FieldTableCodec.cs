using System.Buffers.Binary;
using System.Text;

namespace Broker.Actors.Amqp.Content;

/// <summary>
/// Reads and writes field tables with the field types RabbitMQ uses (which differ from the 0.9.1 spec's
/// list: 's' is a signed 16-bit integer there, not a short string).
/// <code>
///   table:  +-----------+---------------------------------------------------------------+
///           | size (4)  | field*: name (shortstr) | tag (1) | value (by tag)            |
///           +-----------+---------------------------------------------------------------+
///   values: t octet 0/1   b/B 1   s/u 2   I/i 4   l 8   f 4 (IEEE)   d 8 (IEEE)
///           D scale(1) value(4)   S size(4) bytes   T 8   F table   V nothing   x size(4) bytes
///           A size(4) then (tag value)* filling size bytes
/// </code>
/// A table written after being read gives back the exact bytes read: order, duplicates, types and float
/// bit patterns are kept, and what has two encodings is refused (names that are not UTF-8, booleans other
/// than 0 and 1), so stored wire bytes and a re-encoded table can be compared as bytes.
/// </summary>
public static class FieldTableCodec
{
    /// <summary>
    /// Tables and arrays nested deeper than this (the outer table is level 1) are refused. Reading and writing
    /// recurse once per level, so this also bounds their stack; a reader may set a lower limit (a connection's
    /// <c>broker.amqp.max-table-depth</c>).
    /// </summary>
    public const int MaxDepth = 64;

    /// <summary>
    /// Decodes <paramref name="wire"/>, which must be exactly one table including its 4-byte size prefix.
    /// </summary>
    /// <exception cref="AmqpFormatException">truncated input, an unknown tag, a size that overruns its
    /// container, nesting deeper than <see cref="MaxDepth"/>, or bytes after the table.</exception>
    public static FieldTable Read(ReadOnlySpan<byte> wire)
    {
        var reader = new AmqpReader(wire);
        var table = ReadTable(ref reader, 1);
        reader.EnsureEnd();
        return table;
    }

    /// <summary>Decodes the table at the start of <paramref name="wire"/>; <paramref name="consumed"/> includes the size prefix.</summary>
    public static FieldTable Read(ReadOnlySpan<byte> wire, out int consumed)
    {
        var reader = new AmqpReader(wire);
        var table = ReadTable(ref reader, 1);
        consumed = reader.Position;
        return table;
    }

    /// <summary>The table with its size prefix.</summary>
    /// <exception cref="ArgumentException">a value of a type with no field tag, or a name over 255 UTF-8 bytes.</exception>
    public static byte[] Write(FieldTable table)
    {
        var bytes = new byte[SizeOf(table)];
        Write(table, bytes);
        return bytes;
    }

    /// <summary>Writes the table with its size prefix into <paramref name="destination"/>, which must hold <see cref="SizeOf"/> bytes.</summary>
    public static int Write(FieldTable table, Span<byte> destination)
    {
        var writer = new AmqpWriter(destination);
        WriteTable(ref writer, table, 1);
        return writer.Position;
    }

    /// <summary>The exact encoded size including the 4-byte size prefix.</summary>
    public static int SizeOf(FieldTable table) => SizeOfTable(table, 1);

    /// <summary>
    /// Whether two field values are the same for routing (a headers exchange compares a binding's arguments with
    /// a message's headers this way, as RabbitMQ does): integers of any width and sign by value, floats by value
    /// (an integer equals a float of the same value), 'S' strings, 'x' byte arrays and <c>string</c>s by their
    /// bytes (a string as UTF-8), decimals, timestamps and booleans by value, tables by names in order and
    /// matching values, arrays element by element. Void (<c>null</c>) matches only void.
    /// </summary>
    public static bool ValuesMatch(object? a, object? b)
    {
        if (a is null || b is null)
        {
            return a is null && b is null;
        }
        if (TryInteger(a, out var ia))
        {
            if (TryInteger(b, out var ib))
            {
                return ia == ib;
            }
            return TryFloat(b, out var fb) && IntegerEqualsFloat(ia, fb);
        }
        if (TryFloat(a, out var fa))
        {
            if (TryFloat(b, out var fb))
            {
                return fa == fb;
            }
            return TryInteger(b, out var ib) && IntegerEqualsFloat(ib, fa);
        }
        if (IsBytes(a))
        {
            return IsBytes(b) && BytesEqual(a, b);
        }
        return (a, b) switch
        {
            (bool x, bool y) => x == y,
            (AmqpDecimal x, AmqpDecimal y) => x == y,
            (AmqpTimestamp x, AmqpTimestamp y) => x == y,
            (FieldTable x, FieldTable y) => TablesMatch(x, y),
            (IReadOnlyList<object?> x, IReadOnlyList<object?> y) => FieldValues.ListsEqual(x, y, ValuesMatch),
            _ => false,
        };
    }

    // ------------------------------------------------------------------ reading

    internal static FieldTable ReadTable(ref AmqpReader reader, int depth)
    {
        CheckDepth(depth, reader.MaxTableDepth);
        var body = new AmqpReader(reader.ReadTableBytes()[4..], reader.MaxTableDepth);
        if (body.Remaining == 0)
        {
            return FieldTable.Empty;
        }
        var entries = new List<KeyValuePair<string, object?>>();
        while (body.Remaining > 0)
        {
            var name = body.ReadShortString();
            entries.Add(new(name, ReadValue(ref body, depth)));
        }
        return FieldTable.Wrap([.. entries]);
    }

    private static object?[] ReadArray(ref AmqpReader reader, int depth)
    {
        CheckDepth(depth, reader.MaxTableDepth);
        var body = new AmqpReader(reader.ReadLongStringBytes(), reader.MaxTableDepth);
        if (body.Remaining == 0)
        {
            return [];
        }
        var items = new List<object?>();
        while (body.Remaining > 0)
        {
            items.Add(ReadValue(ref body, depth));
        }
        return [.. items];
    }

    private static object? ReadValue(ref AmqpReader reader, int depth)
    {
        var tag = reader.ReadOctet();
        return tag switch
        {
            (byte)'t' => ReadBool(ref reader),
            (byte)'b' => (sbyte)reader.ReadOctet(),
            (byte)'B' => reader.ReadOctet(),
            (byte)'s' => (short)reader.ReadUInt16(),
            (byte)'u' => reader.ReadUInt16(),
            (byte)'I' => (int)reader.ReadUInt32(),
            (byte)'i' => reader.ReadUInt32(),
            (byte)'l' => (long)reader.ReadUInt64(),
            (byte)'f' => BitConverter.Int32BitsToSingle((int)reader.ReadUInt32()),
            (byte)'d' => BitConverter.Int64BitsToDouble((long)reader.ReadUInt64()),
            (byte)'D' => new AmqpDecimal(reader.ReadOctet(), (int)reader.ReadUInt32()),
            (byte)'S' => reader.ReadLongStringBytes().ToArray(),
            (byte)'T' => new AmqpTimestamp(reader.ReadUInt64()),
            (byte)'F' => ReadTable(ref reader, depth + 1),
            (byte)'A' => ReadArray(ref reader, depth + 1),
            (byte)'V' => null,
            (byte)'x' => new AmqpBinary(reader.ReadLongStringBytes().ToArray()),
            _ => throw new AmqpFormatException($"unknown field type tag 0x{tag:X2}"),
        };
    }

    /// <summary>Only 0 and 1: any other octet would be written back as 1 and change the table's bytes.</summary>
    private static bool ReadBool(ref AmqpReader reader) => reader.ReadOctet() switch
    {
        0 => false,
        1 => true,
        var other => throw new AmqpFormatException($"boolean field of value {other}; only 0 and 1 are booleans"),
    };

    private static void CheckDepth(int depth, int maxDepth)
    {
        if (depth > maxDepth)
        {
            throw new AmqpFormatException($"tables and arrays nested deeper than {maxDepth} levels");
        }
    }

    // ------------------------------------------------------------------ writing

    internal static void WriteTable(ref AmqpWriter writer, FieldTable table, int depth)
    {
        CheckWriteDepth(depth);
        var sizeAt = writer.Position;
        writer.WriteUInt32(0);
        foreach (var (name, value) in table)
        {
            writer.WriteShortString(name);
            WriteValue(ref writer, value, depth);
        }
        writer.PatchUInt32(sizeAt, (uint)(writer.Position - sizeAt - 4));
    }

    private static void WriteValue(ref AmqpWriter writer, object? value, int depth)
    {
        switch (value)
        {
            case null:
                writer.WriteOctet((byte)'V');
                break;
            case bool v:
                writer.WriteOctet((byte)'t');
                writer.WriteOctet(v ? (byte)1 : (byte)0);
                break;
            case sbyte v:
                writer.WriteOctet((byte)'b');
                writer.WriteOctet((byte)v);
                break;
            case byte v:
                writer.WriteOctet((byte)'B');
                writer.WriteOctet(v);
                break;
            case short v:
                writer.WriteOctet((byte)'s');
                writer.WriteUInt16((ushort)v);
                break;
            case ushort v:
                writer.WriteOctet((byte)'u');
                writer.WriteUInt16(v);
                break;
            case int v:
                writer.WriteOctet((byte)'I');
                writer.WriteUInt32((uint)v);
                break;
            case uint v:
                writer.WriteOctet((byte)'i');
                writer.WriteUInt32(v);
                break;
            case long v:
                writer.WriteOctet((byte)'l');
                writer.WriteUInt64((ulong)v);
                break;
            case float v:
                writer.WriteOctet((byte)'f');
                writer.WriteUInt32((uint)BitConverter.SingleToInt32Bits(v));
                break;
            case double v:
                writer.WriteOctet((byte)'d');
                writer.WriteUInt64((ulong)BitConverter.DoubleToInt64Bits(v));
                break;
            case AmqpDecimal v:
                writer.WriteOctet((byte)'D');
                writer.WriteOctet(v.Scale);
                writer.WriteUInt32((uint)v.Value);
                break;
            case byte[] v:
                writer.WriteOctet((byte)'S');
                writer.WriteLongString(v);
                break;
            case string v:
                writer.WriteOctet((byte)'S');
                writer.WriteLongString(v);
                break;
            case AmqpTimestamp v:
                writer.WriteOctet((byte)'T');
                writer.WriteUInt64(v.UnixSeconds);
                break;
            case FieldTable v:
                writer.WriteOctet((byte)'F');
                WriteTable(ref writer, v, depth + 1);
                break;
            case IReadOnlyList<object?> v:
                writer.WriteOctet((byte)'A');
                WriteArray(ref writer, v, depth + 1);
                break;
            case AmqpBinary v:
                writer.WriteOctet((byte)'x');
                writer.WriteLongString(v.Bytes);
                break;
            default:
                throw Unsupported(value);
        }
    }

    private static void WriteArray(ref AmqpWriter writer, IReadOnlyList<object?> items, int depth)
    {
        CheckWriteDepth(depth);
        var sizeAt = writer.Position;
        writer.WriteUInt32(0);
        for (var i = 0; i < items.Count; i++)
        {
            WriteValue(ref writer, items[i], depth);
        }
        writer.PatchUInt32(sizeAt, (uint)(writer.Position - sizeAt - 4));
    }

    private static int SizeOfTable(FieldTable table, int depth)
    {
        CheckWriteDepth(depth);
        var size = 4;
        foreach (var (name, value) in table)
        {
            var nameLength = Encoding.UTF8.GetByteCount(name);
            if (nameLength > byte.MaxValue)
            {
                throw new ArgumentException($"field name of {nameLength} UTF-8 bytes; at most 255 fit", nameof(table));
            }
            size += 1 + nameLength + SizeOfValue(value, depth);
        }
        return size;
    }

    /// <summary>The tag and the value.</summary>
    private static int SizeOfValue(object? value, int depth) => 1 + value switch
    {
        null => 0,
        bool or sbyte or byte => 1,
        short or ushort => 2,
        int or uint or float => 4,
        long or double or AmqpTimestamp => 8,
        AmqpDecimal => 5,
        byte[] v => 4 + v.Length,
        string v => 4 + Encoding.UTF8.GetByteCount(v),
        FieldTable v => SizeOfTable(v, depth + 1),
        IReadOnlyList<object?> v => SizeOfArray(v, depth + 1),
        AmqpBinary v => 4 + v.Bytes.Length,
        _ => throw Unsupported(value),
    };

    private static int SizeOfArray(IReadOnlyList<object?> items, int depth)
    {
        CheckWriteDepth(depth);
        var size = 4;
        for (var i = 0; i < items.Count; i++)
        {
            size += SizeOfValue(items[i], depth);
        }
        return size;
    }

    private static void CheckWriteDepth(int depth)
    {
        if (depth > MaxDepth)
        {
            throw new ArgumentException($"tables and arrays nested deeper than {MaxDepth} levels (or a table that contains itself)");
        }
    }

    private static ArgumentException Unsupported(object value) =>
        new($"no AMQP field type for a value of type {value.GetType()}", nameof(value));

    // ------------------------------------------------------------------ matching

    private static bool TryInteger(object value, out long result)
    {
        switch (value)
        {
            case sbyte v: result = v; return true;
            case byte v: result = v; return true;
            case short v: result = v; return true;
            case ushort v: result = v; return true;
            case int v: result = v; return true;
            case uint v: result = v; return true;
            case long v: result = v; return true;
            default: result = 0; return false;
        }
    }

    private static bool TryFloat(object value, out double result)
    {
        switch (value)
        {
            case float v: result = v; return true;
            case double v: result = v; return true;
            default: result = 0; return false;
        }
    }

    /// <summary>Exact: a long converted to double can round, so the double must also convert back to the same long.</summary>
    private static bool IntegerEqualsFloat(long integer, double value) =>
        value >= -9.2233720368547758E18 && value < 9.2233720368547758E18 && value == Math.Floor(value) && (long)value == integer;

    private static bool IsBytes(object value) => value is byte[] or AmqpBinary or string;

    private static bool BytesEqual(object a, object b)
    {
        if (a is string sa && b is string sb)
        {
            return string.Equals(sa, sb, StringComparison.Ordinal);
        }
        return AsBytes(a).AsSpan().SequenceEqual(AsBytes(b));
    }

    private static byte[] AsBytes(object value) => value switch
    {
        byte[] v => v,
        AmqpBinary v => v.Bytes,
        _ => Encoding.UTF8.GetBytes((string)value),
    };

    private static bool TablesMatch(FieldTable x, FieldTable y)
    {
        if (x.Count != y.Count)
        {
            return false;
        }
        for (var i = 0; i < x.Count; i++)
        {
            if (!string.Equals(x[i].Key, y[i].Key, StringComparison.Ordinal) || !ValuesMatch(x[i].Value, y[i].Value))
            {
                return false;
            }
        }
        return true;
    }
}
