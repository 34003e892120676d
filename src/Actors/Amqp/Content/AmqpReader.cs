using System.Buffers.Binary;
using System.Text;
using System.Text.Unicode;

namespace Broker.Actors.Amqp.Content;

/// <summary>
/// Reads AMQP 0.9.1 domain types, big-endian, from the front of a span. Every read checks the remaining
/// length first and throws <see cref="AmqpFormatException"/> (502) rather than an index exception, so
/// a caller only has one exception type to map to a connection.close.
/// <code>
///  octet 1 byte | short 2 | long 4 | longlong 8
///  shortstr: len(1) UTF-8 bytes(len)       longstr: len(4) bytes(len)       table: len(4) fields(len)
/// </code>
/// </summary>
public ref struct AmqpReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _position;

    /// <param name="maxTableDepth">deepest nesting of tables and arrays <see cref="ReadTable"/> accepts (at most <see cref="FieldTableCodec.MaxDepth"/>).</param>
    public AmqpReader(ReadOnlySpan<byte> data, int maxTableDepth = FieldTableCodec.MaxDepth)
    {
        _data = data;
        _position = 0;
        MaxTableDepth = Math.Min(maxTableDepth, FieldTableCodec.MaxDepth);
    }

    public int MaxTableDepth { get; }

    public readonly int Position => _position;

    public readonly int Remaining => _data.Length - _position;

    public byte ReadOctet()
    {
        Need(1);
        return _data[_position++];
    }

    public ushort ReadUInt16()
    {
        Need(2);
        var value = BinaryPrimitives.ReadUInt16BigEndian(_data[_position..]);
        _position += 2;
        return value;
    }

    public uint ReadUInt32()
    {
        Need(4);
        var value = BinaryPrimitives.ReadUInt32BigEndian(_data[_position..]);
        _position += 4;
        return value;
    }

    public ulong ReadUInt64()
    {
        Need(8);
        var value = BinaryPrimitives.ReadUInt64BigEndian(_data[_position..]);
        _position += 8;
        return value;
    }

    public ReadOnlySpan<byte> ReadBytes(int count)
    {
        Need(count);
        var bytes = _data.Slice(_position, count);
        _position += count;
        return bytes;
    }

    /// <summary>
    /// A shortstr as text. Invalid UTF-8 is refused rather than replaced, so a name read and written again
    /// is the name the peer sent.
    /// </summary>
    public string ReadShortString() => Utf8String(ReadShortStringBytes(), "short string");

    public ReadOnlySpan<byte> ReadShortStringBytes() => ReadBytes(ReadOctet());

    public void SkipShortString() => ReadShortStringBytes();

    /// <summary>A longstr's bytes, without the length prefix; a view into the input.</summary>
    public ReadOnlySpan<byte> ReadLongStringBytes() => ReadBytes(CheckedLength(ReadUInt32()));

    public string ReadLongString() => Utf8String(ReadLongStringBytes(), "long string");

    /// <summary>A table's bytes including its 4-byte length prefix, not decoded.</summary>
    public ReadOnlySpan<byte> ReadTableBytes()
    {
        var start = _position;
        var length = CheckedLength(ReadUInt32());
        Need(length);
        _position += length;
        return _data[start.._position];
    }

    public FieldTable ReadTable() => FieldTableCodec.ReadTable(ref this, 1);

    /// <summary>Throws unless every byte was read: trailing bytes mean a field list the sender and we disagree on.</summary>
    public readonly void EnsureEnd()
    {
        if (_position != _data.Length)
        {
            throw new AmqpFormatException($"{_data.Length - _position} unexpected bytes after the last field");
        }
    }

    private readonly void Need(int count)
    {
        if (count > _data.Length - _position)
        {
            throw new AmqpFormatException($"field runs past the end: needs {count} bytes, {_data.Length - _position} left");
        }
    }

    private readonly int CheckedLength(uint length)
    {
        if (length > (uint)(_data.Length - _position))
        {
            throw new AmqpFormatException($"declared length {length} exceeds the {_data.Length - _position} bytes left");
        }
        return (int)length;
    }

    internal static string Utf8String(ReadOnlySpan<byte> bytes, string what)
    {
        if (bytes.IsEmpty)
        {
            return string.Empty;
        }
        if (!Utf8.IsValid(bytes))
        {
            throw new AmqpFormatException($"{what} is not valid UTF-8");
        }
        return Encoding.UTF8.GetString(bytes);
    }
}
