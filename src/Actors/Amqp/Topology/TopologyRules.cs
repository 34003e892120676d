using System.Globalization;
using Akka.Actor;
using Broker.Actors.Amqp.Content;

namespace Broker.Actors.Amqp.Topology;

/// <summary>What a command changes (in order), or why it is refused; <see cref="Queue"/> is the declared queue.</summary>
internal readonly record struct TopologyDecision(IReadOnlyList<TopologyChange> Changes, TopologyRefused? Refused, QueueDefinition? Queue = null)
{
    public static readonly TopologyDecision Nothing = new([], null);

    public static TopologyDecision Refuse(ushort code, string text) => new([], new TopologyRefused(code, text));
}

/// <summary>
/// The topology owner's decisions as pure functions of the current view, with RabbitMQ 3.10's reply codes,
/// texts and order of checks (vhost "/" only). Removals cascade the way RabbitMQ's do: an auto-delete exchange
/// goes when it stops being the source of any binding, whatever removed that binding.
/// </summary>
internal static class TopologyRules
{
    public const ushort AccessRefused = 403;
    public const ushort NotFound = 404;
    public const ushort ResourceLocked = 405;
    public const ushort PreconditionFailed = 406;

    private const string DefaultExchangeRefused = "ACCESS_REFUSED - operation not permitted on the default exchange";

    public static TopologyDecision DeclareExchange(TopologyView view, DeclareExchange cmd)
    {
        var x = cmd.Definition;
        if (x.Name.Length == 0)
        {
            return TopologyDecision.Refuse(AccessRefused, DefaultExchangeRefused);
        }
        if (!view.TryGetExchange(x.Name, out var current))
        {
            if (cmd.Passive)
            {
                return NoExchange(x.Name);
            }
            if (IsReserved(x.Name))
            {
                return TopologyDecision.Refuse(AccessRefused, $"ACCESS_REFUSED - exchange name '{x.Name}' contains reserved prefix 'amq.*'");
            }
            return new TopologyDecision([new ExchangeAdded(x)], null);
        }
        if (cmd.Passive)
        {
            return TopologyDecision.Nothing;
        }
        return Inequivalent("exchange", x.Name, "type", KindName(x.Kind), KindName(current.Kind))
            ?? Inequivalent("exchange", x.Name, "durable", x.Durable, current.Durable)
            ?? Inequivalent("exchange", x.Name, "auto_delete", x.AutoDelete, current.AutoDelete)
            ?? Inequivalent("exchange", x.Name, "internal", x.Internal, current.Internal)
            ?? TopologyDecision.Nothing;
    }

    public static TopologyDecision DeleteExchange(TopologyView view, DeleteExchange cmd)
    {
        if (cmd.Name.Length == 0)
        {
            return TopologyDecision.Refuse(AccessRefused, DefaultExchangeRefused);
        }
        if (IsReserved(cmd.Name))
        {
            return TopologyDecision.Refuse(AccessRefused, $"ACCESS_REFUSED - deletion of system exchange '{cmd.Name}' in vhost '/' not allowed");
        }
        // RabbitMQ 3.x answers delete-ok for an exchange that does not exist.
        if (!view.TryGetExchange(cmd.Name, out _))
        {
            return TopologyDecision.Nothing;
        }
        if (cmd.IfUnused && view.HasBindings(cmd.Name))
        {
            return TopologyDecision.Refuse(PreconditionFailed, $"PRECONDITION_FAILED - {Resource("exchange", cmd.Name)} in use");
        }
        return new TopologyDecision(Remove(view, new ExchangeRemoved(cmd.Name)), null);
    }

    /// <param name="recordedOwner">the connection actor recorded for the existing queue when it is exclusive.</param>
    /// <param name="generatedName">the name a non-passive declare with an empty name gets.</param>
    public static TopologyDecision DeclareQueue(TopologyView view, DeclareQueue cmd, IActorRef? recordedOwner, string generatedName)
    {
        var q = cmd.Definition;
        if (!cmd.Passive)
        {
            if (IsReserved(q.Name))
            {
                return TopologyDecision.Refuse(AccessRefused, $"ACCESS_REFUSED - queue name '{q.Name}' contains reserved prefix 'amq.*'");
            }
            if (q.Name.Length == 0)
            {
                q = q with { Name = generatedName };
            }
        }
        if (!view.TryGetQueue(q.Name, out var current))
        {
            return cmd.Passive ? NoQueue(q.Name) : new TopologyDecision([new QueueAdded(q)], null, q);
        }
        if (cmd.Passive)
        {
            // A passive declare carries no exclusive flag: the declaring connection is known by its id when the
            // channel sets one, otherwise by its actor.
            var other = current.ExclusiveOwner is not null &&
                (q.ExclusiveOwner is not null
                    ? q.ExclusiveOwner != current.ExclusiveOwner
                    : recordedOwner is not null && cmd.Owner is not null && !recordedOwner.Equals(cmd.Owner));
            return other ? Locked(q.Name) : new TopologyDecision([], null, current);
        }
        // Exclusivity is checked first and must match exactly, even for the owning connection (as RabbitMQ does).
        if (q.ExclusiveOwner != current.ExclusiveOwner)
        {
            return Locked(q.Name);
        }
        return Inequivalent("queue", q.Name, "durable", q.Durable, current.Durable)
            ?? Inequivalent("queue", q.Name, "auto_delete", q.AutoDelete, current.AutoDelete)
            ?? InequivalentArguments(q.Name, q.Arguments, current.Arguments)
            ?? new TopologyDecision([], null, current);
    }

