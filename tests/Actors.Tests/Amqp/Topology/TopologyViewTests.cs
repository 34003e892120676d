using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Content;
using Broker.Actors.Amqp.Topology;

namespace Broker.Actors.Tests.Amqp.Topology;

public class TopologyViewTests
{
    private static TopologyView View(params TopologyChange[] changes) => changes.Aggregate(TopologyView.Empty, (v, c) => v.Apply(c));

    private static ExchangeAdded X(string name, ExchangeKind kind, bool durable = true, bool autoDelete = false) =>
        new(new ExchangeDefinition(name, kind, durable, autoDelete, Internal: false));

    private static QueueAdded Q(string name) => new(new QueueDefinition(name, true, false, null, QueueArguments.None));

    private static BindingAdded B(string source, string queue, string key = "", byte[]? arguments = null) =>
        new(new BindingDefinition(source, queue, false, key, arguments ?? []));

    private static BindingAdded E(string source, string destination, string key = "") =>
        new(new BindingDefinition(source, destination, true, key, []));

    private static string[] Route(TopologyView view, string exchange, string key, byte[]? properties = null)
    {
        var queues = new HashSet<string>();
        view.Route(exchange, key, properties ?? [0, 0], queues);
        return [.. queues.Order(StringComparer.Ordinal)];
    }

    private static byte[] Table(params (string Key, object? Value)[] entries) =>
        FieldTableCodec.Write(new FieldTable(entries.Select(e => new KeyValuePair<string, object?>(e.Key, e.Value))));

    private static byte[] WithHeaders(params (string Key, object? Value)[] headers) =>
        BasicPropertiesCodec.Write(new BasicProperties
        {
            ContentType = "text/plain",
            ContentEncoding = "identity",
            Headers = new FieldTable(headers.Select(e => new KeyValuePair<string, object?>(e.Key, e.Value))),
            DeliveryMode = 2,
        });

    [Fact]
    public void Direct_exchange_routes_on_the_exact_key()
    {
        var view = View(X("d", ExchangeKind.Direct), Q("q1"), Q("q2"), B("d", "q1", "a"), B("d", "q2", "a"), B("d", "q2", "b"));
        Assert.Equal(["q1", "q2"], Route(view, "d", "a"));
        Assert.Equal(["q2"], Route(view, "d", "b"));
        Assert.Empty(Route(view, "d", "a.b"));
        Assert.Empty(Route(view, "d", "A"));
        Assert.Empty(Route(view, "d", ""));
    }

    [Fact]
    public void Fanout_exchange_routes_to_every_bound_queue_whatever_the_key()
    {
        var view = View(X("f", ExchangeKind.Fanout), Q("q1"), Q("q2"), B("f", "q1", "ignored"), B("f", "q2"));
        Assert.Equal(["q1", "q2"], Route(view, "f", "anything"));
        Assert.Equal(["q1", "q2"], Route(view, "f", ""));
    }

    [Theory]
    [InlineData("a.b.c", "a.b.c", true)]
    [InlineData("a.b.c", "a.b", false)]
    [InlineData("a.*.c", "a.b.c", true)]
    [InlineData("a.*.c", "a.c", false)]
    [InlineData("a.*.c", "a.b.b.c", false)]
    [InlineData("*", "a", true)]
    [InlineData("*", "", false)]
    [InlineData("*", "a.b", false)]
    [InlineData("#", "", true)]
    [InlineData("#", "a.b.c", true)]
    [InlineData("a.#", "a", true)]
    [InlineData("a.#", "a.b.c", true)]
    [InlineData("a.#", "b.a", false)]
    [InlineData("#.c", "c", true)]
    [InlineData("#.c", "a.b.c", true)]
    [InlineData("#.c", "a.c.d", false)]
    [InlineData("a.#.b", "a.b", true)]
    [InlineData("a.#.b", "a.x.y.b", true)]
    [InlineData("a.#.b", "a.x", false)]
    [InlineData("a.#.b", "a.b.c", false)]
    [InlineData("*.#", "", false)]
    [InlineData("*.#", "a", true)]
    [InlineData("#.*", "a.b", true)]
    [InlineData("a.*.#", "a", false)]
    [InlineData("a.*.#", "a.b", true)]
    [InlineData("a..b", "a..b", true)]
    [InlineData("a.*.b", "a..b", true)]
    [InlineData("", "", true)]
    [InlineData("", "a", false)]
    public void Topic_binding_matches_words(string pattern, string key, bool matches)
    {
        var view = View(X("t", ExchangeKind.Topic), Q("q"), B("t", "q", pattern));
        Assert.Equal(matches, Route(view, "t", key).Length == 1);
    }

