using System.Reflection;
using Broker.Actors.Routing;

namespace Broker.Actors.Tests.Routing;

public class SubscriptionTrieTests
{
    private static RouteCollector Match(SubscriptionTrie trie, string topic)
    {
        var c = new RouteCollector();
        trie.Match(topic, c);
        return c;
    }

    private static string[] Plain(SubscriptionTrie trie, string topic) =>
        [.. Match(trie, topic).Targets.Where(t => t.Value.NonShared).Select(t => t.Key).Order(StringComparer.Ordinal)];

    /// <summary>The trie's root has no children left: removing the last subscription pruned every node.</summary>
    private static bool RootIsEmpty(SubscriptionTrie trie)
    {
        var root = typeof(SubscriptionTrie).GetField("_root", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(trie)!;
        return (bool)root.GetType().GetProperty("IsEmpty")!.GetValue(root)!;
    }

    [Fact]
    public void Exact_filter_matches_only_its_topic()
    {
        var trie = new SubscriptionTrie();
        trie.Add("c1", "a/b");
        Assert.Equal(["c1"], Plain(trie, "a/b"));
        Assert.Empty(Plain(trie, "a"));
        Assert.Empty(Plain(trie, "a/b/c"));
        Assert.Empty(Plain(trie, "a/c"));
    }

    [Fact]
    public void Wildcard_filters_match_like_TopicFilter_Matches()
    {
        string[] filters = ["#", "+", "a/#", "a/+", "+/b", "a/+/c", "+/#", "a//c", "/#", "a/b/c", "$SYS/#", "$SYS/+", "+/+", "a/+/#"];
        string[] topics = ["a", "a/b", "a/b/c", "a//c", "/", "/b", "b", "a/", "$SYS", "$SYS/x", "$SYS/x/y", "x/b", "a/b/c/d"];
        var trie = new SubscriptionTrie();
        for (var i = 0; i < filters.Length; i++)
        {
            trie.Add("c" + i, filters[i]);
        }
        foreach (var topic in topics)
        {
            var expected = Enumerable.Range(0, filters.Length)
                .Where(i => TopicFilter.Matches(filters[i], topic))
                .Select(i => "c" + i)
                .Order(StringComparer.Ordinal)
                .ToArray();
            Assert.True(expected.SequenceEqual(Plain(trie, topic)), $"topic '{topic}': expected [{string.Join(",", expected)}], got [{string.Join(",", Plain(trie, topic))}]");
        }
    }

    [Fact]
    public void Hash_filter_matches_its_parent_level()
    {
        var trie = new SubscriptionTrie();
        trie.Add("c1", "a/#");
        Assert.Equal(["c1"], Plain(trie, "a"));
        Assert.Equal(["c1"], Plain(trie, "a/b/c"));
        Assert.Empty(Plain(trie, "b"));
    }

    [Fact]
    public void Plus_matches_an_empty_level()
    {
        var trie = new SubscriptionTrie();
        trie.Add("c1", "a/+/c");
        trie.Add("c2", "+/b");
        Assert.Equal(["c1"], Plain(trie, "a//c"));
        Assert.Equal(["c2"], Plain(trie, "/b"));
    }

    [Fact]
    public void Dollar_topics_are_not_matched_by_leading_wildcards()
    {
        var trie = new SubscriptionTrie();
        trie.Add("hash", "#");
        trie.Add("plus", "+/x");
        trie.Add("sys", "$SYS/#");
        trie.Add("shared", "$share/g/#");
        var c = Match(trie, "$SYS/x");
        Assert.Equal(["sys"], c.Targets.Keys.ToArray());
        Assert.Equal(["hash", "plus", "shared"], Match(trie, "a/x").Targets.Keys.Order(StringComparer.Ordinal).ToArray());
    }

    [Fact]
    public void Adding_twice_is_idempotent()
    {
        var trie = new SubscriptionTrie();
        trie.Add("c1", "a/+");
        trie.Add("c1", "a/+");
        trie.Add("c1", "$share/g/a/+");
        trie.Add("c1", "$share/g/a/+");
        Assert.Equal(2, trie.Count);
        trie.Remove("c1", "a/+");
        trie.Remove("c1", "$share/g/a/+");
        Assert.Equal(0, trie.Count);
        Assert.Equal(0, Match(trie, "a/b").Count);
    }

    [Fact]
    public void Remove_stops_matching_and_prunes_empty_nodes()
    {
        var trie = new SubscriptionTrie();
        string[] filters = ["a/b/c", "a/+/c", "a/#", "#", "+", "a//b", "$share/g/x/+/#", "$share/h/x"];
        foreach (var f in filters)
        {
            trie.Add("c1", f);
            trie.Add("c2", f);
        }
        Assert.Equal(filters.Length * 2, trie.Count);
        foreach (var f in filters)
        {
            trie.Remove("c1", f);
        }
        Assert.Equal(filters.Length, trie.Count);
        Assert.Equal(["c2"], Match(trie, "a/b/c").Targets.Keys.ToArray());
        Assert.False(RootIsEmpty(trie));
        foreach (var f in filters)
        {
            trie.Remove("c2", f);
        }
        Assert.Equal(0, trie.Count);
        Assert.Equal(0, Match(trie, "a/b/c").Count);
        Assert.Equal(0, Match(trie, "x/y/z").Count);
        Assert.True(RootIsEmpty(trie));
    }

    [Fact]
    public void A_filter_goes_from_one_subscriber_to_many_and_back_without_losing_any()
    {
        // One subscriber is held on its own, more in a set: every step between the two keeps the right targets.
        var trie = new SubscriptionTrie();
        foreach (var f in new[] { "d/1", "d/#" })
        {
            trie.Add("c1", f);
            trie.Add("c1", f);
            Assert.Equal(["c1"], Plain(trie, "d/1"));
            trie.Add("c2", f);
            trie.Add("c3", f);
            Assert.Equal(["c1", "c2", "c3"], Plain(trie, "d/1"));
            trie.Remove("c2", f);
            Assert.Equal(["c1", "c3"], Plain(trie, "d/1"));
            trie.Remove("c1", f);
            Assert.Equal(["c3"], Plain(trie, "d/1"));
            trie.Remove("c1", f);
            trie.Add("c4", f);
            Assert.Equal(["c3", "c4"], Plain(trie, "d/1"));
            trie.Remove("c3", f);
            trie.Remove("c4", f);
            Assert.Empty(Plain(trie, "d/1"));
            Assert.Equal(0, trie.Count);
            Assert.True(RootIsEmpty(trie));
        }
    }

    [Fact]
    public void Removing_unknown_entries_is_ignored()
    {
        var trie = new SubscriptionTrie();
        trie.Add("c1", "a/b");
        trie.Remove("c2", "a/b");
        trie.Remove("c1", "a/c");
        trie.Remove("c1", "$share/g/a/b");
        trie.Remove("c1", "a/#");
        Assert.Equal(1, trie.Count);
        Assert.Equal(["c1"], Plain(trie, "a/b"));
    }

    [Fact]
    public void Removing_one_filter_keeps_the_clients_other_filters()
    {
        var trie = new SubscriptionTrie();
        trie.Add("c1", "a/b");
        trie.Add("c1", "a/#");
        trie.Remove("c1", "a/#");
        Assert.Equal(["c1"], Plain(trie, "a/b"));
        Assert.Empty(Plain(trie, "a/c"));
    }

    [Fact]
    public void Overlapping_filters_give_one_target_per_client()
    {
        var trie = new SubscriptionTrie();
        trie.Add("c1", "a/b");
        trie.Add("c1", "a/+");
        trie.Add("c1", "#");
        var c = Match(trie, "a/b");
        Assert.Equal(1, c.Count);
        Assert.True(c.Targets["c1"].NonShared);
        Assert.Null(c.Targets["c1"].SharedFilters);
    }

    [Fact]
    public void Shared_group_gives_each_message_to_exactly_one_member_in_turn()
    {
        var trie = new SubscriptionTrie();
        trie.Add("m1", "$share/g/jobs/+");
        trie.Add("m2", "$share/g/jobs/+");
        var picks = new List<string>();
        for (var i = 0; i < 10; i++)
        {
            var c = Match(trie, "jobs/" + i);
            Assert.Equal(1, c.Count);
            var (client, target) = c.Targets.Single();
            Assert.False(target.NonShared);
            Assert.Equal(["$share/g/jobs/+"], target.SharedFilters!);
            picks.Add(client);
        }
        for (var i = 1; i < picks.Count; i++)
        {
            Assert.NotEqual(picks[i - 1], picks[i]);
        }
        Assert.Equal(5, picks.Count(p => p == "m1"));
    }

    [Fact]
    public void Shared_group_round_robin_covers_all_members_evenly()
    {
        var trie = new SubscriptionTrie();
        for (var i = 0; i < 3; i++)
        {
            trie.Add("m" + i, "$share/g/t");
        }
        var counts = new Dictionary<string, int>();
        for (var i = 0; i < 30; i++)
        {
            var client = Match(trie, "t").Targets.Single().Key;
            counts[client] = counts.GetValueOrDefault(client) + 1;
        }
        Assert.Equal(3, counts.Count);
        Assert.All(counts.Values, n => Assert.Equal(10, n));
    }

    [Fact]
    public void Each_shared_group_and_plain_subscribers_receive_independently()
    {
        var trie = new SubscriptionTrie();
        trie.Add("a1", "$share/a/t/#");
        trie.Add("a2", "$share/a/t/#");
        trie.Add("b1", "$share/b/t/x");
        trie.Add("p", "t/x");
        var c = Match(trie, "t/x");
        Assert.Equal(3, c.Count);
        Assert.True(c.Targets["p"].NonShared);
        Assert.Equal(["$share/b/t/x"], c.Targets["b1"].SharedFilters!);
        var aMember = c.Targets.Keys.Single(k => k.StartsWith('a'));
        Assert.Equal(["$share/a/t/#"], c.Targets[aMember].SharedFilters!);
    }

    [Fact]
    public void Member_of_a_shared_group_that_also_subscribed_plainly_is_one_target_with_both()
    {
        var trie = new SubscriptionTrie();
        trie.Add("c1", "$share/g/t");
        trie.Add("c1", "t");
        var target = Match(trie, "t").Targets["c1"];
        Assert.True(target.NonShared);
        Assert.Equal(["$share/g/t"], target.SharedFilters!);
    }

    [Fact]
    public void Removing_a_shared_member_leaves_the_rest_of_the_group()
    {
        var trie = new SubscriptionTrie();
        trie.Add("m1", "$share/g/t");
        trie.Add("m2", "$share/g/t");
        trie.Remove("m1", "$share/g/t");
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("m2", Match(trie, "t").Targets.Single().Key);
        }
    }

