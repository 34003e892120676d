using Broker.Actors.Amqp.Content;
using Broker.Edge.Amqp;
using Broker.Edge.Security;

namespace Broker.Edge.Tests.Security;

public class AmqpPermissionsTests
{
    private static readonly AmqpPermissions Permissions = AmqpPermissions.Parse("""
        # user  configure  write  read
        app     ^app\.     ^(app\..*|amq\.default)$     ^app\.
        viewer  ^$         ^$     .*
        """);

    private static readonly FieldTable None = FieldTable.Empty;

    [Fact]
    public void Each_method_needs_the_access_rabbitmq_gives_it()
    {
        Assert.Null(Permissions.Check("app", new QueueDeclare("app.q", false, true, false, false, false, None), null));
        Assert.Contains("configure access to queue 'other'", Permissions.Check("app", new QueueDeclare("other", false, true, false, false, false, None), null), StringComparison.Ordinal);
        Assert.Null(Permissions.Check("viewer", new QueueDeclare("other", Passive: true, true, false, false, false, None), null));   // passive: none
        Assert.Null(Permissions.Check("app", new BasicPublish("", "app.q", false, false), null));                                   // amq.default
        Assert.NotNull(Permissions.Check("app", new BasicPublish("amq.topic", "x", false, false), null));
        Assert.Null(Permissions.Check("app", new QueueBind("app.q", "app.ex", "k", false, None), null));
        Assert.Contains("read access to exchange 'amq.direct'", Permissions.Check("app", new QueueBind("app.q", "amq.direct", "k", false, None), null), StringComparison.Ordinal);
        Assert.Null(Permissions.Check("app", new BasicConsume("", "tag", false, false, false, false, None), lastQueue: "app.q"));
        Assert.NotNull(Permissions.Check("app", new BasicGet("", false), lastQueue: "other"));
        Assert.Null(Permissions.Check("viewer", new BasicGet("anything", false), null));
        Assert.Null(Permissions.Check("viewer", new QueuePurge("anything", false), null));                                  // purge reads
        Assert.NotNull(Permissions.Check("viewer", new ExchangeDelete("app.ex", false, false), null));
        Assert.NotNull(Permissions.Check("nobody", new BasicGet("app.q", false), null));   // no line: nothing
        Assert.Null(Permissions.Check("nobody", new BasicQos(0, 10, false), null));         // methods on no resource pass
    }

    [Fact]
    public void The_refusal_is_worded_as_rabbitmq_words_it() =>
        Assert.Equal("ACCESS_REFUSED - write access to exchange 'amq.fanout' in vhost '/' refused for user 'app'",
            Permissions.Check("app", new BasicPublish("amq.fanout", "", false, false), null));

    [Theory]
    [InlineData("app .* .*")]
    [InlineData("app ( .* .*")]
    public void A_malformed_line_is_an_error(string line) =>
        Assert.Throws<FormatException>(() => AmqpPermissions.Parse(line));

    [Theory]
    [InlineData("sensors.*.temp", "sensors/+/temp")]
    [InlineData("sensors.#", "sensors/#")]
    [InlineData("a/b.c", "a.b/c")]
    [InlineData("#", "#")]
    [InlineData("a.#.b", null)]
    [InlineData("a*.b", null)]
    [InlineData("", null)]
    public void Binding_keys_of_amq_topic_are_mqtt_filters(string key, string? filter) =>
        Assert.Equal(filter, AmqpPermissions.BindingKeyToFilter(key));
}
