using Broker.Actors.Amqp.Content;

namespace Broker.Edge.Amqp;

/// <summary>connection.start (10/10), server to client: versions, properties, SASL mechanisms and locales (space-separated).</summary>
public sealed record ConnectionStart(byte VersionMajor, byte VersionMinor, FieldTable ServerProperties, string Mechanisms, string Locales) : AmqpMethod
{
    public override ushort ClassId => 10;
    public override ushort MethodId => 10;

    internal override int MaxArgumentsSize() =>
        2 + FieldTableCodec.SizeOf(ServerProperties) + AmqpWriter.MaxSizeOfLongString(Mechanisms) + AmqpWriter.MaxSizeOfLongString(Locales);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteOctet(VersionMajor);
        writer.WriteOctet(VersionMinor);
        writer.WriteTable(ServerProperties);
        writer.WriteLongString(Mechanisms);
        writer.WriteLongString(Locales);
    }

    internal static ConnectionStart Read(ref AmqpReader reader) =>
        new(reader.ReadOctet(), reader.ReadOctet(), reader.ReadTable(), reader.ReadLongString(), reader.ReadLongString());
}

/// <summary>connection.start-ok (10/11), client to server: the chosen mechanism and its response (for PLAIN, "\0user\0password").</summary>
public sealed record ConnectionStartOk(FieldTable ClientProperties, string Mechanism, byte[] Response, string Locale) : AmqpMethod
{
    public override ushort ClassId => 10;
    public override ushort MethodId => 11;

    internal override int MaxArgumentsSize() => FieldTableCodec.SizeOf(ClientProperties) + Str(Mechanism) + 4 + Response.Length + Str(Locale);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteTable(ClientProperties);
        writer.WriteShortString(Mechanism);
        writer.WriteLongString(Response);
        writer.WriteShortString(Locale);
    }

    internal static ConnectionStartOk Read(ref AmqpReader reader) =>
        new(reader.ReadTable(), reader.ReadShortString(), reader.ReadLongStringBytes().ToArray(), reader.ReadShortString());

    public bool Equals(ConnectionStartOk? other) =>
        other is not null && ClientProperties.Equals(other.ClientProperties) && Mechanism == other.Mechanism &&
        BytesEqual(Response, other.Response) && Locale == other.Locale;

    public override int GetHashCode() => HashCode.Combine(Mechanism, Response.Length, Locale);
}

/// <summary>connection.secure (10/20), server to client: a SASL challenge.</summary>
public sealed record ConnectionSecure(byte[] Challenge) : AmqpMethod
{
    public override ushort ClassId => 10;
    public override ushort MethodId => 20;

    internal override int MaxArgumentsSize() => 4 + Challenge.Length;

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteLongString(Challenge);

    internal static ConnectionSecure Read(ref AmqpReader reader) => new(reader.ReadLongStringBytes().ToArray());

    public bool Equals(ConnectionSecure? other) => other is not null && BytesEqual(Challenge, other.Challenge);

    public override int GetHashCode() => Challenge.Length;
}

/// <summary>connection.secure-ok (10/21), client to server: the response to a challenge.</summary>
public sealed record ConnectionSecureOk(byte[] Response) : AmqpMethod
{
    public override ushort ClassId => 10;
    public override ushort MethodId => 21;

    internal override int MaxArgumentsSize() => 4 + Response.Length;

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteLongString(Response);

    internal static ConnectionSecureOk Read(ref AmqpReader reader) => new(reader.ReadLongStringBytes().ToArray());

    public bool Equals(ConnectionSecureOk? other) => other is not null && BytesEqual(Response, other.Response);

    public override int GetHashCode() => Response.Length;
}

/// <summary>connection.tune (10/30), server to client: the server's limits (0 = no limit) and heartbeat seconds.</summary>
public sealed record ConnectionTune(ushort ChannelMax, uint FrameMax, ushort Heartbeat) : AmqpMethod
{
    public override ushort ClassId => 10;
    public override ushort MethodId => 30;

    internal override int MaxArgumentsSize() => 8;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(ChannelMax);
        writer.WriteUInt32(FrameMax);
        writer.WriteUInt16(Heartbeat);
    }

    internal static ConnectionTune Read(ref AmqpReader reader) => new(reader.ReadUInt16(), reader.ReadUInt32(), reader.ReadUInt16());
}

/// <summary>connection.tune-ok (10/31), client to server: the values the client settled on.</summary>
public sealed record ConnectionTuneOk(ushort ChannelMax, uint FrameMax, ushort Heartbeat) : AmqpMethod
{
    public override ushort ClassId => 10;
    public override ushort MethodId => 31;

    internal override int MaxArgumentsSize() => 8;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(ChannelMax);
        writer.WriteUInt32(FrameMax);
        writer.WriteUInt16(Heartbeat);
    }

    internal static ConnectionTuneOk Read(ref AmqpReader reader) => new(reader.ReadUInt16(), reader.ReadUInt32(), reader.ReadUInt16());
}