    [Fact]
    public void Topic_exchange_with_many_bindings_routes_each_key_to_exactly_its_queues()
    {
        var changes = new List<TopologyChange> { X("t", ExchangeKind.Topic) };
        for (var i = 0; i < 500; i++)
        {
            changes.Add(Q("user-" + i));
            changes.Add(B("t", "user-" + i, $"user.{i}.#"));
            changes.Add(B("t", "user-" + i, $"*.{i}.direct"));
        }
        changes.Add(Q("audit"));
        changes.Add(B("t", "audit", "#"));
        var view = View([.. changes]);

        Assert.Equal(["audit", "user-42"], Route(view, "t", "user.42"));
        Assert.Equal(["audit", "user-42"], Route(view, "t", "user.42.x.y"));
        Assert.Equal(["audit", "user-7"], Route(view, "t", "any.7.direct"));
        Assert.Equal(["audit"], Route(view, "t", "user"));
    }

    [Fact]
    public void Topic_keys_of_100000_words_bind_route_and_unbind_without_recursion()
    {
        var deep = string.Join('.', Enumerable.Repeat("w", 100_000));
        var stars = string.Join('.', Enumerable.Repeat("*", 100_000));
        var view = View(X("t", ExchangeKind.Topic), Q("exact"), Q("stars"), Q("hash"),
            B("t", "exact", deep), B("t", "stars", stars), B("t", "hash", "w.#"));
        Assert.Equal(["exact", "hash", "stars"], Route(view, "t", deep));
        view = view.Apply(new BindingRemoved(new BindingDefinition("t", "exact", false, deep, [])));
        view = view.Apply(new BindingRemoved(new BindingDefinition("t", "stars", false, stars, [])));
        Assert.Equal(["hash"], Route(view, "t", deep));
        Assert.Empty(Route(view, "t", "x." + deep));
    }

    [Fact]
    public async Task Many_hashes_in_a_binding_do_not_make_matching_exponential()
    {
        // 40 "#" then a word the key lacks: every split of 80 words over 40 "#" is a path (about 10^33 of them).
        var view = View(X("t", ExchangeKind.Topic), Q("never"), Q("always"),
            B("t", "never", string.Join('.', Enumerable.Repeat("#", 40)) + ".z"),
            B("t", "always", string.Join('.', Enumerable.Repeat("#", 40))));
        var key = string.Join('.', Enumerable.Repeat("a", 80));
        var routed = await Task.Run(() => Route(view, "t", key)).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(["always"], routed);
    }

    [Fact]
    public void Removed_topic_binding_no_longer_routes_while_others_on_the_same_path_do()
    {
        var view = View(X("t", ExchangeKind.Topic), Q("q1"), Q("q2"), B("t", "q1", "a.*.c"), B("t", "q2", "a.*.c"), B("t", "q2", "a.#"));
        view = view.Apply(new BindingRemoved(new BindingDefinition("t", "q1", false, "a.*.c", [])));
        Assert.Equal(["q2"], Route(view, "t", "a.b.c"));
        view = view.Apply(new BindingRemoved(new BindingDefinition("t", "q2", false, "a.#", [])));
        Assert.Equal(["q2"], Route(view, "t", "a.b.c"));
        Assert.Empty(Route(view, "t", "a.b"));
    }

    [Fact]
    public void A_queue_reached_by_several_bindings_is_listed_once()
    {
        var view = View(X("t", ExchangeKind.Topic), Q("q"), B("t", "q", "a.*"), B("t", "q", "a.#"), B("t", "q", "#"), B("t", "q", "a.b"));
        Assert.Equal(["q"], Route(view, "t", "a.b"));
    }

    [Fact]
    public void Headers_all_needs_every_key_and_any_needs_one()
    {
        var view = View(X("h", ExchangeKind.Headers), Q("all"), Q("any"), Q("default"),
            B("h", "all", "ignored", Table(("x-match", "all"), ("format", "pdf"), ("type", "report"))),
            B("h", "any", "", Table(("x-match", "any"), ("format", "pdf"), ("type", "report"))),
            B("h", "default", "", Table(("format", "pdf"), ("type", "report"))));

        Assert.Equal(["all", "any", "default"], Route(view, "h", "", WithHeaders(("format", "pdf"), ("type", "report"), ("extra", 1))));
        Assert.Equal(["any"], Route(view, "h", "", WithHeaders(("format", "pdf"))));
        Assert.Equal(["any"], Route(view, "h", "", WithHeaders(("type", "report"), ("format", "zip"))));
        Assert.Empty(Route(view, "h", "", WithHeaders(("format", "zip"))));
        Assert.Empty(Route(view, "h", ""));
    }

