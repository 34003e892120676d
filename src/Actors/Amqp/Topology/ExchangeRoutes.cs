using System.Collections.Immutable;
using Broker.Actors.Amqp.Content;

namespace Broker.Actors.Amqp.Topology;

/// <summary>
/// The bindings of one source exchange, indexed for its type. Immutable: a change returns a new index that
/// shares everything it did not touch.
/// </summary>
internal abstract class ExchangeRoutes
{
    protected ExchangeRoutes(ImmutableHashSet<BindingDefinition> bindings) => Bindings = bindings;

    public ImmutableHashSet<BindingDefinition> Bindings { get; }

    public static ExchangeRoutes For(ExchangeKind kind, IEnumerable<BindingDefinition> bindings)
    {
        ExchangeRoutes routes = kind switch
        {
            ExchangeKind.Direct => DirectRoutes.Empty,
            ExchangeKind.Fanout => FanoutRoutes.Empty,
            ExchangeKind.Topic => TopicRoutes.Empty,
            _ => HeadersRoutes.Empty,
        };
        foreach (var b in bindings)
        {
            routes = routes.Add(b);
        }
        return routes;
    }

    /// <summary>The index with <paramref name="binding"/>; itself when the binding is already there.</summary>
    public abstract ExchangeRoutes Add(BindingDefinition binding);

    /// <summary>The index without <paramref name="binding"/>; itself when the binding is not there.</summary>
    public abstract ExchangeRoutes Remove(BindingDefinition binding);

    public abstract void Match(string routingKey, RouteContext context);
}

/// <summary>Exact routing keys, looked up in a dictionary.</summary>
internal sealed class DirectRoutes : ExchangeRoutes
{
    public static readonly DirectRoutes Empty = new([], ImmutableDictionary.Create<string, ImmutableHashSet<BindingDefinition>>(StringComparer.Ordinal));

    private readonly ImmutableDictionary<string, ImmutableHashSet<BindingDefinition>> _byKey;

    private DirectRoutes(ImmutableHashSet<BindingDefinition> bindings, ImmutableDictionary<string, ImmutableHashSet<BindingDefinition>> byKey)
        : base(bindings) => _byKey = byKey;

    public override ExchangeRoutes Add(BindingDefinition binding) =>
        Bindings.Contains(binding)
            ? this
            : new DirectRoutes(Bindings.Add(binding), _byKey.SetItem(binding.RoutingKey, _byKey.GetValueOrDefault(binding.RoutingKey, []).Add(binding)));

    public override ExchangeRoutes Remove(BindingDefinition binding)
    {
        if (!Bindings.Contains(binding))
        {
            return this;
        }
        var left = _byKey[binding.RoutingKey].Remove(binding);
        return new DirectRoutes(Bindings.Remove(binding), left.IsEmpty ? _byKey.Remove(binding.RoutingKey) : _byKey.SetItem(binding.RoutingKey, left));
    }

    public override void Match(string routingKey, RouteContext context)
    {
        if (_byKey.TryGetValue(routingKey, out var hits))
        {
            foreach (var b in hits)
            {
                context.Hit(b);
            }
        }
    }
}

internal sealed class FanoutRoutes : ExchangeRoutes
{
    public static readonly FanoutRoutes Empty = new([]);

    private FanoutRoutes(ImmutableHashSet<BindingDefinition> bindings) : base(bindings)
    {
    }

    public override ExchangeRoutes Add(BindingDefinition binding) => Bindings.Contains(binding) ? this : new FanoutRoutes(Bindings.Add(binding));

    public override ExchangeRoutes Remove(BindingDefinition binding) => Bindings.Contains(binding) ? new FanoutRoutes(Bindings.Remove(binding)) : this;

    public override void Match(string routingKey, RouteContext context)
    {
        foreach (var b in Bindings)
        {
            context.Hit(b);
        }
    }
}

internal sealed class TopicRoutes : ExchangeRoutes
{
    public static readonly TopicRoutes Empty = new([], TopicNode.Empty);

    private readonly TopicNode _root;

    private TopicRoutes(ImmutableHashSet<BindingDefinition> bindings, TopicNode root) : base(bindings) => _root = root;

