using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Akka.Event;
using Broker.Actors.Messages;

namespace Broker.Edge.Security;

/// <summary>
/// The node's TLS: its certificate and key from PEM files (with any intermediate certificates after the first in the
/// certificate file), TLS 1.2 and 1.3 only, and client certificates checked against the CA file when one is given:
/// verified when offered, required only with <see cref="SecuritySettings.TlsRequireClientCert"/>. The files are read
/// again when they change (looked at once a second) or on SIGHUP (<see cref="Reload"/>); connections already open keep
/// the certificate they were made with.
/// </summary>
public sealed class ServerTls
{
    private readonly ReloadingFile<SslStreamCertificateContext> _certificate;
    private readonly ReloadingFile<X509Certificate2Collection>? _authorities;
    private readonly ILoggingAdapter _log;

    public ServerTls(SecuritySettings settings, ILoggingAdapter log)
    {
        _log = log;
        RequireClientCertificate = settings.TlsRequireClientCert;
        CnAsUsername = settings.TlsCnAsUsername;
        HandshakeTimeout = settings.TlsHandshakeTimeout;
        _certificate = new ReloadingFile<SslStreamCertificateContext>([settings.TlsCertFile, settings.TlsKeyFile],
            () => LoadCertificate(settings.TlsCertFile, settings.TlsKeyFile), line => log.Warning(line));
        if (settings.TlsCaFile.Length > 0)
        {
            _authorities = new ReloadingFile<X509Certificate2Collection>(settings.TlsCaFile, LoadAuthorities, line => log.Warning(line));
        }
    }

    public bool RequireClientCertificate { get; }

    /// <summary>A verified client certificate's common name is the MQTT user name (no password needed).</summary>
    public bool CnAsUsername { get; }

    public TimeSpan HandshakeTimeout { get; }

    /// <summary>The server certificate in force (for the admin API's HTTPS).</summary>
    public X509Certificate2 Certificate => _certificate.Current.TargetCertificate;

    /// <summary>The options of one handshake, with the certificate and authorities in force now.</summary>
    public SslServerAuthenticationOptions Options() => new()
    {
        ServerCertificateContext = _certificate.Current,
        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        ClientCertificateRequired = _authorities is not null,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        RemoteCertificateValidationCallback = (_, certificate, _, _) => Accepts(certificate as X509Certificate2),
    };

    /// <summary>No certificate: accepted unless one is required. One: accepted only when it chains to the CA file.</summary>
    public bool Accepts(X509Certificate2? certificate)
    {
        if (certificate is null)
        {
            return !RequireClientCertificate;
        }
        if (_authorities?.Current is not { } authorities)
        {
            return false;
        }
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.2"));   // client authentication
        return chain.Build(certificate);
    }

    /// <summary>Logs a failed handshake at the bounded rate of denials.</summary>
    public void Report(string line) => DenialLog.Shared.Write(_log, line);

    /// <summary>Reads the certificate, key and CA files again now (SIGHUP).</summary>
    public void Reload()
    {
        _certificate.Reload(force: true);
        _authorities?.Reload(force: true);
    }

    private static SslStreamCertificateContext LoadCertificate(string certFile, string keyFile)
    {
        var leaf = X509Certificate2.CreateFromPemFile(certFile, keyFile);
        var chain = new X509Certificate2Collection();
        chain.ImportFromPemFile(certFile);
        var intermediates = new X509Certificate2Collection();
        foreach (var c in chain)
        {
            if (c.Thumbprint != leaf.Thumbprint)
            {
                intermediates.Add(c);
            }
        }
        return SslStreamCertificateContext.Create(leaf, intermediates, offline: true);
    }

    private static X509Certificate2Collection LoadAuthorities(string caFile)
    {
        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(caFile);
        if (authorities.Count == 0)
        {
            throw new FormatException($"{caFile} holds no PEM certificate");
        }
        return authorities;
    }
}
