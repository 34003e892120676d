using Broker.Edge.Security;

namespace Broker.Edge.Tests.Security;

public class FilterRelationTests
{
    [Theory]
    [InlineData("#", "a/b", true)]
    [InlineData("#", "#", true)]
    [InlineData("#", "+/x", true)]
    [InlineData("#", "$SYS/x", false)]       // '#' matches no topic starting with '$'
    [InlineData("$SYS/#", "$SYS/x/#", true)]
    [InlineData("a/#", "a", true)]           // '#' also matches its parent level
    [InlineData("a/#", "a/#", true)]
    [InlineData("a/#", "a/+/c", true)]
    [InlineData("a/#", "b/#", false)]
    [InlineData("a/#", "+/b", false)]
    [InlineData("a/#", "#", false)]
    [InlineData("a/+", "a/b", true)]
    [InlineData("a/+", "a/+", true)]
    [InlineData("a/+", "a", false)]
    [InlineData("a/+", "a/#", false)]        // a/# matches a and a/b/c
    [InlineData("a/+", "a/b/c", false)]
    [InlineData("a/+/c", "a/+/c", true)]
    [InlineData("a/+/c", "a/b/+", false)]
    [InlineData("a/b", "a/b", true)]
    [InlineData("a/b", "a/+", false)]
    [InlineData("a/+/#", "a/#", false)]
    [InlineData("a/b", "a/b/c", false)]
    public void Covers_when_the_rule_matches_every_topic_the_filter_can(string rule, string filter, bool covers) =>
        Assert.Equal(covers, FilterRelation.Covers(rule, filter));

    [Theory]
    [InlineData("a/#", "a", true)]
    [InlineData("a", "a/#", true)]
    [InlineData("a/+", "+/b", true)]
    [InlineData("a/+", "a/b/c", false)]
    [InlineData("a/b", "a/c", false)]
    [InlineData("#", "$SYS/x", false)]
    [InlineData("+/x", "$SYS/x", false)]
    [InlineData("$SYS/+", "$SYS/#", true)]
    [InlineData("a/+/c", "a/b/#", true)]
    [InlineData("a/b/c", "a/b", false)]
    public void Intersects_when_some_topic_matches_both(string a, string b, bool intersects)
    {
        Assert.Equal(intersects, FilterRelation.Intersects(a, b));
        Assert.Equal(intersects, FilterRelation.Intersects(b, a));
    }
}