    [Fact]
    public void Headers_values_match_across_integer_widths_but_not_across_strings_and_numbers()
    {
        var view = View(X("h", ExchangeKind.Headers), Q("q"), B("h", "q", "", Table(("n", 1))));
        Assert.Equal(["q"], Route(view, "h", "", WithHeaders(("n", 1L))));
        Assert.Equal(["q"], Route(view, "h", "", WithHeaders(("n", (byte)1))));
        Assert.Empty(Route(view, "h", "", WithHeaders(("n", "1"))));
        Assert.Empty(Route(view, "h", "", WithHeaders(("n", 2))));
    }

    [Fact]
    public void Headers_binding_ignores_its_x_keys_unless_it_says_with_x_and_a_void_value_asks_for_presence()
    {
        var view = View(X("h", ExchangeKind.Headers), Q("plain"), Q("with-x"), Q("void"), Q("any-empty"), Q("all-empty"),
            B("h", "plain", "", Table(("x-match", "all"), ("a", 1), ("x-foo", "bar"))),
            B("h", "with-x", "", Table(("x-match", "all-with-x"), ("a", 1), ("x-foo", "bar"))),
            B("h", "void", "", Table(("a", null))),
            B("h", "any-empty", "", Table(("x-match", "any"))),
            B("h", "all-empty", "", Table(("x-match", "all"))));

        Assert.Equal(["all-empty", "plain", "void"], Route(view, "h", "", WithHeaders(("a", 1))));
        Assert.Equal(["all-empty", "plain", "void", "with-x"], Route(view, "h", "", WithHeaders(("a", 1), ("x-foo", "bar"))));
        Assert.Equal(["all-empty", "void"], Route(view, "h", "", WithHeaders(("a", "anything"))));
        Assert.Equal(["all-empty"], Route(view, "h", ""));
    }

    [Fact]
    public void Headers_exchange_routes_nothing_by_headers_when_the_properties_are_malformed()
    {
        var view = View(X("h", ExchangeKind.Headers), Q("q"), Q("all"), B("h", "q", "", Table(("a", 1))), B("h", "all", ""));
        // Flags announce a headers table that is not there.
        Assert.Equal(["all"], Route(view, "h", "", [0x20, 0x00]));
    }

    [Fact]
    public void Default_exchange_routes_to_the_queue_named_by_the_key_if_it_exists()
    {
        var view = View(Q("orders"));
        Assert.Equal(["orders"], Route(view, "", "orders"));
        Assert.Empty(Route(view, "", "missing"));
        Assert.Empty(Route(view.Apply(new QueueRemoved("orders")), "", "orders"));
    }

    [Fact]
    public void Exchange_to_exchange_bindings_are_followed_with_the_same_key()
    {
        var view = View(X("front", ExchangeKind.Direct), X("fan", ExchangeKind.Fanout), X("topics", ExchangeKind.Topic),
            Q("q1"), Q("q2"), Q("q3"),
            E("front", "fan", "k"), E("front", "topics", "k"), B("fan", "q1"), B("topics", "q2", "k"), B("topics", "q3", "other"));
        Assert.Equal(["q1", "q2"], Route(view, "front", "k"));
        Assert.Empty(Route(view, "front", "x"));
    }

    [Fact]
    public void A_cycle_of_exchange_bindings_visits_each_exchange_once()
    {
        var view = View(X("a", ExchangeKind.Fanout), X("b", ExchangeKind.Fanout), X("c", ExchangeKind.Fanout), Q("qa"), Q("qb"), Q("qc"),
            E("a", "b"), E("b", "c"), E("c", "a"), E("a", "a"), B("a", "qa"), B("b", "qb"), B("c", "qc"));
        Assert.Equal(["qa", "qb", "qc"], Route(view, "a", "k"));
        Assert.Equal(["qa", "qb", "qc"], Route(view, "c", "k"));
    }

