using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;

namespace Broker.Actors.Amqp.Topology;

/// <summary>
/// The exchanges, queues and bindings of the cluster at one <see cref="Version"/> (vhost "/" only). Immutable,
/// so any thread may route with it while the replica builds the next one; <see cref="Apply"/> shares everything
/// a change does not touch.
/// Built-in exchanges always exist and are never part of a change or a snapshot: the default exchange ""
/// (direct to the queue named by the routing key) and amq.direct, amq.fanout, amq.topic, amq.headers, amq.match.
/// </summary>
public sealed class TopologyView
{
    public const string DefaultExchange = "";

    private static readonly ImmutableDictionary<string, ExchangeDefinition> BuiltIns = new ExchangeDefinition[]
    {
        new(DefaultExchange, ExchangeKind.Direct, Durable: true, AutoDelete: false, Internal: false),
        new("amq.direct", ExchangeKind.Direct, Durable: true, AutoDelete: false, Internal: false),
        new("amq.fanout", ExchangeKind.Fanout, Durable: true, AutoDelete: false, Internal: false),
        new("amq.topic", ExchangeKind.Topic, Durable: true, AutoDelete: false, Internal: false),
        new("amq.headers", ExchangeKind.Headers, Durable: true, AutoDelete: false, Internal: false),
        new("amq.match", ExchangeKind.Headers, Durable: true, AutoDelete: false, Internal: false),
    }.ToImmutableDictionary(x => x.Name, StringComparer.Ordinal);

    private static readonly ImmutableDictionary<string, ImmutableHashSet<BindingDefinition>> NoBindings =
        ImmutableDictionary.Create<string, ImmutableHashSet<BindingDefinition>>(StringComparer.Ordinal);

    public static readonly TopologyView Empty = new(
        0,
        BuiltIns,
        ImmutableDictionary.Create<string, QueueDefinition>(StringComparer.Ordinal),
        ImmutableDictionary.Create<string, ExchangeRoutes>(StringComparer.Ordinal),
        NoBindings,
        NoBindings);

    private readonly ImmutableDictionary<string, ExchangeDefinition> _exchanges;
    private readonly ImmutableDictionary<string, QueueDefinition> _queues;
    // Bindings by source exchange (only exchanges that have some), and by destination for the deletes that cascade.
    private readonly ImmutableDictionary<string, ExchangeRoutes> _routes;
    private readonly ImmutableDictionary<string, ImmutableHashSet<BindingDefinition>> _toQueue;
    private readonly ImmutableDictionary<string, ImmutableHashSet<BindingDefinition>> _toExchange;

    private TopologyView(
        long version,
        ImmutableDictionary<string, ExchangeDefinition> exchanges,
        ImmutableDictionary<string, QueueDefinition> queues,
        ImmutableDictionary<string, ExchangeRoutes> routes,
        ImmutableDictionary<string, ImmutableHashSet<BindingDefinition>> toQueue,
        ImmutableDictionary<string, ImmutableHashSet<BindingDefinition>> toExchange)
    {
        Version = version;
        _exchanges = exchanges;
        _queues = queues;
        _routes = routes;
        _toQueue = toQueue;
        _toExchange = toExchange;
    }

    public long Version { get; }

    /// <summary>Every exchange, built-in ones included.</summary>
    public IEnumerable<ExchangeDefinition> Exchanges => _exchanges.Values;

    public IEnumerable<QueueDefinition> Queues => _queues.Values;

    public IEnumerable<BindingDefinition> Bindings => _routes.Values.SelectMany(r => r.Bindings);

    /// <summary>Names of the queues that at least one binding leads to.</summary>
    public IEnumerable<string> BoundQueues => _toQueue.Keys;

    public int QueueCount => _queues.Count;

    public static bool IsBuiltIn(string exchange) => BuiltIns.ContainsKey(exchange);

    public bool TryGetExchange(string name, [MaybeNullWhen(false)] out ExchangeDefinition exchange) => _exchanges.TryGetValue(name, out exchange);

    public bool TryGetQueue(string name, [MaybeNullWhen(false)] out QueueDefinition queue) => _queues.TryGetValue(name, out queue);

    /// <summary>Whether <paramref name="exchange"/> is the source of any binding.</summary>
    public bool HasBindings(string exchange) => _routes.ContainsKey(exchange);

    public bool Contains(BindingDefinition binding) => _routes.TryGetValue(binding.Source, out var r) && r.Bindings.Contains(binding);

    public IEnumerable<BindingDefinition> BindingsFrom(string exchange) =>
        _routes.TryGetValue(exchange, out var r) ? r.Bindings : [];

    /// <summary>The bindings whose destination is the queue (or with <paramref name="toExchange"/> the exchange) <paramref name="destination"/>.</summary>
    public IEnumerable<BindingDefinition> BindingsTo(string destination, bool toExchange) =>
        (toExchange ? _toExchange : _toQueue).GetValueOrDefault(destination) ?? [];

