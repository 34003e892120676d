using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Event;
using Akka.Remote.Transport.DotNetty;
using Broker.Edge.Hosting;
using Broker.Tests.Shared;

namespace Broker.Edge.Tests.Hosting;

[Collection(EnvironmentCollection.Name)]
public sealed class RemotingTlsSettingsTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "broker-remote-tls-settings-" + Guid.NewGuid().ToString("N"));
    private readonly TestCertificates _certificates;

    public RemotingTlsSettingsTests() => _certificates = new TestCertificates(_folder);

    private static string Hocon(string cert, string key, string ca) =>
        $"broker.remote-tls {{ cert-file = \"{cert}\", key-file = \"{key}\", ca-file = \"{ca}\" }}";

    [Fact]
    public async Task A_node_with_a_remoting_certificate_but_no_ca_file_refuses_to_start_naming_the_key()
    {
        var (cert, key) = _certificates.WriteNode("node-1");

        var e = await Assert.ThrowsAsync<ConfigurationException>(() => TestNode.StartAsync(Hocon(cert, key, ""), Path.Combine(_folder, "data")));

        Assert.Contains("broker.remote-tls.ca-file must be set", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_node_whose_remoting_key_file_does_not_exist_refuses_to_start_naming_it()
    {
        var (cert, _) = _certificates.WriteNode("node-1");
        var missing = Path.Combine(_folder, "no-such.key");

        var e = await Assert.ThrowsAsync<ConfigurationException>(() =>
            TestNode.StartAsync(Hocon(cert, missing, _certificates.CaFile), Path.Combine(_folder, "data")));

        Assert.Equal($"broker.remote-tls.key-file: {missing} does not exist", e.Message);
    }

    [Theory]
    [InlineData("key-file")]
    [InlineData("ca-file")]
    public void A_remoting_key_or_ca_file_without_a_certificate_is_refused_rather_than_run_in_clear_text(string key)
    {
        var config = ConfigurationFactory.ParseString($"broker.remote-tls.{key} = \"/etc/broker/x.pem\"");

        var e = Assert.Throws<ConfigurationException>(() => RemotingTls.AddTo(ActorSystemSetup.Empty, config));

        Assert.Contains($"broker.remote-tls.{key} is set but broker.remote-tls.cert-file is not", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_environment_turns_remoting_tls_on_and_seed_nodes_become_ssl_addresses()
    {
        var (cert, key) = _certificates.WriteNode("node-1");
        using var env = new EnvironmentScope(
            ("BROKER_REMOTE_TLS_CERT_FILE", cert),
            ("BROKER_REMOTE_TLS_KEY_FILE", key),
            ("BROKER_REMOTE_TLS_CA_FILE", _certificates.CaFile),
            ("BROKER_SEED_NODES", "10.1.2.3:2552"));

        var config = BrokerConfig.Load();

        Assert.Equal(cert, config.GetString("broker.remote-tls.cert-file"));
        Assert.True(config.GetBoolean("akka.remote.dot-netty.tcp.enable-ssl"));
        Assert.Equal(["akka.ssl.tcp://broker@10.1.2.3:2552"], config.GetStringList("akka.cluster.seed-nodes"));
        var ssl = RemotingTls.AddTo(ActorSystemSetup.Empty, config).Get<DotNettySslSetup>().Value;
        Assert.True(ssl.RequireMutualAuthentication);
        Assert.False(ssl.SuppressValidation);
        Assert.False(ssl.ValidateCertificateHostname);
        Assert.True(ssl.Certificate.HasPrivateKey);
        Assert.NotNull(ssl.CustomValidator);
    }

    [Fact]
    public void Without_a_remoting_certificate_remoting_stays_plain_tcp()
    {
        using var env = new EnvironmentScope(("BROKER_SEED_NODES", "10.1.2.3:2552"));

        var config = BrokerConfig.Load();

        Assert.False(config.GetBoolean("akka.remote.dot-netty.tcp.enable-ssl"));
        Assert.Equal(["akka.tcp://broker@10.1.2.3:2552"], config.GetStringList("akka.cluster.seed-nodes"));
        Assert.False(RemotingTls.AddTo(ActorSystemSetup.Empty, config).Get<DotNettySslSetup>().HasValue);
    }

    [Fact]
    public void The_peer_check_accepts_node_certificates_of_the_ca_only()
    {
        var authorities = new X509Certificate2Collection(_certificates.CaCertificate);
        var validate = RemotingTls.Validator(authorities);
        using var other = new TestCertificates(Path.Combine(_folder, "other"));
        var (cert, key) = _certificates.WriteNode("node-1");
        var (otherCert, otherKey) = other.WriteNode("node-1");
        using var node = X509Certificate2.CreateFromPemFile(cert, key);
        using var foreign = X509Certificate2.CreateFromPemFile(otherCert, otherKey);
        // A certificate of the CA for server use only: a node presenting it could not be dialled back as a client.
        using var serverOnly = _certificates.WriteServer("server-only");

        // One naming no usage at all is good for every usage (what openssl makes without an extendedKeyUsage line).
        using var anyUsageKey = RSA.Create(2048);
        var anyUsageRequest = new CertificateRequest("CN=any-usage", anyUsageKey, HashAlgorithmName.SHA256,
            RSASignaturePadding.Pkcs1);
        using var anyUsage = anyUsageRequest.Create(_certificates.CaCertificate, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1), [1, 2, 3, 4]);

        // SslStream reports chain errors (the CA is in no system store) and a name mismatch: neither decides.
        const SslPolicyErrors errors = SslPolicyErrors.RemoteCertificateChainErrors | SslPolicyErrors.RemoteCertificateNameMismatch;
        Assert.True(validate(node, null, "peer", errors, NoLogger.Instance));
        Assert.False(validate(foreign, null, "peer", SslPolicyErrors.None, NoLogger.Instance));
        Assert.False(validate(serverOnly, null, "peer", SslPolicyErrors.None, NoLogger.Instance));
        Assert.True(validate(anyUsage, null, "peer", errors, NoLogger.Instance));
        Assert.False(validate(null, null, "peer", SslPolicyErrors.RemoteCertificateNotAvailable, NoLogger.Instance));
    }

    public void Dispose()
    {
        _certificates.Dispose();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
