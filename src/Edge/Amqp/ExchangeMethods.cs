using Broker.Actors.Amqp.Content;

namespace Broker.Edge.Amqp;

/// <summary>exchange.declare (40/10), client to server. Reserved: ticket (short).</summary>
public sealed record ExchangeDeclare(string Exchange, string Type, bool Passive, bool Durable, bool AutoDelete, bool Internal, bool NoWait, FieldTable Arguments) : AmqpMethod
{
    public override ushort ClassId => 40;
    public override ushort MethodId => 10;

    internal override int MaxArgumentsSize() => 2 + Str(Exchange) + Str(Type) + 1 + FieldTableCodec.SizeOf(Arguments);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(0);
        writer.WriteShortString(Exchange);
        writer.WriteShortString(Type);
        writer.WriteOctet(Bits(Passive, Durable, AutoDelete, Internal, NoWait));
        writer.WriteTable(Arguments);
    }

    internal static ExchangeDeclare Read(ref AmqpReader reader)
    {
        reader.ReadUInt16();
        var exchange = reader.ReadShortString();
        var type = reader.ReadShortString();
        var bits = reader.ReadOctet();
        return new(exchange, type, Bit(bits, 0), Bit(bits, 1), Bit(bits, 2), Bit(bits, 3), Bit(bits, 4), reader.ReadTable());
    }
}

/// <summary>exchange.declare-ok (40/11), server to client.</summary>
public sealed record ExchangeDeclareOk : AmqpMethodWithoutArguments
{
    public static ExchangeDeclareOk Instance { get; } = new();

    private ExchangeDeclareOk()
    {
    }

    public override ushort ClassId => 40;
    public override ushort MethodId => 11;
}

/// <summary>exchange.delete (40/20), client to server. Reserved: ticket (short).</summary>
public sealed record ExchangeDelete(string Exchange, bool IfUnused, bool NoWait) : AmqpMethod
{
    public override ushort ClassId => 40;
    public override ushort MethodId => 20;

    internal override int MaxArgumentsSize() => 2 + Str(Exchange) + 1;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(0);
        writer.WriteShortString(Exchange);
        writer.WriteOctet(Bits(IfUnused, NoWait));
    }

    internal static ExchangeDelete Read(ref AmqpReader reader)
    {
        reader.ReadUInt16();
        var exchange = reader.ReadShortString();
        var bits = reader.ReadOctet();
        return new(exchange, Bit(bits, 0), Bit(bits, 1));
    }
}

/// <summary>exchange.delete-ok (40/21), server to client.</summary>
public sealed record ExchangeDeleteOk : AmqpMethodWithoutArguments
{
    public static ExchangeDeleteOk Instance { get; } = new();

    private ExchangeDeleteOk()
    {
    }

    public override ushort ClassId => 40;
    public override ushort MethodId => 21;
}

/// <summary>
/// exchange.bind (40/30), client to server (RabbitMQ extension): route from <paramref name="Source"/> to
/// <paramref name="Destination"/>. Reserved: ticket (short).
/// </summary>
public sealed record ExchangeBind(string Destination, string Source, string RoutingKey, bool NoWait, FieldTable Arguments) : AmqpMethod
{
    public override ushort ClassId => 40;
    public override ushort MethodId => 30;

    /// <inheritdoc cref="QueueBind.ArgumentsRaw"/>
    public byte[] ArgumentsRaw => BindingArguments.Raw(Arguments);

    internal override int MaxArgumentsSize() => 2 + Str(Destination) + Str(Source) + Str(RoutingKey) + 1 + FieldTableCodec.SizeOf(Arguments);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(0);
        writer.WriteShortString(Destination);
        writer.WriteShortString(Source);
        writer.WriteShortString(RoutingKey);
        writer.WriteOctet(Bits(NoWait));
        writer.WriteTable(Arguments);
    }

    internal static ExchangeBind Read(ref AmqpReader reader)
    {
        reader.ReadUInt16();
        return new(reader.ReadShortString(), reader.ReadShortString(), reader.ReadShortString(), Bit(reader.ReadOctet(), 0), reader.ReadTable());
    }
}

/// <summary>exchange.bind-ok (40/31), server to client (RabbitMQ extension).</summary>
public sealed record ExchangeBindOk : AmqpMethodWithoutArguments
{
    public static ExchangeBindOk Instance { get; } = new();

    private ExchangeBindOk()
    {
    }

    public override ushort ClassId => 40;
    public override ushort MethodId => 31;
}

/// <summary>exchange.unbind (40/40), client to server (RabbitMQ extension). Reserved: ticket (short).</summary>
public sealed record ExchangeUnbind(string Destination, string Source, string RoutingKey, bool NoWait, FieldTable Arguments) : AmqpMethod
{
    public override ushort ClassId => 40;
    public override ushort MethodId => 40;

    /// <inheritdoc cref="QueueBind.ArgumentsRaw"/>
    public byte[] ArgumentsRaw => BindingArguments.Raw(Arguments);

    internal override int MaxArgumentsSize() => 2 + Str(Destination) + Str(Source) + Str(RoutingKey) + 1 + FieldTableCodec.SizeOf(Arguments);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(0);
        writer.WriteShortString(Destination);
        writer.WriteShortString(Source);
        writer.WriteShortString(RoutingKey);
        writer.WriteOctet(Bits(NoWait));
        writer.WriteTable(Arguments);
    }

    internal static ExchangeUnbind Read(ref AmqpReader reader)
    {
        reader.ReadUInt16();
        return new(reader.ReadShortString(), reader.ReadShortString(), reader.ReadShortString(), Bit(reader.ReadOctet(), 0), reader.ReadTable());
    }
}

/// <summary>exchange.unbind-ok (40/51, not 41), server to client (RabbitMQ extension).</summary>
public sealed record ExchangeUnbindOk : AmqpMethodWithoutArguments
{
    public static ExchangeUnbindOk Instance { get; } = new();

    private ExchangeUnbindOk()
    {
    }

    public override ushort ClassId => 40;
    public override ushort MethodId => 51;
}

internal static class BindingArguments
{
    public static byte[] Raw(FieldTable arguments) => arguments.Count == 0 ? [] : FieldTableCodec.Write(arguments);
}
