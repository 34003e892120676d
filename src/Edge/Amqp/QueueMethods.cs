using Broker.Actors.Amqp.Content;

namespace Broker.Edge.Amqp;

/// <summary>queue.declare (50/10), client to server; an empty name asks the server to make one up. Reserved: ticket (short).</summary>
public sealed record QueueDeclare(string Queue, bool Passive, bool Durable, bool Exclusive, bool AutoDelete, bool NoWait, FieldTable Arguments) : AmqpMethod
{
    public override ushort ClassId => 50;
    public override ushort MethodId => 10;

    internal override int MaxArgumentsSize() => 2 + Str(Queue) + 1 + FieldTableCodec.SizeOf(Arguments);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(0);
        writer.WriteShortString(Queue);
        writer.WriteOctet(Bits(Passive, Durable, Exclusive, AutoDelete, NoWait));
        writer.WriteTable(Arguments);
    }

    internal static QueueDeclare Read(ref AmqpReader reader)
    {
        reader.ReadUInt16();
        var queue = reader.ReadShortString();
        var bits = reader.ReadOctet();
        return new(queue, Bit(bits, 0), Bit(bits, 1), Bit(bits, 2), Bit(bits, 3), Bit(bits, 4), reader.ReadTable());
    }
}

/// <summary>queue.declare-ok (50/11), server to client.</summary>
public sealed record QueueDeclareOk(string Queue, uint MessageCount, uint ConsumerCount) : AmqpMethod
{
    public override ushort ClassId => 50;
    public override ushort MethodId => 11;

    internal override int MaxArgumentsSize() => Str(Queue) + 8;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteShortString(Queue);
        writer.WriteUInt32(MessageCount);
        writer.WriteUInt32(ConsumerCount);
    }

    internal static QueueDeclareOk Read(ref AmqpReader reader) => new(reader.ReadShortString(), reader.ReadUInt32(), reader.ReadUInt32());
}

/// <summary>queue.bind (50/20), client to server. Reserved: ticket (short).</summary>
public sealed record QueueBind(string Queue, string Exchange, string RoutingKey, bool NoWait, FieldTable Arguments) : AmqpMethod
{
    public override ushort ClassId => 50;
    public override ushort MethodId => 20;

    /// <summary>
    /// The argument table in wire form with its 4-byte size, or an empty array when the table is empty: the
    /// form a binding is stored and compared in. Re-encoded from <see cref="Arguments"/>, which gives the
    /// bytes the client sent, because reading a table keeps order, duplicates and types and refuses what
    /// could be written back differently.
    /// </summary>
    public byte[] ArgumentsRaw => BindingArguments.Raw(Arguments);

    internal override int MaxArgumentsSize() => 2 + Str(Queue) + Str(Exchange) + Str(RoutingKey) + 1 + FieldTableCodec.SizeOf(Arguments);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(0);
        writer.WriteShortString(Queue);
        writer.WriteShortString(Exchange);
        writer.WriteShortString(RoutingKey);
        writer.WriteOctet(Bits(NoWait));
        writer.WriteTable(Arguments);
    }

    internal static QueueBind Read(ref AmqpReader reader)
    {
        reader.ReadUInt16();
        return new(reader.ReadShortString(), reader.ReadShortString(), reader.ReadShortString(), Bit(reader.ReadOctet(), 0), reader.ReadTable());
    }
}

/// <summary>queue.bind-ok (50/21), server to client.</summary>
public sealed record QueueBindOk : AmqpMethodWithoutArguments
{
    public static QueueBindOk Instance { get; } = new();

    private QueueBindOk()
    {
    }

    public override ushort ClassId => 50;
    public override ushort MethodId => 21;
}

/// <summary>queue.purge (50/30), client to server. Reserved: ticket (short).</summary>
public sealed record QueuePurge(string Queue, bool NoWait) : AmqpMethod
{
    public override ushort ClassId => 50;
    public override ushort MethodId => 30;

    internal override int MaxArgumentsSize() => 2 + Str(Queue) + 1;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(0);
        writer.WriteShortString(Queue);
        writer.WriteOctet(Bits(NoWait));
    }

    internal static QueuePurge Read(ref AmqpReader reader)
    {
        reader.ReadUInt16();
        return new(reader.ReadShortString(), Bit(reader.ReadOctet(), 0));
    }
}

/// <summary>queue.purge-ok (50/31), server to client: how many messages were removed.</summary>
public sealed record QueuePurgeOk(uint MessageCount) : AmqpMethod
{
    public override ushort ClassId => 50;
    public override ushort MethodId => 31;

    internal override int MaxArgumentsSize() => 4;

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteUInt32(MessageCount);

    internal static QueuePurgeOk Read(ref AmqpReader reader) => new(reader.ReadUInt32());
}

/// <summary>queue.delete (50/40), client to server. Reserved: ticket (short).</summary>
public sealed record QueueDelete(string Queue, bool IfUnused, bool IfEmpty, bool NoWait) : AmqpMethod
{
    public override ushort ClassId => 50;
    public override ushort MethodId => 40;

    internal override int MaxArgumentsSize() => 2 + Str(Queue) + 1;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(0);
        writer.WriteShortString(Queue);
        writer.WriteOctet(Bits(IfUnused, IfEmpty, NoWait));
    }

    internal static QueueDelete Read(ref AmqpReader reader)
    {
        reader.ReadUInt16();
        var queue = reader.ReadShortString();
        var bits = reader.ReadOctet();
        return new(queue, Bit(bits, 0), Bit(bits, 1), Bit(bits, 2));
    }
}

/// <summary>queue.delete-ok (50/41), server to client: how many messages were deleted with the queue.</summary>
public sealed record QueueDeleteOk(uint MessageCount) : AmqpMethod
{
    public override ushort ClassId => 50;
    public override ushort MethodId => 41;

    internal override int MaxArgumentsSize() => 4;

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteUInt32(MessageCount);

    internal static QueueDeleteOk Read(ref AmqpReader reader) => new(reader.ReadUInt32());
}

/// <summary>queue.unbind (50/50), client to server; unlike the other binding methods it has no no-wait bit. Reserved: ticket (short).</summary>
public sealed record QueueUnbind(string Queue, string Exchange, string RoutingKey, FieldTable Arguments) : AmqpMethod
{
    public override ushort ClassId => 50;
    public override ushort MethodId => 50;

    /// <inheritdoc cref="QueueBind.ArgumentsRaw"/>
    public byte[] ArgumentsRaw => BindingArguments.Raw(Arguments);

    internal override int MaxArgumentsSize() => 2 + Str(Queue) + Str(Exchange) + Str(RoutingKey) + FieldTableCodec.SizeOf(Arguments);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(0);
        writer.WriteShortString(Queue);
        writer.WriteShortString(Exchange);
        writer.WriteShortString(RoutingKey);
        writer.WriteTable(Arguments);
    }

    internal static QueueUnbind Read(ref AmqpReader reader)
    {
        reader.ReadUInt16();
        return new(reader.ReadShortString(), reader.ReadShortString(), reader.ReadShortString(), reader.ReadTable());
    }
}

/// <summary>queue.unbind-ok (50/51), server to client.</summary>
public sealed record QueueUnbindOk : AmqpMethodWithoutArguments
{
    public static QueueUnbindOk Instance { get; } = new();

    private QueueUnbindOk()
    {
    }

    public override ushort ClassId => 50;
    public override ushort MethodId => 51;
}