    [Fact]
    public void Many_clients_on_many_filters_are_all_found()
    {
        var trie = new SubscriptionTrie();
        const int n = 2000;
        for (var i = 0; i < n; i++)
        {
            trie.Add("c" + i, $"dev/{i}/#");
            trie.Add("c" + i, "dev/+/status");
        }
        Assert.Equal(2 * n, trie.Count);
        Assert.Equal(n, Match(trie, "dev/7/status").Count);
        Assert.Equal(["c7"], Plain(trie, "dev/7/other"));
        for (var i = 0; i < n; i += 2)
        {
            trie.Remove("c" + i, "dev/+/status");
        }
        Assert.Equal(n + n / 2, trie.Count);
        Assert.Equal(n / 2 + 1, Match(trie, "dev/8/status").Count);
    }

    [Fact]
    public async Task Concurrent_matches_during_adds_see_a_consistent_trie()
    {
        var trie = new SubscriptionTrie();
        trie.Add("base", "load/#");
        var writer = Task.Run(() =>
        {
            for (var i = 0; i < 2000; i++)
            {
                trie.Add("w" + i, "load/" + i);
            }
        });
        var readers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            var c = new RouteCollector();
            for (var i = 0; i < 2000; i++)
            {
                c.Clear();
                trie.Match("load/" + i, c);
                Assert.True(c.Targets.ContainsKey("base"));
            }
        })).ToArray();
        await Task.WhenAll([writer, .. readers]).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2001, trie.Count);
    }

    [Fact]
    public void Shared_group_skips_disconnected_members_unless_none_is_connected()
    {
        var trie = new SubscriptionTrie();
        trie.Add("a", "$share/g/t");
        trie.Add("b", "$share/g/t", connected: false);
        trie.Add("c", "$share/g/t");
        var picks = Enumerable.Range(0, 6).Select(_ => Match(trie, "t").Targets.Keys.Single()).ToList();
        Assert.DoesNotContain("b", picks);
        Assert.Equal(3, picks.Count(p => p == "a"));

        trie.SetConnected("a", "$share/g/t", false);
        trie.SetConnected("c", "$share/g/t", false);
        var fallback = Enumerable.Range(0, 6).Select(_ => Match(trie, "t").Targets.Keys.Single()).ToList();
        Assert.Equal(["a", "b", "c"], fallback.Distinct().Order(StringComparer.Ordinal));

        trie.SetConnected("b", "$share/g/t", true);
        Assert.All(Enumerable.Range(0, 4), _ => Assert.Equal("b", Match(trie, "t").Targets.Keys.Single()));
    }

    /// <summary>A depth no thread stack could recurse through (the fix for one SUBSCRIBE that took a node down).</summary>
    private const int HugeDepth = 100_000;

    [Fact]
    public void Filters_and_topics_of_100000_levels_match_and_are_removed_without_recursion()
    {
        var deep = string.Join('/', Enumerable.Repeat("a", HugeDepth));
        var plusses = string.Join('/', Enumerable.Repeat("+", HugeDepth));
        var trie = new SubscriptionTrie();
        trie.Add("exact", deep);
        trie.Add("plus", plusses);
        trie.Add("hash", plusses[..^1] + "#");
        trie.Add("shallow", "a/+");
        Assert.Equal(4, trie.Count);

        Assert.Equal(["exact", "hash", "plus"], Plain(trie, deep));
        Assert.Equal(["hash", "plus"], Plain(trie, string.Join('/', Enumerable.Repeat("b", HugeDepth))));
        Assert.Equal(["hash"], Plain(trie, deep + "/a"));
        Assert.Equal(["hash"], Plain(trie, deep[..^2]));   // one level less: only "#" also matches its parent level
        Assert.Empty(Plain(trie, deep[..^4]));

        trie.Remove("exact", deep);
        Assert.Equal(["hash", "plus"], Plain(trie, deep));
        trie.Remove("plus", plusses);
        trie.Remove("hash", plusses[..^1] + "#");
        trie.Remove("shallow", "a/+");
        Assert.Equal(0, trie.Count);
        Assert.True(RootIsEmpty(trie));
    }

    [Fact]
    public void Removing_a_deep_filter_keeps_the_nodes_other_filters_still_use()
    {
        var deep = string.Join('/', Enumerable.Repeat("a", HugeDepth));
        var trie = new SubscriptionTrie();
        trie.Add("short", "a/a/a");
        trie.Add("deep", deep);
        trie.Remove("deep", deep);
        Assert.Equal(["short"], Plain(trie, "a/a/a"));
        Assert.Empty(Plain(trie, deep));
        trie.Remove("short", "a/a/a");
        Assert.True(RootIsEmpty(trie));
    }
}
