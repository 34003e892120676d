using Broker.Actors.Amqp.Content;

namespace Broker.Edge.Amqp;

/// <summary>basic.qos (60/10), client to server: prefetch window per consumer, or per channel with <paramref name="Global"/>.</summary>
public sealed record BasicQos(uint PrefetchSize, ushort PrefetchCount, bool Global) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 10;

    internal override int MaxArgumentsSize() => 7;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt32(PrefetchSize);
        writer.WriteUInt16(PrefetchCount);
        writer.WriteOctet(Bits(Global));
    }

    internal static BasicQos Read(ref AmqpReader reader) => new(reader.ReadUInt32(), reader.ReadUInt16(), Bit(reader.ReadOctet(), 0));
}

/// <summary>basic.qos-ok (60/11), server to client.</summary>
public sealed record BasicQosOk : AmqpMethodWithoutArguments
{
    public static BasicQosOk Instance { get; } = new();

    private BasicQosOk()
    {
    }

    public override ushort ClassId => 60;
    public override ushort MethodId => 11;
}

/// <summary>basic.consume (60/20), client to server; an empty tag asks the server to make one up. Reserved: ticket (short).</summary>
public sealed record BasicConsume(string Queue, string ConsumerTag, bool NoLocal, bool NoAck, bool Exclusive, bool NoWait, FieldTable Arguments) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 20;

    internal override int MaxArgumentsSize() => 2 + Str(Queue) + Str(ConsumerTag) + 1 + FieldTableCodec.SizeOf(Arguments);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(0);
        writer.WriteShortString(Queue);
        writer.WriteShortString(ConsumerTag);
        writer.WriteOctet(Bits(NoLocal, NoAck, Exclusive, NoWait));
        writer.WriteTable(Arguments);
    }

    internal static BasicConsume Read(ref AmqpReader reader)
    {
        reader.ReadUInt16();
        var queue = reader.ReadShortString();
        var consumerTag = reader.ReadShortString();
        var bits = reader.ReadOctet();
        return new(queue, consumerTag, Bit(bits, 0), Bit(bits, 1), Bit(bits, 2), Bit(bits, 3), reader.ReadTable());
    }
}

/// <summary>basic.consume-ok (60/21), server to client.</summary>
public sealed record BasicConsumeOk(string ConsumerTag) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 21;

    internal override int MaxArgumentsSize() => Str(ConsumerTag);

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteShortString(ConsumerTag);

    internal static BasicConsumeOk Read(ref AmqpReader reader) => new(reader.ReadShortString());
}

/// <summary>basic.cancel (60/30), either direction (server to client when the queue goes away, a RabbitMQ extension).</summary>
public sealed record BasicCancel(string ConsumerTag, bool NoWait) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 30;

    internal override int MaxArgumentsSize() => Str(ConsumerTag) + 1;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteShortString(ConsumerTag);
        writer.WriteOctet(Bits(NoWait));
    }

    internal static BasicCancel Read(ref AmqpReader reader) => new(reader.ReadShortString(), Bit(reader.ReadOctet(), 0));
}

/// <summary>basic.cancel-ok (60/31), either direction.</summary>
public sealed record BasicCancelOk(string ConsumerTag) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 31;

    internal override int MaxArgumentsSize() => Str(ConsumerTag);

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteShortString(ConsumerTag);

    internal static BasicCancelOk Read(ref AmqpReader reader) => new(reader.ReadShortString());
}

/// <summary>basic.publish (60/40), client to server, followed by content. Reserved: ticket (short).</summary>
public sealed record BasicPublish(string Exchange, string RoutingKey, bool Mandatory, bool Immediate) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 40;
    public override bool HasContent => true;

    internal override int MaxArgumentsSize() => 2 + Str(Exchange) + Str(RoutingKey) + 1;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(0);
        writer.WriteShortString(Exchange);
        writer.WriteShortString(RoutingKey);
        writer.WriteOctet(Bits(Mandatory, Immediate));
    }

    internal static BasicPublish Read(ref AmqpReader reader)
    {
        reader.ReadUInt16();
        var exchange = reader.ReadShortString();
        var routingKey = reader.ReadShortString();
        var bits = reader.ReadOctet();
        return new(exchange, routingKey, Bit(bits, 0), Bit(bits, 1));
    }
}

/// <summary>basic.return (60/50), server to client, followed by the unroutable message's content.</summary>
public sealed record BasicReturn(ushort ReplyCode, string ReplyText, string Exchange, string RoutingKey) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 50;
    public override bool HasContent => true;

    internal override int MaxArgumentsSize() => 2 + Str(ReplyText) + Str(Exchange) + Str(RoutingKey);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(ReplyCode);
        writer.WriteShortString(ReplyText);
        writer.WriteShortString(Exchange);
        writer.WriteShortString(RoutingKey);
    }

    internal static BasicReturn Read(ref AmqpReader reader) =>
        new(reader.ReadUInt16(), reader.ReadShortString(), reader.ReadShortString(), reader.ReadShortString());
}

