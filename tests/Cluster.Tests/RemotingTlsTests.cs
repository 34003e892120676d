using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Akka.Cluster;
using Broker.Tests.Shared;
using Xunit.Abstractions;

namespace Broker.Cluster.Tests;

/// <summary>Two nodes whose remoting runs over TLS with certificates of one CA, shared by the tests of the class.</summary>
public sealed class TlsCluster : IAsyncLifetime
{
    public string Folder { get; } = Path.Combine(Path.GetTempPath(), "broker-remote-tls-" + Guid.NewGuid().ToString("N"));

    public TestCertificates Certificates { get; private set; } = null!;

    public List<TestNode> Nodes { get; } = [];

    public string DataDir => Path.Combine(Folder, "data");

    /// <summary>How long the two nodes took to start and form the cluster.</summary>
    public TimeSpan Formed { get; private set; }

    /// <summary>The overrides that turn remoting TLS on with the given files.</summary>
    public static string Hocon(string certFile, string keyFile, string caFile) => $$"""
        broker.remote-tls {
          cert-file = "{{certFile}}"
          key-file = "{{keyFile}}"
          ca-file = "{{caFile}}"
        }
        """;

    public async Task InitializeAsync()
    {
        Certificates = new TestCertificates(Path.Combine(Folder, "ca"));
        var watch = Stopwatch.StartNew();
        var (cert1, key1) = Certificates.WriteNode("node-1");
        Nodes.Add(await TestNode.StartAsync(Hocon(cert1, key1, Certificates.CaFile), DataDir, "node-1"));
        var (cert2, key2) = Certificates.WriteNode("node-2");
        Nodes.Add(await TestNode.StartAsync(Hocon(cert2, key2, Certificates.CaFile), DataDir, "node-2", Nodes[0].RemoteAddress));
        Formed = watch.Elapsed;
    }

    public async Task DisposeAsync()
    {
        foreach (var node in Enumerable.Reverse(Nodes))
        {
            await node.DisposeAsync();
        }
        Certificates?.Dispose();
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

[Collection(ClusterCollection.Name)]
public sealed class RemotingTlsTests(TlsCluster cluster, ITestOutputHelper output) : IClassFixture<TlsCluster>
{
    private static readonly TimeSpan JoinDeadline = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Two_nodes_with_certificates_of_one_ca_form_a_cluster_over_tls_and_carry_mqtt_between_them()
    {
        output.WriteLine($"two TLS nodes up in {cluster.Formed.TotalSeconds:F1} s");
        var members = Akka.Cluster.Cluster.Get(cluster.Nodes[0].Node.System).State.Members;
        Assert.Equal(2, members.Count(m => m.Status == MemberStatus.Up));
        Assert.All(members, m => Assert.Equal("akka.ssl.tcp", m.Address.Protocol));

        var topic = Ids.New("tls/t");
        await using var sub = await TestClient.ConnectAsync(cluster.Nodes[1].MqttPort, Ids.New("sub"));
        await sub.SubscribeAsync(topic);
        await using var pub = await TestClient.ConnectAsync(cluster.Nodes[0].MqttPort, Ids.New("pub"));
        await pub.PublishAsync(topic, "over tls");

        Assert.Equal("over tls", sub.NextText());
    }

    [Fact]
    public async Task A_node_with_a_certificate_of_another_ca_does_not_join_and_the_cluster_keeps_serving()
    {
        using var other = new TestCertificates(Path.Combine(cluster.Folder, "other-ca-" + Guid.NewGuid().ToString("N")));
        var (cert, key) = other.WriteNode("intruder");
        // The intruder trusts the cluster's CA: only the members' own checks keep it out.
        var hocon = TlsCluster.Hocon(cert, key, cluster.Certificates.CaFile);

        await AssertDoesNotJoinAsync(hocon, "intruder");
    }

    [Fact]
    public async Task A_node_in_clear_text_does_not_join_and_the_cluster_keeps_serving()
    {
        await AssertDoesNotJoinAsync(null, "plain");
    }

    [Fact]
    public async Task The_remoting_port_refuses_a_tls_client_without_a_certificate()
    {
        var address = Akka.Cluster.Cluster.Get(cluster.Nodes[0].Node.System).SelfAddress;
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(address.Host!, address.Port!.Value);
        var nodeCertificateChecked = false;
        await using var tls = new SslStream(tcp.GetStream(), false, (_, certificate, _, _) => nodeCertificateChecked = cluster.Certificates.ValidateServer(certificate));
        using var deadline = new CancellationTokenSource(JoinDeadline);

        // In TLS 1.2 (the highest DotNetty offers) the client's certificate comes before its Finished: the node refuses in the handshake.
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "127.0.0.1",
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            }, deadline.Token);
            // Were the refusal to come after the handshake, the first read would see the connection closed.
            var buffer = new byte[1];
            if (await tls.ReadAsync(buffer, deadline.Token) == 0)
            {
                throw new IOException("closed by the node");
            }
        });
        Assert.False(deadline.IsCancellationRequested, "the node neither finished nor refused the handshake");
        // The node got as far as presenting its certificate: the refusal is about the client's missing one.
        Assert.True(nodeCertificateChecked);
    }

    private async Task AssertDoesNotJoinAsync(string? hocon, string name)
    {
        var watch = Stopwatch.StartNew();
        using var deadline = new CancellationTokenSource(JoinDeadline);
        var seed = cluster.Nodes[0].RemoteAddress;

        // Cancelled while joining (Akka's join says it failed) or while waiting to be up.
        var refused = await Assert.ThrowsAnyAsync<Exception>(() =>
            TestNode.StartAsync(hocon, Path.Combine(cluster.Folder, name + "-data"), name, seed, ct: deadline.Token));
        Assert.True(refused is ClusterJoinFailedException or OperationCanceledException, refused.ToString());
        output.WriteLine($"{name} refused for {watch.Elapsed.TotalSeconds:F1} s");

        var members = Akka.Cluster.Cluster.Get(cluster.Nodes[0].Node.System).State.Members;
        Assert.Equal(["node-1", "node-2"], members.SelectMany(m => m.Roles).Where(r => r.StartsWith("node:", StringComparison.Ordinal)).Select(r => r[5..]).Order());
        Assert.All(members, m => Assert.Equal(MemberStatus.Up, m.Status));
        var topic = Ids.New("tls/after");
        await using var sub = await TestClient.ConnectAsync(cluster.Nodes[1].MqttPort, Ids.New("sub"));
        await sub.SubscribeAsync(topic);
        await using var pub = await TestClient.ConnectAsync(cluster.Nodes[0].MqttPort, Ids.New("pub"));
        await pub.PublishAsync(topic, "still serving");
        Assert.Equal("still serving", sub.NextText());
    }
}
