using Broker.Actors.Routing;

namespace Broker.Actors.Tests.Routing;

public class TopicFilterTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("a/b/c")]
    [InlineData("/")]
    [InlineData("/a")]
    [InlineData("a/")]
    [InlineData("a//b")]
    [InlineData("$SYS/broker")]
    [InlineData("caf\u00e9/\u00fcml\u00e4ut")]
    public void Valid_topic_names_are_accepted(string topic) => Assert.True(TopicFilter.IsValidTopicName(topic));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("a/+")]
    [InlineData("a/#")]
    [InlineData("+")]
    [InlineData("#")]
    [InlineData("a+b")]
    [InlineData("a\0b")]
    public void Invalid_topic_names_are_refused(string? topic) => Assert.False(TopicFilter.IsValidTopicName(topic));

    [Fact]
    public void Topic_name_longer_than_65535_utf8_bytes_is_refused()
    {
        Assert.True(TopicFilter.IsValidTopicName(new string('a', 65535)));
        Assert.False(TopicFilter.IsValidTopicName(new string('a', 65536)));
        // 'é' is two UTF-8 bytes: 32768 of them are 65536 bytes though only 32768 chars.
        Assert.False(TopicFilter.IsValidTopicName(new string('\u00e9', 32768)));
    }

    [Theory]
    [InlineData("a")]
    [InlineData("#")]
    [InlineData("+")]
    [InlineData("a/#")]
    [InlineData("a/+")]
    [InlineData("+/+")]
    [InlineData("+/a/#")]
    [InlineData("a/+/b")]
    [InlineData("/")]
    [InlineData("//")]
    [InlineData("a//b")]
    [InlineData("/#")]
    [InlineData("+/")]
    [InlineData("$SYS/#")]
    [InlineData("$share/group/a/b")]
    [InlineData("$share/group/#")]
    [InlineData("$share/group/+/x")]
    [InlineData("$share/g/a//b")]
    public void Valid_filters_are_accepted(string filter) => Assert.True(TopicFilter.IsValidFilter(filter));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("a/#/b")]
    [InlineData("#/a")]
    [InlineData("a#")]
    [InlineData("a/b#")]
    [InlineData("a+")]
    [InlineData("a/+b")]
    [InlineData("++")]
    [InlineData("##")]
    [InlineData("a\0b")]
    [InlineData("$share/")]
    [InlineData("$share/group")]
    [InlineData("$share/group/")]
    [InlineData("$share//a")]
    [InlineData("$share/gr+oup/a")]
    [InlineData("$share/gr#oup/a")]
    [InlineData("$share/+/a")]
    [InlineData("$share/group/a/#/b")]
    [InlineData("$share/group/a+")]
    public void Invalid_filters_are_refused(string? filter) => Assert.False(TopicFilter.IsValidFilter(filter));

    [Fact]
    public void Shared_filter_splits_into_group_and_inner_filter()
    {
        Assert.True(TopicFilter.TryParseShared("$share/workers/jobs/+/new", out var group, out var inner));
        Assert.Equal("workers", group);
        Assert.Equal("jobs/+/new", inner);
        Assert.False(TopicFilter.TryParseShared("jobs/+/new", out _, out _));
        Assert.False(TopicFilter.TryParseShared("$share/workers", out _, out _));
    }

    [Theory]
    // exact
    [InlineData("a", "a", true)]
    [InlineData("a/b", "a/b", true)]
    [InlineData("a/b", "a/c", false)]
    [InlineData("a/b", "a", false)]
    [InlineData("a", "a/b", false)]
    [InlineData("a", "A", false)]
    // multi-level wildcard
    [InlineData("#", "a", true)]
    [InlineData("#", "a/b/c", true)]
    [InlineData("#", "/", true)]
    [InlineData("a/#", "a", true)]
    [InlineData("a/#", "a/", true)]
    [InlineData("a/#", "a/b", true)]
    [InlineData("a/#", "a/b/c", true)]
    [InlineData("a/#", "ab", false)]
    [InlineData("a/#", "b/a", false)]
    [InlineData("a/b/#", "a", false)]
    // single-level wildcard
    [InlineData("+", "a", true)]
    [InlineData("+", "a/b", false)]
    [InlineData("+", "/", false)]
    [InlineData("+/+", "/", true)]
    [InlineData("+/b", "/b", true)]
    [InlineData("a/+", "a/", true)]
    [InlineData("a/+", "a", false)]
    [InlineData("a/+", "a/b", true)]
    [InlineData("a/+", "a/b/c", false)]
    [InlineData("a/+/c", "a/b/c", true)]
    [InlineData("a/+/c", "a//c", true)]
    [InlineData("a/+/c", "a/b/d", false)]
    [InlineData("+/#", "a", true)]
    [InlineData("+/#", "a/b/c", true)]
    [InlineData("a/+/#", "a", false)]
    [InlineData("a/+/#", "a/b", true)]
    // empty levels
    [InlineData("a//b", "a//b", true)]
    [InlineData("a//b", "a/b", false)]
    [InlineData("/a", "/a", true)]
    [InlineData("/a", "a", false)]
    // '$' topics: not matched by a leading wildcard (§4.7.2)
    [InlineData("#", "$SYS/x", false)]
    [InlineData("+/x", "$SYS/x", false)]
    [InlineData("+", "$SYS", false)]
    [InlineData("$SYS/#", "$SYS/x", true)]
    [InlineData("$SYS/#", "$SYS", true)]
    [InlineData("$SYS/+", "$SYS/x", true)]
    [InlineData("$SYS/x", "$SYS/x", true)]
    [InlineData("a/#", "a/$x", true)]
    [InlineData("a/+", "a/$x", true)]
    public void Matches_follows_the_spec_table(string filter, string topic, bool expected) =>
        Assert.Equal(expected, TopicFilter.Matches(filter, topic));

    [Theory]
    [InlineData("a/b/c", 5, 3, true)]
    [InlineData("a/b/c/", 6, 3, false)]        // a trailing '/' starts a fourth, empty level
    [InlineData("///", 4, 4, true)]
    [InlineData("////", 5, 4, false)]
    [InlineData("abcde", 4, 10, false)]
    [InlineData("é", 2, 1, true)]              // 2 UTF-8 bytes
    [InlineData("éé", 3, 1, false)]            // 4 UTF-8 bytes in 2 chars
    [InlineData("\U0001F600", 4, 1, true)]    // one surrogate pair: 4 bytes
    [InlineData("$share/g/a/b", 100, 4, true)] // a shared filter's prefix counts as levels
    [InlineData("$share/g/a/b", 100, 3, false)]
    public void WithinBounds_counts_utf8_bytes_and_levels(string topic, int maxBytes, int maxLevels, bool expected) =>
        Assert.Equal(expected, TopicFilter.WithinBounds(System.Text.RegularExpressions.Regex.Unescape(topic), maxBytes, maxLevels));
}
