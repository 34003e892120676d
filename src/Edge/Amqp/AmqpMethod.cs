using Broker.Actors.Amqp.Content;

namespace Broker.Edge.Amqp;

/// <summary>
/// One AMQP 0.9.1 method: the payload of a method frame.
/// <code>
/// +-----------+-----------+--------------------------------------------+
/// | class (2) | method (2)| arguments, in spec order; consecutive bit  |
/// |           |           | arguments share octets, first bit = bit 0  |
/// +-----------+-----------+--------------------------------------------+
/// </code>
/// Reserved arguments (ticket, out-of-band, capabilities, insist, known-hosts, channel-id, cluster-id) have no
/// property: they are written with their defaults and skipped when read. Records compare by value;
/// tables by content.
/// </summary>
public abstract record AmqpMethod
{
    public abstract ushort ClassId { get; }

    public abstract ushort MethodId { get; }

    /// <summary>A content header and body frames follow this method (publish, return, deliver, get-ok).</summary>
    public virtual bool HasContent => false;

    /// <summary>An upper bound of the argument bytes, so a writer can ask for one buffer before encoding.</summary>
    internal abstract int MaxArgumentsSize();

    internal abstract void WriteArguments(ref AmqpWriter writer);

    internal static byte Bits(bool bit0, bool bit1 = false, bool bit2 = false, bool bit3 = false, bool bit4 = false) =>
        (byte)((bit0 ? 1 : 0) | (bit1 ? 2 : 0) | (bit2 ? 4 : 0) | (bit3 ? 8 : 0) | (bit4 ? 16 : 0));

    internal static bool Bit(byte bits, int index) => (bits & (1 << index)) != 0;

    internal static int Str(string value) => AmqpWriter.MaxSizeOfShortString(value);

    internal static bool BytesEqual(byte[] a, byte[] b) => a.AsSpan().SequenceEqual(b);
}

/// <summary>Base of the methods with no arguments at all; each is a singleton (<c>Instance</c>).</summary>
public abstract record AmqpMethodWithoutArguments : AmqpMethod
{
    private protected AmqpMethodWithoutArguments()
    {
    }

    internal sealed override int MaxArgumentsSize() => 0;

    internal sealed override void WriteArguments(ref AmqpWriter writer)
    {
    }
}