/// <summary>basic.deliver (60/60), server to client, followed by content.</summary>
public sealed record BasicDeliver(string ConsumerTag, ulong DeliveryTag, bool Redelivered, string Exchange, string RoutingKey) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 60;
    public override bool HasContent => true;

    internal override int MaxArgumentsSize() => Str(ConsumerTag) + 9 + Str(Exchange) + Str(RoutingKey);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteShortString(ConsumerTag);
        writer.WriteUInt64(DeliveryTag);
        writer.WriteOctet(Bits(Redelivered));
        writer.WriteShortString(Exchange);
        writer.WriteShortString(RoutingKey);
    }

    internal static BasicDeliver Read(ref AmqpReader reader) =>
        new(reader.ReadShortString(), reader.ReadUInt64(), Bit(reader.ReadOctet(), 0), reader.ReadShortString(), reader.ReadShortString());
}

/// <summary>basic.get (60/70), client to server. Reserved: ticket (short).</summary>
public sealed record BasicGet(string Queue, bool NoAck) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 70;

    internal override int MaxArgumentsSize() => 2 + Str(Queue) + 1;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(0);
        writer.WriteShortString(Queue);
        writer.WriteOctet(Bits(NoAck));
    }

    internal static BasicGet Read(ref AmqpReader reader)
    {
        reader.ReadUInt16();
        return new(reader.ReadShortString(), Bit(reader.ReadOctet(), 0));
    }
}

/// <summary>basic.get-ok (60/71), server to client, followed by content; <paramref name="MessageCount"/> is what is left in the queue.</summary>
public sealed record BasicGetOk(ulong DeliveryTag, bool Redelivered, string Exchange, string RoutingKey, uint MessageCount) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 71;
    public override bool HasContent => true;

    internal override int MaxArgumentsSize() => 9 + Str(Exchange) + Str(RoutingKey) + 4;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt64(DeliveryTag);
        writer.WriteOctet(Bits(Redelivered));
        writer.WriteShortString(Exchange);
        writer.WriteShortString(RoutingKey);
        writer.WriteUInt32(MessageCount);
    }

    internal static BasicGetOk Read(ref AmqpReader reader) =>
        new(reader.ReadUInt64(), Bit(reader.ReadOctet(), 0), reader.ReadShortString(), reader.ReadShortString(), reader.ReadUInt32());
}

/// <summary>basic.get-empty (60/72), server to client. Reserved: cluster-id (shortstr).</summary>
public sealed record BasicGetEmpty : AmqpMethod
{
    public static BasicGetEmpty Instance { get; } = new();

    private BasicGetEmpty()
    {
    }

    public override ushort ClassId => 60;
    public override ushort MethodId => 72;

    internal override int MaxArgumentsSize() => 1;

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteShortString("");

    internal static BasicGetEmpty Read(ref AmqpReader reader)
    {
        reader.SkipShortString();
        return Instance;
    }
}

/// <summary>basic.ack (60/80): client to server settles deliveries; server to client confirms publishes (confirm mode).</summary>
public sealed record BasicAck(ulong DeliveryTag, bool Multiple) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 80;

    internal override int MaxArgumentsSize() => 9;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt64(DeliveryTag);
        writer.WriteOctet(Bits(Multiple));
    }

    internal static BasicAck Read(ref AmqpReader reader) => new(reader.ReadUInt64(), Bit(reader.ReadOctet(), 0));
}

/// <summary>basic.reject (60/90), client to server: one delivery, requeued or dropped (dead-lettered).</summary>
public sealed record BasicReject(ulong DeliveryTag, bool Requeue) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 90;

    internal override int MaxArgumentsSize() => 9;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt64(DeliveryTag);
        writer.WriteOctet(Bits(Requeue));
    }

    internal static BasicReject Read(ref AmqpReader reader) => new(reader.ReadUInt64(), Bit(reader.ReadOctet(), 0));
}

/// <summary>basic.recover-async (60/100), client to server: deprecated form of <see cref="BasicRecover"/> with no reply.</summary>
public sealed record BasicRecoverAsync(bool Requeue) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 100;

    internal override int MaxArgumentsSize() => 1;

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteOctet(Bits(Requeue));

    internal static BasicRecoverAsync Read(ref AmqpReader reader) => new(Bit(reader.ReadOctet(), 0));
}

/// <summary>basic.recover (60/110), client to server: redeliver every unacknowledged delivery of the channel.</summary>
public sealed record BasicRecover(bool Requeue) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 110;

    internal override int MaxArgumentsSize() => 1;

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteOctet(Bits(Requeue));

    internal static BasicRecover Read(ref AmqpReader reader) => new(Bit(reader.ReadOctet(), 0));
}

/// <summary>basic.recover-ok (60/111), server to client.</summary>
public sealed record BasicRecoverOk : AmqpMethodWithoutArguments
{
    public static BasicRecoverOk Instance { get; } = new();

    private BasicRecoverOk()
    {
    }

    public override ushort ClassId => 60;
    public override ushort MethodId => 111;
}

/// <summary>basic.nack (60/120, RabbitMQ extension): a reject of one or many deliveries; server to client, a publish not confirmed.</summary>
public sealed record BasicNack(ulong DeliveryTag, bool Multiple, bool Requeue) : AmqpMethod
{
    public override ushort ClassId => 60;
    public override ushort MethodId => 120;

    internal override int MaxArgumentsSize() => 9;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt64(DeliveryTag);
        writer.WriteOctet(Bits(Multiple, Requeue));
    }

    internal static BasicNack Read(ref AmqpReader reader)
    {
        var deliveryTag = reader.ReadUInt64();
        var bits = reader.ReadOctet();
        return new(deliveryTag, Bit(bits, 0), Bit(bits, 1));
    }
}