    public override ExchangeRoutes Add(BindingDefinition binding) =>
        Bindings.Contains(binding) ? this : new TopicRoutes(Bindings.Add(binding), _root.Add(TopicNode.Split(binding.RoutingKey), binding));

    public override ExchangeRoutes Remove(BindingDefinition binding) =>
        Bindings.Contains(binding)
            ? new TopicRoutes(Bindings.Remove(binding), _root.Remove(TopicNode.Split(binding.RoutingKey), binding) ?? TopicNode.Empty)
            : this;

    public override void Match(string routingKey, RouteContext context) => _root.Match(TopicNode.Split(routingKey), context);
}

/// <summary>Every binding's argument table, parsed once when the binding is added, tested against the message headers.</summary>
internal sealed class HeadersRoutes : ExchangeRoutes
{
    public static readonly HeadersRoutes Empty = new([], ImmutableDictionary<BindingDefinition, HeadersPattern>.Empty);

    private readonly ImmutableDictionary<BindingDefinition, HeadersPattern> _patterns;

    private HeadersRoutes(ImmutableHashSet<BindingDefinition> bindings, ImmutableDictionary<BindingDefinition, HeadersPattern> patterns)
        : base(bindings) => _patterns = patterns;

    public override ExchangeRoutes Add(BindingDefinition binding) =>
        Bindings.Contains(binding) ? this : new HeadersRoutes(Bindings.Add(binding), _patterns.SetItem(binding, HeadersPattern.Compile(binding.Arguments)));

    public override ExchangeRoutes Remove(BindingDefinition binding) =>
        Bindings.Contains(binding) ? new HeadersRoutes(Bindings.Remove(binding), _patterns.Remove(binding)) : this;

    public override void Match(string routingKey, RouteContext context)
    {
        if (_patterns.IsEmpty)
        {
            return;
        }
        var headers = context.Headers;
        foreach (var (binding, pattern) in _patterns)
        {
            if (pattern.Matches(headers))
            {
                context.Hit(binding);
            }
        }
    }
}

/// <summary>
/// A headers-exchange binding as RabbitMQ's rabbit_exchange_type_headers matches it: <c>x-match</c> is "all"
/// (the default) or "any", or "all-with-x"/"any-with-x" which also compare the binding's other "x-" keys
/// (plain "all"/"any" skip them). A binding value of type void matches any value of a header that is present;
/// other values match by <see cref="FieldTableCodec.ValuesMatch"/>. "all" with nothing to compare matches
/// every message, "any" with nothing to compare matches none.
/// </summary>
internal sealed class HeadersPattern
{
    private static readonly HeadersPattern Never = new([], any: true);

    private readonly KeyValuePair<string, object?>[] _entries;
    private readonly bool _any;

    private HeadersPattern(KeyValuePair<string, object?>[] entries, bool any)
    {
        _entries = entries;
        _any = any;
    }

    public static HeadersPattern Compile(byte[] arguments)
    {
        if (arguments.Length == 0)
        {
            return new HeadersPattern([], any: false);
        }
        FieldTable table;
        try
        {
            table = FieldTableCodec.Read(arguments);
        }
        catch (AmqpFormatException)
        {
            // The owner refuses such a binding; one that got through anyway routes nothing rather than everything.
            return Never;
        }
        var mode = XMatch(table);
        var withX = mode is "all-with-x" or "any-with-x";
        var entries = table
            .Where(e => e.Key != "x-match" && (withX || !e.Key.StartsWith("x-", StringComparison.Ordinal)))
            .ToArray();
        return new HeadersPattern(entries, any: mode is "any" or "any-with-x");
    }

    /// <summary>The x-match value when it is a string; RabbitMQ treats anything else as "all".</summary>
    public static string? XMatch(FieldTable arguments) =>
        arguments.TryGet("x-match", out var value) switch
        {
            true when value is byte[] bytes => System.Text.Encoding.UTF8.GetString(bytes),
            true when value is string s => s,
            _ => null,
        };

    public bool Matches(FieldTable? headers)
    {
        foreach (var (key, expected) in _entries)
        {
            var hit = headers is not null && headers.TryGet(key, out var actual) && (expected is null || FieldTableCodec.ValuesMatch(expected, actual));
            if (hit && _any)
            {
                return true;
            }
            if (!hit && !_any)
            {
                return false;
            }
        }
        return !_any;
    }
}
