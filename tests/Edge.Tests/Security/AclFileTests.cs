using Broker.Edge.Security;

namespace Broker.Edge.Tests.Security;

public class AclFileTests
{
    // The shape of mosquitto's aclfile.example: anonymous rules first, then per-user rules, patterns anywhere.
    private static readonly AclFile Acl = AclFile.Parse("""
        # anonymous clients
        topic read public/#

        user alice
        topic readwrite sensors/#
        topic deny sensors/secret
        topic write  cmd/with space

        user bob
        topic sensors/+/temp
        topic read $SYS/broker/#

        pattern write devices/%c/status
        pattern read users/%u/#
        pattern deny devices/%c/locked
        """);

    [Fact]
    public void Anonymous_clients_get_the_rules_before_the_first_user_line()
    {
        var anonymous = Acl.For(null, "anon");
        Assert.True(anonymous.MaySubscribe("public/#"));
        Assert.True(anonymous.MayReceive("public/news"));
        Assert.False(anonymous.MayPublish("public/news"));
        Assert.False(anonymous.MaySubscribe("sensors/#"));
        // Patterns with %u never apply to a client without a user name; those with %c do.
        Assert.False(anonymous.MaySubscribe("users/anon/#"));
        Assert.True(anonymous.MayPublish("devices/anon/status"));
    }

    [Fact]
    public void A_users_rules_grant_publish_by_match_and_subscribe_by_cover()
    {
        var alice = Acl.For("alice", "c1");
        Assert.True(alice.MayPublish("sensors/k/temp"));
        Assert.True(alice.MaySubscribe("sensors/#"));
        Assert.True(alice.MaySubscribe("sensors/+/temp"));
        Assert.True(alice.MaySubscribe("$share/g/sensors/#"));
        Assert.False(alice.MaySubscribe("#"));                // wider than any of her read rules
        Assert.False(alice.MaySubscribe("public/#"));         // the anonymous rules are not hers
        Assert.True(alice.MayPublish("cmd/with space"));
        Assert.False(alice.MayReceive("cmd/with space"));     // write only
        Assert.True(alice.MaySubscribe("users/alice/inbox"));
        Assert.False(alice.MaySubscribe("users/bob/inbox"));

        var bob = Acl.For("bob", "c2");
        Assert.True(bob.MayPublish("sensors/x/temp"));        // no access word: readwrite
        Assert.True(bob.MaySubscribe("sensors/+/temp"));
        Assert.False(bob.MaySubscribe("sensors/#"));
        Assert.True(bob.MaySubscribe("$SYS/broker/load"));
        Assert.False(Acl.For("mallory", "c3").MayPublish("sensors/x/temp"));
    }

    [Fact]
    public void Deny_wins_over_grants_per_topic_and_refuses_a_subscription_it_covers()
    {
        var alice = Acl.For("alice", "c1");
        Assert.False(alice.MayPublish("sensors/secret"));
        Assert.False(alice.MayReceive("sensors/secret"));
        Assert.True(alice.MayReceive("sensors/public"));
        Assert.False(alice.MaySubscribe("sensors/secret"));
        // A granted filter that merely overlaps a deny line: granted, the denied topic is filtered at delivery.
        Assert.True(alice.MaySubscribe("sensors/#"));

        var device = Acl.For("alice", "d7");
        Assert.True(device.MayPublish("devices/d7/status"));
        Assert.False(device.MayPublish("devices/d8/status"));
        Assert.False(Acl.For("alice", "d7").MayReceive("devices/d7/locked"));
    }

    [Theory]
    [InlineData("a/#")]
    [InlineData("+")]
    [InlineData("x/y")]
    public void A_client_id_with_wildcards_or_levels_cannot_widen_a_pattern(string clientId)
    {
        var acl = Acl.For("bob", clientId);
        Assert.False(acl.MayPublish("devices/" + clientId + "/status"));
        Assert.False(acl.MayPublish("devices/a/status"));
        // The deny pattern with %c cannot be filled in either: reading is blocked too rather than left undenied.
        Assert.False(acl.MayReceive("sensors/x/temp"));
    }

    [Fact]
    public void A_user_name_with_wildcards_cannot_widen_a_pattern()
    {
        var acl = Acl.For("#", "c9");
        Assert.False(acl.MaySubscribe("users/#"));
        Assert.False(acl.MayReceive("users/x/y"));
    }

    [Theory]
    [InlineData("topic")]
    [InlineData("topic read")]
    [InlineData("topic read a/#/b")]
    [InlineData("user")]
    [InlineData("pattern write $share/g/x")]
    [InlineData("allow all")]
    public void A_line_that_is_not_a_rule_is_an_error_naming_its_number(string line)
    {
        var ex = Assert.Throws<FormatException>(() => AclFile.Parse("topic read a\n" + line, "acl"));
        Assert.StartsWith("acl line 2:", ex.Message, StringComparison.Ordinal);
    }
}
