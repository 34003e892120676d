using System.Text;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Content;

namespace Broker.Edge.Amqp;

/// <summary>Reads the queue.declare arguments the broker acts on; a bad value is a 406 with RabbitMQ's wording.</summary>
internal static class QueueArgumentParser
{
    public static QueueArguments? Parse(FieldTable arguments, string queue, out string? error)
    {
        error = null;
        long? ttl = null, expires = null, maxLength = null;
        string? dlx = null, dlk = null;
        var overflow = QueueOverflow.DropHead;
        foreach (var (name, value) in arguments)
        {
            switch (name)
            {
                case "x-message-ttl":
                    ttl = Integer(name, value, queue, min: 0, ref error);
                    break;
                case "x-expires":
                    expires = Integer(name, value, queue, min: 1, ref error);
                    break;
                case "x-max-length":
                    maxLength = Integer(name, value, queue, min: 0, ref error);
                    break;
                case "x-overflow":
                    switch (Text(value))
                    {
                        case "drop-head":
                            overflow = QueueOverflow.DropHead;
                            break;
                        case "reject-publish":
                            overflow = QueueOverflow.RejectPublish;
                            break;
                        case "reject-publish-dlx":
                            overflow = QueueOverflow.RejectPublishDlx;
                            break;
                        default:
                            error ??= Invalid(name, queue, $"'{Text(value) ?? value?.ToString()}' is not drop-head, reject-publish or reject-publish-dlx");
                            break;
                    }
                    break;
                case "x-dead-letter-exchange":
                    dlx = Text(value) ?? Fail(name, queue, "not a string", ref error);
                    break;
                case "x-dead-letter-routing-key":
                    dlk = Text(value) ?? Fail(name, queue, "not a string", ref error);
                    break;
                case "x-queue-type":
                    if (Text(value) != "classic")
                    {
                        error ??= Invalid(name, queue, $"queue type '{Text(value)}' is not supported, only 'classic'");
                    }
                    break;
            }
        }
        if (dlk is not null && dlx is null)
        {
            error ??= Invalid("x-dead-letter-routing-key", queue, "x-dead-letter-exchange is not set");
        }
        return error is null ? new QueueArguments(ttl, expires, maxLength, dlx, dlk, overflow) : null;
    }

    private static long? Integer(string name, object? value, string queue, long min, ref string? error)
    {
        long? n = value switch
        {
            sbyte v => v,
            byte v => v,
            short v => v,
            ushort v => v,
            int v => v,
            uint v => v,
            long v => v,
            _ => null,
        };
        if (n is null)
        {
            error ??= Invalid(name, queue, "not an integer");
            return null;
        }
        if (n < min)
        {
            error ??= Invalid(name, queue, $"value {n} is below {min}");
            return null;
        }
        return n;
    }

    private static string? Fail(string name, string queue, string why, ref string? error)
    {
        error ??= Invalid(name, queue, why);
        return null;
    }

    private static string Invalid(string name, string queue, string why) =>
        $"PRECONDITION_FAILED - invalid arg '{name}' for queue '{queue}' in vhost '/': {why}";

    private static string? Text(object? value) => value switch
    {
        byte[] b => Encoding.UTF8.GetString(b),
        string s => s,
        _ => null,
    };
}
