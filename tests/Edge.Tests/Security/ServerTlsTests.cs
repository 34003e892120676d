using System.Security.Authentication;
using Akka.Event;
using Broker.Edge.Security;
using Broker.Tests.Shared;

namespace Broker.Edge.Tests.Security;

public sealed class ServerTlsTests : IDisposable
{
    private readonly TestCertificates _certs = new(Path.Combine(Path.GetTempPath(), "tls-unit-" + Guid.NewGuid().ToString("N")));

    private ServerTls Tls(bool require) => new(new SecuritySettings
    {
        TlsCertFile = _certs.ServerCertFile,
        TlsKeyFile = _certs.ServerKeyFile,
        TlsCaFile = _certs.CaFile,
        TlsRequireClientCert = require,
    }, NoLogger.Instance);

    [Fact]
    public void Only_tls_1_2_and_1_3_are_enabled_and_clients_are_asked_for_a_certificate_when_a_ca_is_given()
    {
        var options = Tls(require: false).Options();
        Assert.Equal(SslProtocols.Tls12 | SslProtocols.Tls13, options.EnabledSslProtocols);
        Assert.True(options.ClientCertificateRequired);
        Assert.Equal("CN=server-1", options.ServerCertificateContext!.TargetCertificate.Subject);
    }

    [Fact]
    public void A_client_certificate_must_chain_to_the_ca_and_is_needed_only_when_required()
    {
        var optional = Tls(require: false);
        var required = Tls(require: true);
        var (_, _, alice) = _certs.WriteClient("alice");
        var (_, _, mallory) = _certs.WriteClient("mallory", trusted: false);
        using (alice)
        using (mallory)
        {
            Assert.True(optional.Accepts(null));
            Assert.False(required.Accepts(null));
            Assert.True(optional.Accepts(alice));
            Assert.True(required.Accepts(alice));
            Assert.False(optional.Accepts(mallory));
            // The node's own certificate is for servers only: not accepted as a client's.
            Assert.False(optional.Accepts(optional.Certificate));
        }
    }

    public void Dispose()
    {
        _certs.Dispose();
        Directory.Delete(_certs.Folder, recursive: true);
    }
}