    [Fact]
    public void Built_in_exchanges_always_exist_and_are_left_out_of_snapshots()
    {
        var view = TopologyView.Empty;
        foreach (var (name, kind) in new[] { ("", ExchangeKind.Direct), ("amq.direct", ExchangeKind.Direct), ("amq.fanout", ExchangeKind.Fanout),
            ("amq.topic", ExchangeKind.Topic), ("amq.headers", ExchangeKind.Headers), ("amq.match", ExchangeKind.Headers) })
        {
            Assert.True(view.TryGetExchange(name, out var x));
            Assert.Equal(kind, x.Kind);
            Assert.True(x.Durable);
        }
        view = view.Apply(new ExchangeRemoved("amq.direct"));
        Assert.True(view.TryGetExchange("amq.direct", out _));
        Assert.Equal(1, view.Version);
        Assert.Empty(view.ToSnapshot().Exchanges);
    }

    [Fact]
    public void Removing_an_exchange_removes_the_bindings_from_it_and_to_it()
    {
        var view = View(X("a", ExchangeKind.Fanout), X("b", ExchangeKind.Fanout), X("c", ExchangeKind.Fanout), Q("q"),
            E("a", "b"), E("b", "c"), B("b", "q"), B("c", "q"));
        view = view.Apply(new ExchangeRemoved("b"));
        Assert.False(view.TryGetExchange("b", out _));
        Assert.False(view.HasBindings("a"));
        Assert.Equal(["c->q"], view.Bindings.Select(b => b.Source + "->" + b.Destination));
        Assert.Empty(Route(view, "a", ""));
        // Declared again, the exchange starts with no bindings.
        view = view.Apply(X("b", ExchangeKind.Fanout));
        Assert.Empty(Route(view, "b", ""));
    }

    [Fact]
    public void Removing_a_queue_removes_its_bindings()
    {
        var view = View(X("d", ExchangeKind.Direct), Q("q"), Q("r"), B("d", "q", "k"), B("amq.topic", "q", "#"), B("d", "r", "k"));
        Assert.Equal(["q", "r"], view.BoundQueues.Order(StringComparer.Ordinal));
        view = view.Apply(new QueueRemoved("q"));
        Assert.Equal(["r"], Route(view, "d", "k"));
        Assert.False(view.HasBindings("amq.topic"));
        Assert.Equal(["r"], view.BoundQueues);
        Assert.False(view.TryGetQueue("q", out _));
    }

    [Fact]
    public void Bindings_differing_only_in_arguments_are_different_bindings()
    {
        var one = new BindingDefinition("d", "q", false, "k", Table(("a", 1)));
        var two = new BindingDefinition("d", "q", false, "k", Table(("a", 2)));
        var view = View(X("d", ExchangeKind.Direct), Q("q"), new BindingAdded(one), new BindingAdded(two));
        Assert.Equal(2, view.Bindings.Count());
        view = view.Apply(new BindingRemoved(one));
        Assert.Equal(["q"], Route(view, "d", "k"));
        Assert.True(view.Contains(two with { Arguments = Table(("a", 2)) }));
    }

    [Fact]
    public void Every_change_takes_one_version_and_a_snapshot_restores_the_same_routing()
    {
        var view = View(X("t", ExchangeKind.Topic), X("h", ExchangeKind.Headers, durable: false), Q("q1"), Q("q2"),
            B("t", "q1", "a.*"), E("t", "h", "#"), B("h", "q2", "", Table(("x-match", "any"), ("k", "v"))));
        Assert.Equal(7, view.Version);

        var copy = TopologyView.FromSnapshot(view.ToSnapshot());

        Assert.Equal(7, copy.Version);
        Assert.Equal(view.Exchanges.OrderBy(x => x.Name, StringComparer.Ordinal), copy.Exchanges.OrderBy(x => x.Name, StringComparer.Ordinal));
        Assert.Equal(view.Queues.OrderBy(q => q.Name, StringComparer.Ordinal), copy.Queues.OrderBy(q => q.Name, StringComparer.Ordinal));
        Assert.Equal(["q1", "q2"], Route(copy, "t", "a.b", WithHeaders(("k", "v"))));
        Assert.Equal(["q1"], Route(copy, "t", "a.b"));
    }

    [Fact]
    public void Older_views_are_unchanged_by_later_changes()
    {
        var before = View(X("f", ExchangeKind.Fanout), Q("q"), B("f", "q"));
        var after = before.Apply(new QueueRemoved("q"));
        Assert.Equal(["q"], Route(before, "f", ""));
        Assert.Empty(Route(after, "f", ""));
    }
}
