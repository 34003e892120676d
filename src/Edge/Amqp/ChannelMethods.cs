using Broker.Actors.Amqp.Content;

namespace Broker.Edge.Amqp;

/// <summary>channel.open (20/10), client to server. Reserved: out-of-band (shortstr).</summary>
public sealed record ChannelOpen : AmqpMethod
{
    public static ChannelOpen Instance { get; } = new();

    private ChannelOpen()
    {
    }

    public override ushort ClassId => 20;
    public override ushort MethodId => 10;

    internal override int MaxArgumentsSize() => 1;

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteShortString("");

    internal static ChannelOpen Read(ref AmqpReader reader)
    {
        reader.SkipShortString();
        return Instance;
    }
}

/// <summary>channel.open-ok (20/11), server to client. Reserved: channel-id (longstr).</summary>
public sealed record ChannelOpenOk : AmqpMethod
{
    public static ChannelOpenOk Instance { get; } = new();

    private ChannelOpenOk()
    {
    }

    public override ushort ClassId => 20;
    public override ushort MethodId => 11;

    internal override int MaxArgumentsSize() => 4;

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteUInt32(0);

    internal static ChannelOpenOk Read(ref AmqpReader reader)
    {
        reader.ReadLongStringBytes();
        return Instance;
    }
}

/// <summary>channel.flow (20/20), either direction: pause (false) or resume (true) deliveries.</summary>
public sealed record ChannelFlow(bool Active) : AmqpMethod
{
    public override ushort ClassId => 20;
    public override ushort MethodId => 20;

    internal override int MaxArgumentsSize() => 1;

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteOctet(Bits(Active));

    internal static ChannelFlow Read(ref AmqpReader reader) => new(Bit(reader.ReadOctet(), 0));
}

/// <summary>channel.flow-ok (20/21), either direction.</summary>
public sealed record ChannelFlowOk(bool Active) : AmqpMethod
{
    public override ushort ClassId => 20;
    public override ushort MethodId => 21;

    internal override int MaxArgumentsSize() => 1;

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteOctet(Bits(Active));

    internal static ChannelFlowOk Read(ref AmqpReader reader) => new(Bit(reader.ReadOctet(), 0));
}

/// <summary>channel.close (20/40), either direction; see <see cref="ConnectionClose"/> for the arguments.</summary>
public sealed record ChannelClose(ushort ReplyCode, string ReplyText, ushort FailingClassId, ushort FailingMethodId) : AmqpMethod
{
    public override ushort ClassId => 20;
    public override ushort MethodId => 40;

    internal override int MaxArgumentsSize() => 6 + Str(ReplyText);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(ReplyCode);
        writer.WriteShortString(ReplyText);
        writer.WriteUInt16(FailingClassId);
        writer.WriteUInt16(FailingMethodId);
    }

    internal static ChannelClose Read(ref AmqpReader reader) =>
        new(reader.ReadUInt16(), reader.ReadShortString(), reader.ReadUInt16(), reader.ReadUInt16());
}

/// <summary>channel.close-ok (20/41), either direction.</summary>
public sealed record ChannelCloseOk : AmqpMethodWithoutArguments
{
    public static ChannelCloseOk Instance { get; } = new();

    private ChannelCloseOk()
    {
    }

    public override ushort ClassId => 20;
    public override ushort MethodId => 41;
}