    /// <summary>Refusal of a queue.delete, or null when the owner may go on (a missing queue answers delete-ok 0).</summary>
    public static TopologyRefused? CheckDeleteQueue(TopologyView view, DeleteQueue cmd) =>
        view.TryGetQueue(cmd.Name, out var q) && IsOtherConnection(q, cmd.ConnectionId) ? Locked(cmd.Name).Refused : null;

    /// <summary>The changes that remove a queue whose content is gone: the queue, its bindings, and what cascades.</summary>
    public static IReadOnlyList<TopologyChange> RemoveQueue(TopologyView view, string queue) =>
        view.TryGetQueue(queue, out _) ? Remove(view, new QueueRemoved(queue)) : [];

    public static TopologyDecision Bind(TopologyView view, Bind cmd)
    {
        var b = cmd.Binding;
        if (b.Source.Length == 0 || (b.ToExchange && b.Destination.Length == 0))
        {
            return TopologyDecision.Refuse(AccessRefused, DefaultExchangeRefused);
        }
        if (!view.TryGetExchange(b.Source, out var source))
        {
            return NoExchange(b.Source);
        }
        if (b.ToExchange)
        {
            if (!view.TryGetExchange(b.Destination, out _))
            {
                return NoExchange(b.Destination);
            }
        }
        else if (!view.TryGetQueue(b.Destination, out var queue))
        {
            return NoQueue(b.Destination);
        }
        else if (IsOtherConnection(queue, cmd.ConnectionId))
        {
            return Locked(b.Destination);
        }
        if (source.Kind == ExchangeKind.Headers && InvalidHeadersArguments(b.Arguments) is { } invalid)
        {
            return TopologyDecision.Refuse(PreconditionFailed, "PRECONDITION_FAILED - " + invalid);
        }
        return view.Contains(b) ? TopologyDecision.Nothing : new TopologyDecision([new BindingAdded(b)], null);
    }

    public static TopologyDecision Unbind(TopologyView view, Unbind cmd)
    {
        var b = cmd.Binding;
        if (b.Source.Length == 0 || (b.ToExchange && b.Destination.Length == 0))
        {
            return TopologyDecision.Refuse(AccessRefused, DefaultExchangeRefused);
        }
        // RabbitMQ 3.x answers unbind-ok for a binding (or exchange, or queue) that does not exist.
        return view.Contains(b) ? new TopologyDecision(Remove(view, new BindingRemoved(b)), null) : TopologyDecision.Nothing;
    }

    /// <summary>
    /// After a restart of the whole cluster: removes every non-durable exchange and every non-durable or exclusive
    /// queue, with their bindings and what cascades. <c>Queues</c> are the removed queues, whose content the owner
    /// still has to delete.
    /// </summary>
    public static (IReadOnlyList<TopologyChange> Changes, IReadOnlyList<string> Queues) DropTransient(TopologyView view)
    {
        var changes = new List<TopologyChange>();
        var exchanges = view.Exchanges.Where(x => !x.Durable && !TopologyView.IsBuiltIn(x.Name)).Select(x => x.Name).ToList();
        var queues = view.Queues.Where(q => !q.Durable || q.ExclusiveOwner is not null).Select(q => q.Name).ToList();
        foreach (var x in exchanges)
        {
            // An earlier removal may have taken it already (auto-delete).
            if (view.TryGetExchange(x, out _))
            {
                Remove(ref view, changes, new ExchangeRemoved(x));
            }
        }
        foreach (var q in queues)
        {
            Remove(ref view, changes, new QueueRemoved(q));
        }
        return (changes, queues);
    }

    public static bool IsReserved(string name) => name.StartsWith("amq.", StringComparison.Ordinal);

    private static bool IsOtherConnection(QueueDefinition queue, string? connectionId) =>
        queue.ExclusiveOwner is not null && connectionId is not null && connectionId != queue.ExclusiveOwner;

    private static List<TopologyChange> Remove(TopologyView view, TopologyChange removal)
    {
        var changes = new List<TopologyChange>();
        Remove(ref view, changes, removal);
        return changes;
    }

