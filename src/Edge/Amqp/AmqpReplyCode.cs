namespace Broker.Edge.Amqp;

/// <summary>Reply codes of connection.close, channel.close and basic.return (AMQP 0.9.1 constants).</summary>
public static class AmqpReplyCode
{
    public const ushort ReplySuccess = 200;

    // Soft errors close the channel.
    public const ushort ContentTooLarge = 311;
    public const ushort NoRoute = 312;
    public const ushort NoConsumers = 313;
    public const ushort AccessRefused = 403;
    public const ushort NotFound = 404;
    public const ushort ResourceLocked = 405;
    public const ushort PreconditionFailed = 406;

    // Hard errors close the connection.
    public const ushort ConnectionForced = 320;
    public const ushort InvalidPath = 402;
    public const ushort FrameError = 501;
    public const ushort SyntaxError = 502;
    public const ushort CommandInvalid = 503;
    public const ushort ChannelError = 504;
    public const ushort UnexpectedFrame = 505;
    public const ushort ResourceError = 506;
    public const ushort NotAllowed = 530;
    public const ushort NotImplemented = 540;
    public const ushort InternalError = 541;
}
