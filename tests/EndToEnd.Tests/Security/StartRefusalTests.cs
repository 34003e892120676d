using Akka.Configuration;
using Broker.Edge.Hosting;

namespace Broker.EndToEnd.Tests.Security;

public sealed class StartRefusalTests
{
    [Fact]
    public async Task A_node_bound_beyond_loopback_without_authentication_does_not_start()
    {
        var ex = await Assert.ThrowsAsync<ConfigurationException>(() => BrokerNode.StartAsync("""
            broker.host = "0.0.0.0"
            broker.mqtt-port = 0
            broker.amqp-port = 0
            broker.admin-port = 0
            broker.remote-port = 0
            broker.admin.open = true
            """));
        Assert.Contains("no client is authenticated", ex.Message, StringComparison.Ordinal);
    }
}
