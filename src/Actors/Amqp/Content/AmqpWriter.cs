using System.Buffers.Binary;
using System.Text;

namespace Broker.Actors.Amqp.Content;

/// <summary>
/// Writes AMQP 0.9.1 domain types, big-endian, into a span the caller sized with the <c>SizeOf</c>
/// helpers (or an upper bound of them). See <see cref="AmqpReader"/> for the layouts.
/// </summary>
public ref struct AmqpWriter
{
    private readonly Span<byte> _buffer;
    private int _position;

    public AmqpWriter(Span<byte> buffer)
    {
        _buffer = buffer;
        _position = 0;
    }

    public readonly int Position => _position;

    public void WriteOctet(byte value) => _buffer[_position++] = value;

    public void WriteUInt16(ushort value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(_buffer[_position..], value);
        _position += 2;
    }

    public void WriteUInt32(uint value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_buffer[_position..], value);
        _position += 4;
    }

    public void WriteUInt64(ulong value)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_buffer[_position..], value);
        _position += 8;
    }

    public void WriteBytes(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(_buffer[_position..]);
        _position += bytes.Length;
    }

    /// <summary>Encodes straight into the output, then checks the 255-byte limit of a shortstr.</summary>
    public void WriteShortString(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            _buffer[_position++] = 0;
            return;
        }
        var length = Encoding.UTF8.GetBytes(value, _buffer[(_position + 1)..]);
        if (length > byte.MaxValue)
        {
            throw new ArgumentException($"short string of {length} UTF-8 bytes; at most 255 fit", nameof(value));
        }
        _buffer[_position] = (byte)length;
        _position += 1 + length;
    }

    public void WriteLongString(ReadOnlySpan<byte> value)
    {
        WriteUInt32((uint)value.Length);
        WriteBytes(value);
    }

    public void WriteLongString(string? value)
    {
        var length = string.IsNullOrEmpty(value) ? 0 : Encoding.UTF8.GetBytes(value, _buffer[(_position + 4)..]);
        BinaryPrimitives.WriteUInt32BigEndian(_buffer[_position..], (uint)length);
        _position += 4 + length;
    }

    public void WriteTable(FieldTable? table) => FieldTableCodec.WriteTable(ref this, table ?? FieldTable.Empty, 1);

    /// <summary>Fills a 4-byte length written earlier as a placeholder at <paramref name="at"/>.</summary>
    internal readonly void PatchUInt32(int at, uint value) => BinaryPrimitives.WriteUInt32BigEndian(_buffer[at..], value);

    /// <summary>
    /// An upper bound of the bytes <see cref="WriteShortString"/> uses, without a pass over the text: one UTF-16
    /// code unit never takes more than 3 UTF-8 bytes.
    /// </summary>
    public static int MaxSizeOfShortString(string? value) => 1 + (value is null ? 0 : value.Length * 3);

    public static int MaxSizeOfLongString(string? value) => 4 + (value is null ? 0 : value.Length * 3);
}
