using System.Collections.Concurrent;
using System.Text;
using Broker.Edge.Hosting;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Broker.Tests.Shared;

/// <summary>A broker node started in-process on free ports with its own SQLite file in a temp folder.</summary>
public sealed class TestNode : IAsyncDisposable
{
    private TestNode(BrokerNode node, string dataDir)
    {
        Node = node;
        DataDir = dataDir;
    }

    public BrokerNode Node { get; }
    public string DataDir { get; }
    public int MqttPort => Node.MqttPort;
    public int AmqpPort => Node.AmqpPort;
    public string AdminUrl => Node.AdminUrl;

    public string Name => Node.Settings.NodeName;

    /// <summary>host:port of this node's Akka remoting, usable as a seed node.</summary>
    public string RemoteAddress
    {
        get
        {
            var address = Akka.Cluster.Cluster.Get(Node.System).SelfAddress;
            return $"{address.Host}:{address.Port}";
        }
    }

    /// <summary>
    /// Starts <paramref name="count"/> nodes forming one cluster (node-1 is the seed) on one shared database:
    /// a SQLite file in one temp folder, or the PostgreSQL database <paramref name="database"/> describes.
    /// </summary>
    public static async Task<List<TestNode>> StartClusterAsync(int count, TestDatabase? database = null, string? extraHocon = null)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "broker-test-" + Guid.NewGuid().ToString("N"));
        var nodes = new List<TestNode>();
        try
        {
            nodes.Add(await StartAsync(extraHocon, dataDir, "node-1", "", database));
            var seed = nodes[0].RemoteAddress;
            for (var i = 2; i <= count; i++)
            {
                nodes.Add(await StartAsync(extraHocon, dataDir, $"node-{i}", seed, database));
            }
            return nodes;
        }
        catch
        {
            foreach (var n in nodes)
            {
                await n.DisposeAsync();
            }
            throw;
        }
    }

    public static async Task<TestNode> StartAsync(string? extraHocon = null, string? dataDir = null, string nodeName = "test-node", string seeds = "", TestDatabase? database = null,
        CancellationToken ct = default)
    {
        dataDir ??= Path.Combine(Path.GetTempPath(), "broker-test-" + Guid.NewGuid().ToString("N"));
        var overrides = $$"""
            broker {
              node-name = "{{nodeName}}"
              host = "127.0.0.1"
              mqtt-port = 0
              amqp-port = 0
              admin-port = 0
              ws-port = 0
              wss-port = 0
              remote-port = 0
              seed-nodes = "{{seeds}}"
              data-dir = "{{dataDir.Replace("\\", "/", StringComparison.Ordinal)}}"
              db-provider = "{{database?.Provider ?? "sqlite"}}"
              db-connection = "{{database?.ConnectionString ?? ""}}"
              # In-process test nodes share the test process's thread pool with the other test classes running at
              # the same time, so on a busy 2-core machine an admin query's answer can take longer than the 3 s
              # default; no test of an in-process node is about that timeout.
              admin.query-timeout = 15s
            }
            akka.loglevel = {{Environment.GetEnvironmentVariable("BROKER_TEST_LOGLEVEL") ?? "WARNING"}}
            {{extraHocon}}
            """;
        var node = await BrokerNode.StartAsync(overrides, ct);
        return new TestNode(node, dataDir);
    }

    public async ValueTask DisposeAsync()
    {
        await Node.DisposeAsync();
    }

    public void DeleteData()
    {
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>An MQTTnet client that records what it receives, with waits bounded by a deadline.</summary>
public sealed class TestClient : IAsyncDisposable
{
    private static readonly MqttClientFactory Factory = new();
    private readonly BlockingCollection<MqttApplicationMessage> _received = new();

    public TestClient(string clientId)
    {
        ClientId = clientId;
        Client = Factory.CreateMqttClient();
        Client.ApplicationMessageReceivedAsync += e =>
        {
            _received.Add(e.ApplicationMessage);
            return Task.CompletedTask;
        };
    }

    public string ClientId { get; }
    public IMqttClient Client { get; }
    public int ReceivedCount => _received.Count;

    public static async Task<TestClient> ConnectAsync(
        int port,
        string clientId,
        MqttProtocolVersion version = MqttProtocolVersion.V500,
        bool clean = true,
        uint sessionExpiry = 0,
        Action<MqttClientOptionsBuilder>? configure = null)
    {
        var c = new TestClient(clientId);
        var b = new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", port)
            .WithClientId(clientId)
            .WithProtocolVersion(version)
            .WithTimeout(TimeSpan.FromSeconds(10));
        if (version == MqttProtocolVersion.V500)
        {
            b.WithCleanStart(clean).WithSessionExpiryInterval(sessionExpiry);
        }
        else
        {
            b.WithCleanSession(clean);
        }
        configure?.Invoke(b);
        c.LastConnect = await c.Client.ConnectAsync(b.Build());
        return c;
    }

    public MqttClientConnectResult? LastConnect { get; private set; }

    public Task SubscribeAsync(string filter, MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.AtLeastOnce) =>
        Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter(f => f.WithTopic(filter).WithQualityOfServiceLevel(qos)).Build());

    public Task<MqttClientPublishResult> PublishAsync(string topic, string payload, MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.AtLeastOnce, bool retain = false) =>
        Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithQualityOfServiceLevel(qos).WithRetainFlag(retain).Build());

    /// <summary>The next received message, or a failure after <paramref name="timeout"/> (default 10 s).</summary>
    public MqttApplicationMessage Next(TimeSpan? timeout = null)
    {
        if (_received.TryTake(out var m, timeout ?? TimeSpan.FromSeconds(10)))
        {
            return m;
        }
        throw new TimeoutException($"{ClientId}: no message within {timeout ?? TimeSpan.FromSeconds(10)}");
    }

    /// <summary>The payload of the next received message as UTF-8 text.</summary>
    public string NextText(TimeSpan? timeout = null) => Encoding.UTF8.GetString(Next(timeout).Payload);

    /// <summary>Creates a persistent session subscribed to <paramref name="filter"/>, then disconnects it.</summary>
    public static async Task LeaveOfflineSessionAsync(
        int port, string clientId, string filter, MqttProtocolVersion version = MqttProtocolVersion.V500,
        MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.AtLeastOnce, uint sessionExpiry = 600)
    {
        await using var c = await ConnectAsync(port, clientId, version, clean: false, sessionExpiry: sessionExpiry);
        await c.SubscribeAsync(filter, qos);
    }

    /// <summary>Asserts nothing arrives within <paramref name="window"/> (used only to check absence).</summary>
    public void ExpectNothing(TimeSpan window)
    {
        if (_received.TryTake(out var m, window))
        {
            throw new InvalidOperationException($"{ClientId}: unexpected message on {m.Topic}: {Encoding.UTF8.GetString(m.Payload)}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Client.IsConnected)
        {
            try
            {
                await Client.DisconnectAsync();
            }
            catch (Exception)
            {
                // Already gone.
            }
        }
        Client.Dispose();
        _received.Dispose();
    }
}

public static class Wait
{
    /// <summary>Polls <paramref name="condition"/> until it holds or the deadline passes.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await condition())
            {
                return;
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out waiting for {what}");
            }
            await Task.Delay(50);
        }
    }

    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what) =>
        UntilAsync(() => Task.FromResult(condition()), timeout, what);
}

public static class Ids
{
    /// <summary>A client ID or topic unique to one test, so tests can share a node.</summary>
    public static string New(string name) => name + "-" + Guid.NewGuid().ToString("N")[..8];
}