    private static void Remove(ref TopologyView view, List<TopologyChange> changes, TopologyChange removal)
    {
        var sources = (removal switch
        {
            ExchangeRemoved x => view.BindingsTo(x.Name, toExchange: true).Select(b => b.Source),
            QueueRemoved q => view.BindingsTo(q.Name, toExchange: false).Select(b => b.Source),
            BindingRemoved b => [b.Binding.Source],
            _ => [],
        }).Distinct(StringComparer.Ordinal).ToList();
        view = view.Apply(removal);
        changes.Add(removal);
        foreach (var s in sources)
        {
            if (view.TryGetExchange(s, out var x) && x.AutoDelete && !view.HasBindings(s) && !TopologyView.IsBuiltIn(s))
            {
                Remove(ref view, changes, new ExchangeRemoved(s));
            }
        }
    }

    private static string Resource(string kind, string name) => $"{kind} '{name}' in vhost '/'";

    private static TopologyDecision NoExchange(string name) => TopologyDecision.Refuse(NotFound, $"NOT_FOUND - no {Resource("exchange", name)}");

    private static TopologyDecision NoQueue(string name) => TopologyDecision.Refuse(NotFound, $"NOT_FOUND - no {Resource("queue", name)}");

    private static TopologyDecision Locked(string queue) => TopologyDecision.Refuse(ResourceLocked,
        $"RESOURCE_LOCKED - cannot obtain exclusive access to locked {Resource("queue", queue)}. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.");

    private static string KindName(ExchangeKind kind) => kind.ToString().ToLowerInvariant();

    private static TopologyDecision? Inequivalent<T>(string kind, string name, string field, T received, T current) =>
        EqualityComparer<T>.Default.Equals(received, current)
            ? null
            : TopologyDecision.Refuse(PreconditionFailed,
                $"PRECONDITION_FAILED - inequivalent arg '{field}' for {Resource(kind, name)}: received '{Text(received)}' but current is '{Text(current)}'");

    /// <summary>In the order RabbitMQ compares declare arguments.</summary>
    private static TopologyDecision? InequivalentArguments(string queue, QueueArguments received, QueueArguments current) =>
        InequivalentArgument(queue, "x-expires", received.ExpiresMs, current.ExpiresMs)
        ?? InequivalentArgument(queue, "x-message-ttl", received.MessageTtlMs, current.MessageTtlMs)
        ?? InequivalentArgument(queue, "x-dead-letter-exchange", received.DeadLetterExchange, current.DeadLetterExchange)
        ?? InequivalentArgument(queue, "x-dead-letter-routing-key", received.DeadLetterRoutingKey, current.DeadLetterRoutingKey)
        ?? InequivalentArgument(queue, "x-max-length", received.MaxLength, current.MaxLength);

    private static TopologyDecision? InequivalentArgument(string queue, string key, object? received, object? current)
    {
        if (Equals(received, current))
        {
            return null;
        }
        var detail = (received, current) switch
        {
            (null, _) => $"received none but current is {Typed(current)}",
            (_, null) => $"received {Typed(received)} but current is none",
            _ => $"received '{Text(received)}' but current is '{Text(current)}'",
        };
        return TopologyDecision.Refuse(PreconditionFailed, $"PRECONDITION_FAILED - inequivalent arg '{key}' for {Resource("queue", queue)}: {detail}");
    }

    // The parsed arguments no longer say which wire type the client used: numbers are named by the type most
    // clients send for their value (RabbitMQ.Client and pika send an int as 'I', a larger number as 'l').
    private static string Typed(object? value) => value switch
    {
        string s => $"the value '{s}' of type 'longstr'",
        long n when n is >= int.MinValue and <= int.MaxValue => $"the value '{Text(n)}' of type 'signedint'",
        _ => $"the value '{Text(value)}' of type 'long'",
    };

    private static string Text(object? value) => value switch
    {
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value?.ToString() ?? "",
    };

    /// <summary>RabbitMQ's validation of a headers binding's x-match argument, or null when it is valid.</summary>
    private static string? InvalidHeadersArguments(byte[] arguments)
    {
        if (arguments.Length == 0)
        {
            return null;
        }
        FieldTable table;
        try
        {
            table = FieldTableCodec.Read(arguments);
        }
        catch (AmqpFormatException e)
        {
            return "invalid binding arguments: " + e.Message;
        }
        if (!table.TryGet("x-match", out var value))
        {
            return null;
        }
        return value switch
        {
            byte[] bytes => System.Text.Encoding.UTF8.GetString(bytes) is "all" or "any" or "all-with-x" or "any-with-x"
                ? null
                : $"Invalid x-match field value <<\"{System.Text.Encoding.UTF8.GetString(bytes)}\">>; expected all, any, all-with-x, or any-with-x",
            _ => $"Invalid x-match field type {FieldTypeName(value)} (value {Text(value)}); expected longstr",
        };
    }

    private static string FieldTypeName(object? value) => value switch
    {
        null => "void",
        bool => "bool",
        sbyte => "byte",
        byte => "unsignedbyte",
        short => "short",
        ushort => "unsignedshort",
        int => "signedint",
        uint => "unsignedint",
        long => "long",
        float => "float",
        double => "double",
        AmqpDecimal => "decimal",
        AmqpTimestamp => "timestamp",
        FieldTable => "table",
        AmqpBinary => "binary",
        _ => "array",
    };
}
