using System.Buffers;
using System.Buffers.Binary;
using Broker.Actors.Amqp.Content;

namespace Broker.Edge.Amqp;

/// <summary>Decodes method frame payloads into <see cref="AmqpMethod"/> records and encodes them back.</summary>
public static class AmqpMethodCodec
{
    /// <summary>Payloads up to this size that span segments are gathered on the stack; larger ones in a pooled array.</summary>
    private const int StackCopyLimit = 512;

    /// <summary>Decodes a method frame's payload (class id, method id, arguments).</summary>
    /// <exception cref="AmqpFormatException">
    /// <see cref="AmqpReplyCode.NotImplemented"/> for an unknown class or method, <see cref="AmqpReplyCode.SyntaxError"/>
    /// for arguments that are truncated, malformed or followed by extra bytes; <c>ClassId</c> and <c>MethodId</c>
    /// name the method when its ids were read.
    /// </exception>
    public static AmqpMethod Decode(ReadOnlySequence<byte> payload, int maxTableDepth = FieldTableCodec.MaxDepth)
    {
        if (payload.IsSingleSegment)
        {
            return Decode(payload.FirstSpan, maxTableDepth);
        }
        if (payload.Length <= StackCopyLimit)
        {
            Span<byte> copy = stackalloc byte[StackCopyLimit];
            payload.CopyTo(copy);
            return Decode(copy[..(int)payload.Length], maxTableDepth);
        }
        // The frame reader bounded the payload by frame-max, so this fits an int.
        var length = (int)payload.Length;
        var rented = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            payload.CopyTo(rented);
            return Decode(rented.AsSpan(0, length), maxTableDepth);
        }
        finally
        {
            // Returned here: decoding copies out every string, byte array and table it keeps.
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <inheritdoc cref="Decode(ReadOnlySequence{byte})"/>
    public static AmqpMethod Decode(ReadOnlySpan<byte> payload, int maxTableDepth = FieldTableCodec.MaxDepth)
    {
        var reader = new AmqpReader(payload, maxTableDepth);
        var classId = reader.ReadUInt16();
        var methodId = reader.ReadUInt16();
        try
        {
            var method = Read(ref reader, classId, methodId);
            reader.EnsureEnd();
            return method;
        }
        catch (AmqpFormatException e) when (e.ClassId == 0)
        {
            throw new AmqpFormatException($"{classId}/{methodId}: {e.Message}", e.ReplyCode) { ClassId = classId, MethodId = methodId };
        }
    }

    /// <summary>The method frame payload for <paramref name="method"/>.</summary>
    /// <exception cref="ArgumentException">a short string over 255 UTF-8 bytes, or a table value with no field type.</exception>
    public static byte[] Encode(AmqpMethod method)
    {
        var buffer = new byte[4 + method.MaxArgumentsSize()];
        return buffer[..Write(method, buffer)];
    }

    /// <summary>Writes class id, method id and arguments; <paramref name="destination"/> must hold the upper bound the method gives.</summary>
    internal static int Write(AmqpMethod method, Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, method.ClassId);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], method.MethodId);
        var writer = new AmqpWriter(destination[4..]);
        method.WriteArguments(ref writer);
        return 4 + writer.Position;
    }

    private static AmqpMethod Read(ref AmqpReader reader, ushort classId, ushort methodId) => ((uint)classId << 16 | methodId) switch
    {
        0x000A_000A => ConnectionStart.Read(ref reader),
        0x000A_000B => ConnectionStartOk.Read(ref reader),
        0x000A_0014 => ConnectionSecure.Read(ref reader),
        0x000A_0015 => ConnectionSecureOk.Read(ref reader),
        0x000A_001E => ConnectionTune.Read(ref reader),
        0x000A_001F => ConnectionTuneOk.Read(ref reader),
        0x000A_0028 => ConnectionOpen.Read(ref reader),
        0x000A_0029 => ConnectionOpenOk.Read(ref reader),
        0x000A_0032 => ConnectionClose.Read(ref reader),
        0x000A_0033 => ConnectionCloseOk.Instance,
        0x000A_003C => ConnectionBlocked.Read(ref reader),
        0x000A_003D => ConnectionUnblocked.Instance,
        0x000A_0046 => ConnectionUpdateSecret.Read(ref reader),
        0x000A_0047 => ConnectionUpdateSecretOk.Instance,

        0x0014_000A => ChannelOpen.Read(ref reader),
        0x0014_000B => ChannelOpenOk.Read(ref reader),
        0x0014_0014 => ChannelFlow.Read(ref reader),
        0x0014_0015 => ChannelFlowOk.Read(ref reader),
        0x0014_0028 => ChannelClose.Read(ref reader),
        0x0014_0029 => ChannelCloseOk.Instance,

        0x0028_000A => ExchangeDeclare.Read(ref reader),
        0x0028_000B => ExchangeDeclareOk.Instance,
        0x0028_0014 => ExchangeDelete.Read(ref reader),
        0x0028_0015 => ExchangeDeleteOk.Instance,
        0x0028_001E => ExchangeBind.Read(ref reader),
        0x0028_001F => ExchangeBindOk.Instance,
        0x0028_0028 => ExchangeUnbind.Read(ref reader),
        0x0028_0033 => ExchangeUnbindOk.Instance,

        0x0032_000A => QueueDeclare.Read(ref reader),
        0x0032_000B => QueueDeclareOk.Read(ref reader),
        0x0032_0014 => QueueBind.Read(ref reader),
        0x0032_0015 => QueueBindOk.Instance,
        0x0032_001E => QueuePurge.Read(ref reader),
        0x0032_001F => QueuePurgeOk.Read(ref reader),
        0x0032_0028 => QueueDelete.Read(ref reader),
        0x0032_0029 => QueueDeleteOk.Read(ref reader),
        0x0032_0032 => QueueUnbind.Read(ref reader),
        0x0032_0033 => QueueUnbindOk.Instance,

        0x003C_000A => BasicQos.Read(ref reader),
        0x003C_000B => BasicQosOk.Instance,
        0x003C_0014 => BasicConsume.Read(ref reader),
        0x003C_0015 => BasicConsumeOk.Read(ref reader),
        0x003C_001E => BasicCancel.Read(ref reader),
        0x003C_001F => BasicCancelOk.Read(ref reader),
        0x003C_0028 => BasicPublish.Read(ref reader),
        0x003C_0032 => BasicReturn.Read(ref reader),
        0x003C_003C => BasicDeliver.Read(ref reader),
        0x003C_0046 => BasicGet.Read(ref reader),
        0x003C_0047 => BasicGetOk.Read(ref reader),
        0x003C_0048 => BasicGetEmpty.Read(ref reader),
        0x003C_0050 => BasicAck.Read(ref reader),
        0x003C_005A => BasicReject.Read(ref reader),
        0x003C_0064 => BasicRecoverAsync.Read(ref reader),
        0x003C_006E => BasicRecover.Read(ref reader),
        0x003C_006F => BasicRecoverOk.Instance,
        0x003C_0078 => BasicNack.Read(ref reader),

        0x0055_000A => ConfirmSelect.Read(ref reader),
        0x0055_000B => ConfirmSelectOk.Instance,

        0x005A_000A => TxSelect.Instance,
        0x005A_000B => TxSelectOk.Instance,
        0x005A_0014 => TxCommit.Instance,
        0x005A_0015 => TxCommitOk.Instance,
        0x005A_001E => TxRollback.Instance,
        0x005A_001F => TxRollbackOk.Instance,

        _ => throw new AmqpFormatException($"unknown method {classId}/{methodId}", AmqpReplyCode.NotImplemented) { ClassId = classId, MethodId = methodId },
    };
}
