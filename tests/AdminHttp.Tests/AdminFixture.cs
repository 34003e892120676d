using Broker.Tests.Shared;

namespace Broker.AdminHttp.Tests;

public sealed class AdminFixture : IAsyncLifetime
{
    public TestNode Node { get; private set; } = null!;
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(30) };

    public async Task InitializeAsync()
    {
        Node = await TestNode.StartAsync();
        Http.BaseAddress = new Uri(Node.AdminUrl);
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Node.DisposeAsync();
        Node.DeleteData();
    }
}
