using System.Text.RegularExpressions;
using Broker.Actors.Amqp;
using Broker.AdminHttp.Security;
using Broker.Edge.Amqp;

namespace Broker.Edge.Security;

/// <summary>
/// RabbitMQ's permissions for AMQP users on vhost "/": per user three regular expressions, matched (unanchored, as
/// RabbitMQ does) against the names of the queues and exchanges a method touches. The file has one line per user,
/// <c>user configure write read</c> (the three arguments of <c>rabbitmqctl set_permissions</c>); "^$" grants nothing,
/// ".*" everything. With a file, a user without a line may do nothing; without one, every user may do everything.
/// <code>
///   configure  exchange.declare/delete, queue.declare/delete (a passive declare needs none)
///   write      basic.publish (the exchange; "" is amq.default), queue.bind/unbind (the queue), exchange.bind/unbind (the destination)
///   read       basic.consume, basic.get, queue.purge (the queue), queue.bind/unbind and exchange.bind/unbind (the source exchange)
/// </code>
/// A refusal closes the channel with 403 ACCESS_REFUSED, worded as RabbitMQ words it.
/// </summary>
public sealed class AmqpPermissions
{
    private sealed record UserPermissions(Regex Configure, Regex Write, Regex Read);

    /// <summary>A client-chosen name cannot make a pattern run long (catastrophic backtracking): past this the match fails, and so does the access.</summary>
    private static readonly TimeSpan MatchTimeout = TimeSpan.FromMilliseconds(50);

    private readonly Dictionary<string, UserPermissions> _users;

    private AmqpPermissions(Dictionary<string, UserPermissions> users) => _users = users;

    public static AmqpPermissions Load(string path) => Parse(File.ReadAllText(path), path);

    public static AmqpPermissions Parse(string text, string source = "permissions file")
    {
        var users = new Dictionary<string, UserPermissions>(StringComparer.Ordinal);
        foreach (var (number, line) in ContentLines.Of(text))
        {
            var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length != 4)
            {
                throw new FormatException($"{source} line {number}: expected 'user configure write read' (three regular expressions)");
            }
            try
            {
                users[fields[0]] = new UserPermissions(Compile(fields[1]), Compile(fields[2]), Compile(fields[3]));
            }
            catch (ArgumentException ex)
            {
                throw new FormatException($"{source} line {number}: {ex.Message}", ex);
            }
        }
        return new AmqpPermissions(users);
    }

    private static Regex Compile(string pattern) => new(pattern, RegexOptions.CultureInvariant, MatchTimeout);

    private enum Access : byte
    {
        Configure,
        Write,
        Read,
    }

    /// <summary>
    /// Null when <paramref name="user"/> may run <paramref name="method"/>; else the text of the channel close.
    /// <paramref name="lastQueue"/> stands in for an empty queue name (the channel's last declared queue).
    /// </summary>
    public string? Check(string user, AmqpMethod method, string? lastQueue)
    {
        string Queue(string name) => name.Length == 0 ? lastQueue ?? "" : name;
        return method switch
        {
            ExchangeDeclare { Passive: false } d => Need(user, Access.Configure, "exchange", d.Exchange),
            ExchangeDelete d => Need(user, Access.Configure, "exchange", d.Exchange),
            ExchangeBind b => Need(user, Access.Write, "exchange", b.Destination) ?? Need(user, Access.Read, "exchange", b.Source),
            ExchangeUnbind b => Need(user, Access.Write, "exchange", b.Destination) ?? Need(user, Access.Read, "exchange", b.Source),
            // A server-named queue is named amq.gen-… by the topology owner: that prefix is what its permission must allow.
            QueueDeclare { Passive: false } d => Need(user, Access.Configure, "queue", d.Queue.Length == 0 ? "amq.gen-" : d.Queue),
            QueueDelete d => Need(user, Access.Configure, "queue", Queue(d.Queue)),
            QueuePurge p => Need(user, Access.Read, "queue", Queue(p.Queue)),
            QueueBind b => Need(user, Access.Write, "queue", Queue(b.Queue)) ?? Need(user, Access.Read, "exchange", b.Exchange),
            QueueUnbind b => Need(user, Access.Write, "queue", Queue(b.Queue)) ?? Need(user, Access.Read, "exchange", b.Exchange),
            BasicConsume c => Need(user, Access.Read, "queue", Queue(c.Queue)),
            BasicGet g => Need(user, Access.Read, "queue", Queue(g.Queue)),
            BasicPublish p => Need(user, Access.Write, "exchange", p.Exchange.Length == 0 ? "amq.default" : p.Exchange),
            _ => null,
        };
    }

    private string? Need(string user, Access access, string kind, string name)
    {
        if (_users.TryGetValue(user, out var p))
        {
            var pattern = access switch
            {
                Access.Configure => p.Configure,
                Access.Write => p.Write,
                _ => p.Read,
            };
            try
            {
                if (pattern.IsMatch(name))
                {
                    return null;
                }
            }
            catch (RegexMatchTimeoutException)
            {
                // Refused below.
            }
        }
        return $"ACCESS_REFUSED - {access.ToString().ToLowerInvariant()} access to {kind} '{name}' in vhost '/' refused for user '{user}'";
    }

    /// <summary>
    /// The MQTT topic filter an <c>amq.topic</c> binding key stands for (RabbitMQ's MQTT convention: '.' and '/'
    /// swapped, '*' is '+'), or null when the key is no MQTT filter.
    /// </summary>
    public static string? BindingKeyToFilter(string bindingKey)
    {
        if (bindingKey.Length == 0)
        {
            return null;
        }
        var levels = MqttBridge.Swap(bindingKey).Split('/');
        for (var i = 0; i < levels.Length; i++)
        {
            if (levels[i] == "*")
            {
                levels[i] = "+";
            }
            else if (levels[i].AsSpan().IndexOfAny('*', '+') >= 0 || (levels[i].Contains('#', StringComparison.Ordinal) && (levels[i] != "#" || i != levels.Length - 1)))
            {
                return null;
            }
        }
        return string.Join('/', levels);
    }
}
