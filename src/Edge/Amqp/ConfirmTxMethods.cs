using Broker.Actors.Amqp.Content;

namespace Broker.Edge.Amqp;

/// <summary>confirm.select (85/10), client to server (RabbitMQ extension): publisher confirms on this channel.</summary>
public sealed record ConfirmSelect(bool NoWait) : AmqpMethod
{
    public override ushort ClassId => 85;
    public override ushort MethodId => 10;

    internal override int MaxArgumentsSize() => 1;

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteOctet(Bits(NoWait));

    internal static ConfirmSelect Read(ref AmqpReader reader) => new(Bit(reader.ReadOctet(), 0));
}

/// <summary>confirm.select-ok (85/11), server to client.</summary>
public sealed record ConfirmSelectOk : AmqpMethodWithoutArguments
{
    public static ConfirmSelectOk Instance { get; } = new();

    private ConfirmSelectOk()
    {
    }

    public override ushort ClassId => 85;
    public override ushort MethodId => 11;
}

/// <summary>tx.select (90/10), client to server.</summary>
public sealed record TxSelect : AmqpMethodWithoutArguments
{
    public static TxSelect Instance { get; } = new();

    private TxSelect()
    {
    }

    public override ushort ClassId => 90;
    public override ushort MethodId => 10;
}

/// <summary>tx.select-ok (90/11), server to client.</summary>
public sealed record TxSelectOk : AmqpMethodWithoutArguments
{
    public static TxSelectOk Instance { get; } = new();

    private TxSelectOk()
    {
    }

    public override ushort ClassId => 90;
    public override ushort MethodId => 11;
}

/// <summary>tx.commit (90/20), client to server.</summary>
public sealed record TxCommit : AmqpMethodWithoutArguments
{
    public static TxCommit Instance { get; } = new();

    private TxCommit()
    {
    }

    public override ushort ClassId => 90;
    public override ushort MethodId => 20;
}

/// <summary>tx.commit-ok (90/21), server to client.</summary>
public sealed record TxCommitOk : AmqpMethodWithoutArguments
{
    public static TxCommitOk Instance { get; } = new();

    private TxCommitOk()
    {
    }

    public override ushort ClassId => 90;
    public override ushort MethodId => 21;
}

/// <summary>tx.rollback (90/30), client to server.</summary>
public sealed record TxRollback : AmqpMethodWithoutArguments
{
    public static TxRollback Instance { get; } = new();

    private TxRollback()
    {
    }

    public override ushort ClassId => 90;
    public override ushort MethodId => 30;
}

/// <summary>tx.rollback-ok (90/31), server to client.</summary>
public sealed record TxRollbackOk : AmqpMethodWithoutArguments
{
    public static TxRollbackOk Instance { get; } = new();

    private TxRollbackOk()
    {
    }

    public override ushort ClassId => 90;
    public override ushort MethodId => 31;
}
