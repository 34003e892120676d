using Broker.Tests.Shared;

namespace Broker.Cluster.Tests;

/// <summary>Three in-process nodes forming one cluster on one shared database, shared by the tests of a class.</summary>
public abstract class ClusterFixture(string provider) : IAsyncLifetime
{
    public List<TestNode> Nodes { get; private set; } = [];

    public TestDatabase Database { get; private set; } = null!;

    public int Port(int node) => Nodes[node].MqttPort;

    public async Task InitializeAsync()
    {
        Database = await TestDatabase.CreateAsync(provider);
        Nodes = await TestNode.StartClusterAsync(3, Database);
    }

    public async Task DisposeAsync()
    {
        foreach (var node in Enumerable.Reverse(Nodes))
        {
            await node.DisposeAsync();
        }
        Nodes.FirstOrDefault()?.DeleteData();
        await Database.DisposeAsync();
    }
}

public sealed class SqliteCluster() : ClusterFixture("sqlite");

public sealed class PostgresCluster() : ClusterFixture("postgresql");

/// <summary>The cluster tests share the machine's two cores: one class at a time, so failure detectors see no starvation.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ClusterCollection
{
    public const string Name = "cluster";
}