/// <summary>connection.open (10/40), client to server. Reserved: capabilities (shortstr), insist (bit).</summary>
public sealed record ConnectionOpen(string VirtualHost) : AmqpMethod
{
    public override ushort ClassId => 10;
    public override ushort MethodId => 40;

    internal override int MaxArgumentsSize() => Str(VirtualHost) + 2;

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteShortString(VirtualHost);
        writer.WriteShortString("");
        writer.WriteOctet(0);
    }

    internal static ConnectionOpen Read(ref AmqpReader reader)
    {
        var virtualHost = reader.ReadShortString();
        reader.SkipShortString();
        reader.ReadOctet();
        return new(virtualHost);
    }
}

/// <summary>connection.open-ok (10/41), server to client. Reserved: known-hosts (shortstr).</summary>
public sealed record ConnectionOpenOk : AmqpMethod
{
    public static ConnectionOpenOk Instance { get; } = new();

    private ConnectionOpenOk()
    {
    }

    public override ushort ClassId => 10;
    public override ushort MethodId => 41;

    internal override int MaxArgumentsSize() => 1;

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteShortString("");

    internal static ConnectionOpenOk Read(ref AmqpReader reader)
    {
        reader.SkipShortString();
        return Instance;
    }
}

/// <summary>
/// connection.close (10/50), either direction: why, and the method that caused it
/// (<paramref name="FailingClassId"/>/<paramref name="FailingMethodId"/>, 0 when none).
/// </summary>
public sealed record ConnectionClose(ushort ReplyCode, string ReplyText, ushort FailingClassId, ushort FailingMethodId) : AmqpMethod
{
    public override ushort ClassId => 10;
    public override ushort MethodId => 50;

    internal override int MaxArgumentsSize() => 6 + Str(ReplyText);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteUInt16(ReplyCode);
        writer.WriteShortString(ReplyText);
        writer.WriteUInt16(FailingClassId);
        writer.WriteUInt16(FailingMethodId);
    }

    internal static ConnectionClose Read(ref AmqpReader reader) =>
        new(reader.ReadUInt16(), reader.ReadShortString(), reader.ReadUInt16(), reader.ReadUInt16());
}

/// <summary>connection.close-ok (10/51), either direction.</summary>
public sealed record ConnectionCloseOk : AmqpMethodWithoutArguments
{
    public static ConnectionCloseOk Instance { get; } = new();

    private ConnectionCloseOk()
    {
    }

    public override ushort ClassId => 10;
    public override ushort MethodId => 51;
}

/// <summary>connection.blocked (10/60), server to client (RabbitMQ extension): publishing is paused.</summary>
public sealed record ConnectionBlocked(string Reason) : AmqpMethod
{
    public override ushort ClassId => 10;
    public override ushort MethodId => 60;

    internal override int MaxArgumentsSize() => Str(Reason);

    internal override void WriteArguments(ref AmqpWriter writer) => writer.WriteShortString(Reason);

    internal static ConnectionBlocked Read(ref AmqpReader reader) => new(reader.ReadShortString());
}

/// <summary>connection.unblocked (10/61), server to client (RabbitMQ extension).</summary>
public sealed record ConnectionUnblocked : AmqpMethodWithoutArguments
{
    public static ConnectionUnblocked Instance { get; } = new();

    private ConnectionUnblocked()
    {
    }

    public override ushort ClassId => 10;
    public override ushort MethodId => 61;
}

/// <summary>connection.update-secret (10/70), client to server (RabbitMQ extension): a new credential, such as a refreshed token.</summary>
public sealed record ConnectionUpdateSecret(byte[] NewSecret, string Reason) : AmqpMethod
{
    public override ushort ClassId => 10;
    public override ushort MethodId => 70;

    internal override int MaxArgumentsSize() => 4 + NewSecret.Length + Str(Reason);

    internal override void WriteArguments(ref AmqpWriter writer)
    {
        writer.WriteLongString(NewSecret);
        writer.WriteShortString(Reason);
    }

    internal static ConnectionUpdateSecret Read(ref AmqpReader reader) => new(reader.ReadLongStringBytes().ToArray(), reader.ReadShortString());

    public bool Equals(ConnectionUpdateSecret? other) => other is not null && BytesEqual(NewSecret, other.NewSecret) && Reason == other.Reason;

    public override int GetHashCode() => HashCode.Combine(NewSecret.Length, Reason);
}

/// <summary>connection.update-secret-ok (10/71), server to client (RabbitMQ extension).</summary>
public sealed record ConnectionUpdateSecretOk : AmqpMethodWithoutArguments
{
    public static ConnectionUpdateSecretOk Instance { get; } = new();

    private ConnectionUpdateSecretOk()
    {
    }

    public override ushort ClassId => 10;
    public override ushort MethodId => 71;
}