    /// <summary>
    /// Adds to <paramref name="queues"/> the name of every queue a message published to <paramref name="exchange"/>
    /// with <paramref name="routingKey"/> goes to, following exchange-to-exchange bindings. <paramref name="properties"/>
    /// is the content header's property section (flags, then properties) whose headers a headers exchange matches.
    /// </summary>
    public void Route(string exchange, string routingKey, byte[] properties, HashSet<string> queues)
    {
        if (exchange.Length == 0)
        {
            if (_queues.ContainsKey(routingKey))
            {
                queues.Add(routingKey);
            }
            return;
        }
        if (!_routes.TryGetValue(exchange, out var routes))
        {
            return;
        }
        var context = new RouteContext(exchange, properties, queues);
        while (true)
        {
            routes.Match(routingKey, context);
            string next;
            do
            {
                if (!context.TryNext(out next))
                {
                    return;
                }
            }
            while (!_routes.TryGetValue(next, out routes));
        }
    }

    /// <summary>The view after <paramref name="change"/>, at the next version.</summary>
    public TopologyView Apply(TopologyChange change)
    {
        var version = Version + 1;
        switch (change)
        {
            case ExchangeAdded { Exchange: var x } when !IsBuiltIn(x.Name):
                var routes = _routes;
                if (_exchanges.TryGetValue(x.Name, out var old) && old.Kind != x.Kind && _routes.TryGetValue(x.Name, out var existing))
                {
                    routes = routes.SetItem(x.Name, ExchangeRoutes.For(x.Kind, existing.Bindings));
                }
                return new TopologyView(version, _exchanges.SetItem(x.Name, x), _queues, routes, _toQueue, _toExchange);
            case ExchangeRemoved { Name: var name } when !IsBuiltIn(name):
                return WithoutBindings(BindingsFrom(name).Concat(BindingsTo(name, toExchange: true)).ToList(), version, _exchanges.Remove(name), _queues);
            case QueueAdded { Queue: var q }:
                return new TopologyView(version, _exchanges, _queues.SetItem(q.Name, q), _routes, _toQueue, _toExchange);
            case QueueRemoved { Name: var name }:
                return WithoutBindings(BindingsTo(name, toExchange: false).ToList(), version, _exchanges, _queues.Remove(name));
            case BindingAdded { Binding: var b } when _exchanges.TryGetValue(b.Source, out var source) && !Contains(b):
                var from = _routes.TryGetValue(b.Source, out var r) ? r : ExchangeRoutes.For(source.Kind, []);
                return new TopologyView(version, _exchanges, _queues, _routes.SetItem(b.Source, from.Add(b)),
                    b.ToExchange ? _toQueue : AddTo(_toQueue, b), b.ToExchange ? AddTo(_toExchange, b) : _toExchange);
            case BindingRemoved { Binding: var b } when Contains(b):
                return WithoutBindings([b], version, _exchanges, _queues);
            default:
                // A change that changes nothing here (a binding from an unknown exchange, a built-in redeclared)
                // still takes its version, so versions stay equal to the owner's.
                return new TopologyView(version, _exchanges, _queues, _routes, _toQueue, _toExchange);
        }
    }

    public static TopologyView FromSnapshot(TopologySnapshot snapshot)
    {
        var view = Empty;
        foreach (var x in snapshot.Exchanges)
        {
            view = view.Apply(new ExchangeAdded(x));
        }
        foreach (var q in snapshot.Queues)
        {
            view = view.Apply(new QueueAdded(q));
        }
        foreach (var b in snapshot.Bindings)
        {
            view = view.Apply(new BindingAdded(b));
        }
        return view.WithVersion(snapshot.Version);
    }

    public TopologySnapshot ToSnapshot() =>
        new(Version, [.. _exchanges.Values.Where(x => !IsBuiltIn(x.Name))], [.. _queues.Values], [.. Bindings]);

    internal TopologyView WithVersion(long version) => new(version, _exchanges, _queues, _routes, _toQueue, _toExchange);

    private TopologyView WithoutBindings(
        IReadOnlyList<BindingDefinition> gone,
        long version,
        ImmutableDictionary<string, ExchangeDefinition> exchanges,
        ImmutableDictionary<string, QueueDefinition> queues)
    {
        var routes = _routes;
        var toQueue = _toQueue;
        var toExchange = _toExchange;
        foreach (var b in gone)
        {
            if (routes.TryGetValue(b.Source, out var r))
            {
                var left = r.Remove(b);
                routes = left.Bindings.IsEmpty ? routes.Remove(b.Source) : routes.SetItem(b.Source, left);
            }
            if (b.ToExchange)
            {
                toExchange = RemoveFrom(toExchange, b);
            }
            else
            {
                toQueue = RemoveFrom(toQueue, b);
            }
        }
        return new TopologyView(version, exchanges, queues, routes, toQueue, toExchange);
    }

    private static ImmutableDictionary<string, ImmutableHashSet<BindingDefinition>> AddTo(
        ImmutableDictionary<string, ImmutableHashSet<BindingDefinition>> index, BindingDefinition b) =>
        index.SetItem(b.Destination, index.GetValueOrDefault(b.Destination, []).Add(b));

    private static ImmutableDictionary<string, ImmutableHashSet<BindingDefinition>> RemoveFrom(
        ImmutableDictionary<string, ImmutableHashSet<BindingDefinition>> index, BindingDefinition b)
    {
        if (!index.TryGetValue(b.Destination, out var set))
        {
            return index;
        }
        var left = set.Remove(b);
        return left.IsEmpty ? index.Remove(b.Destination) : index.SetItem(b.Destination, left);
    }
}
