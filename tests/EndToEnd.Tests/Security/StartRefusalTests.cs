using Akka.Configuration;
using Broker.Edge.Hosting;
using Broker.Tests.Shared;

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

    [Fact]
    public async Task A_node_process_with_a_wrong_value_exits_naming_the_key()
    {
        var dir = Directory.CreateTempSubdirectory("broker-wrong-value-").FullName;
        try
        {
            var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => NodeProcess.StartAsync(dir, "wrong",
                new Dictionary<string, string> { ["BROKER_MAX_CONNECTIONS"] = "many" }, TimeSpan.FromSeconds(60)));
            Assert.Contains("broker failed to start: broker.limits.max-connections (BROKER_MAX_CONNECTIONS) must be a whole number, not 'many'",
                ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
