using Broker.Tests.Shared;

namespace Broker.EndToEnd.Tests;

/// <summary>One in-process node shared by the tests of a class; each test uses its own client IDs and topics.</summary>
public sealed class NodeFixture : IAsyncLifetime
{
    public TestNode Node { get; private set; } = null!;

    public int Port => Node.MqttPort;

    public async Task InitializeAsync() => Node = await TestNode.StartAsync();

    public async Task DisposeAsync()
    {
        await Node.DisposeAsync();
        Node.DeleteData();
    }
}
