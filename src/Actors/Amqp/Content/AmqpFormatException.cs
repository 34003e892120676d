namespace Broker.Actors.Amqp.Content;

/// <summary>
/// Bytes that are not valid AMQP 0.9.1. <see cref="ReplyCode"/> is the connection.close reply code a
/// server answers with: 502 (syntax error) unless the thrower knows better, such as 540 (not implemented)
/// for an unknown class or method.
/// </summary>
public sealed class AmqpFormatException : FormatException
{
    /// <summary>syntax-error: the default, for malformed fields.</summary>
    public const ushort SyntaxError = 502;

    public AmqpFormatException()
    {
    }

    public AmqpFormatException(string message) : base(message)
    {
    }

    public AmqpFormatException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public AmqpFormatException(string message, ushort replyCode) : base(message) => ReplyCode = replyCode;

    public ushort ReplyCode { get; } = SyntaxError;

    /// <summary>The class of the method being decoded when known (0 otherwise): connection.close names it.</summary>
    public ushort ClassId { get; init; }

    /// <summary>The method being decoded when known (0 otherwise).</summary>
    public ushort MethodId { get; init; }
}
