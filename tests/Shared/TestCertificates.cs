using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Broker.Tests.Shared;

/// <summary>
/// A certificate authority and certificates it signs, written as PEM files as an operator would have them: the node's
/// (for 127.0.0.1 and localhost), a client's (its common name a user name) and one signed by nobody the node trusts.
/// </summary>
public sealed class TestCertificates : IDisposable
{
    private readonly X509Certificate2 _ca;

    public TestCertificates(string folder)
    {
        Folder = folder;
        Directory.CreateDirectory(folder);
        _ca = Authority("Broker Test CA");
        File.WriteAllText(CaFile, _ca.ExportCertificatePem() + "\n");
        WriteServer("server-1");
    }

    public string Folder { get; }

    public string CaFile => Path.Combine(Folder, "ca.pem");

    public string ServerCertFile => Path.Combine(Folder, "server.pem");

    public string ServerKeyFile => Path.Combine(Folder, "server.key");

    public X509Certificate2 CaCertificate => _ca;

    /// <summary>(Re)writes the node's certificate and key; <paramref name="name"/> is its common name (to tell two apart).</summary>
    public X509Certificate2 WriteServer(string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var signed = request.Create(_ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30), RandomNumberGenerator.GetBytes(8));
        File.WriteAllText(ServerKeyFile, key.ExportPkcs8PrivateKeyPem() + "\n");
        File.WriteAllText(ServerCertFile, signed.ExportCertificatePem() + "\n");
        return X509CertificateLoader.LoadCertificate(signed.RawData);
    }

    /// <summary>
    /// A cluster node's remoting certificate for <paramref name="name"/> (for 127.0.0.1), signed by the test CA and good
    /// for both server and client authentication (a node dials and is dialled), as PEM files; returns their paths.
    /// </summary>
    public (string CertFile, string KeyFile) WriteNode(string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        using var signed = request.Create(_ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30), RandomNumberGenerator.GetBytes(8));
        var certFile = Path.Combine(Folder, name + "-node.pem");
        var keyFile = Path.ChangeExtension(certFile, ".key");
        File.WriteAllText(certFile, signed.ExportCertificatePem() + "\n");
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem() + "\n");
        return (certFile, keyFile);
    }

    /// <summary>A client certificate for <paramref name="commonName"/>, signed by the test CA (or self-signed), as PEM files; returns their paths and the certificate with its key.</summary>
    public (string CertFile, string KeyFile, X509Certificate2 Certificate) WriteClient(string commonName, bool trusted = true)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        X509Certificate2 certificate;
        if (trusted)
        {
            using var signed = request.Create(_ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30), RandomNumberGenerator.GetBytes(8));
            certificate = signed.CopyWithPrivateKey(key);
        }
        else
        {
            certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        }
        var certFile = Path.Combine(Folder, commonName + (trusted ? "" : "-untrusted") + ".pem");
        var keyFile = Path.ChangeExtension(certFile, ".key");
        File.WriteAllText(certFile, certificate.ExportCertificatePem() + "\n");
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem() + "\n");
        // A certificate with an exportable key as TLS client libraries want it.
        return (certFile, keyFile, X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null));
    }

    /// <summary>Validates a server certificate against the test CA only (what a client given --cafile does).</summary>
    public bool ValidateServer(X509Certificate? certificate)
    {
        if (certificate is null)
        {
            return false;
        }
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(_ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
    }

    private static X509Certificate2 Authority(string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-2), DateTimeOffset.UtcNow.AddDays(60));
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>A port free on 127.0.0.1 now (for listeners where 0 means off rather than "pick one").</summary>
    public static int FreePort()
    {
        using var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    public void Dispose() => _ca.Dispose();
}
