using System.Collections.Immutable;
using Broker.Actors.Sessions;

namespace Broker.Actors.Tests.Sessions;

public class SubscriptionIndexTests
{
    private static ImmutableSortedDictionary<string, Subscription> Subs(params (string Filter, byte Qos)[] subs) =>
        subs.ToImmutableSortedDictionary(s => s.Filter, s => new Subscription(s.Filter, s.Qos), StringComparer.Ordinal);

    private static readonly Func<string, bool> Everyone = _ => true;

    [Fact]
    public void Filters_are_counted_over_sessions_with_their_highest_qos_and_follow_changes()
    {
        var index = new SubscriptionIndex();
        index.Set("c1", Subs(("a/#", 0), ("b", 1)));
        index.Set("c2", Subs(("a/#", 2)));
        Assert.Equal([new FilterRow("a/#", 2, 2), new FilterRow("b", 1, 1)], index.Filters(null, "", Everyone, 10).Rows);
        Assert.Equal(3, index.SubscriptionCount);

        index.Set("c2", Subs(("b", 0)));   // c2 unsubscribed a/#, subscribed b
        Assert.Equal([new FilterRow("a/#", 1, 0), new FilterRow("b", 2, 1)], index.Filters(null, "", Everyone, 10).Rows);
        index.Remove("c1");
        Assert.Equal([new FilterRow("b", 1, 0)], index.Filters(null, "", Everyone, 10).Rows);
        index.Remove("c2");
        Assert.Equal((0, 0L), (index.FilterCount, index.SubscriptionCount));
    }

    [Fact]
    public void Pages_follow_utf8_order_after_the_cursor_and_skip_filters_no_included_session_holds()
    {
        var index = new SubscriptionIndex();
        index.Set("c1", Subs(("x/é", 1), ("x/z", 1), ("x/a", 1), ("y", 1)));
        index.Set("c2", Subs(("x/m", 0)));
        var (first, more) = index.Filters(null, "x/", Everyone, 2);
        Assert.Equal(["x/a", "x/m"], first.Select(r => r.Filter));
        Assert.True(more);
        var (second, last) = index.Filters("x/m", "x/", Everyone, 2);
        Assert.Equal(["x/z", "x/é"], second.Select(r => r.Filter));
        Assert.False(last);
        Assert.Equal(["x/a", "x/z", "x/é"], index.Filters(null, "x/", id => id == "c1", 10).Rows.Select(r => r.Filter));
    }

    [Fact]
    public void Clients_of_a_filter_come_by_client_id_in_pages()
    {
        var index = new SubscriptionIndex();
        foreach (var id in new[] { "d", "b", "a", "c" })
        {
            index.Set(id, Subs(("t/+", (byte)(id == "c" ? 2 : 1))));
        }
        var (page, more) = index.Clients("t/+", null, "", Everyone, 3);
        Assert.Equal([new FilterClient("a", 1), new FilterClient("b", 1), new FilterClient("c", 2)], page);
        Assert.True(more);
        Assert.Equal([new FilterClient("d", 1)], index.Clients("t/+", "c", "", Everyone, 3).Rows);
        Assert.Empty(index.Clients("nothing", null, "", Everyone, 3).Rows);
    }
}
