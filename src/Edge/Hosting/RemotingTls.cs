using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Event;
using Akka.Remote.Transport.DotNetty;
using Broker.Actors.Messages;

namespace Broker.Edge.Hosting;

/// <summary>
/// TLS between the nodes (broker.remote-tls): Akka remoting's DotNetty transport with its SSL on, each node presenting
/// the certificate and key of cert-file and key-file and accepting a peer, in both directions, only when the peer's
/// certificate chains to an authority of ca-file. The operating system's trust store plays no part and host names are
/// not checked: nodes are addressed by IP and every node certificate of the cluster's CA is a member's.
/// </summary>
/// <remarks>
/// Akka 1.5.73 takes the certificate and the check of the peer from a <see cref="DotNettySslSetup"/>; its HOCON alone
/// (akka.remote.dot-netty.tcp.ssl) can only load a PKCS#12 file or a store certificate and check chains against the
/// system's trust store. With SSL on, remoting addresses are akka.ssl.tcp://, so seed nodes must be written so too.
/// DotNetty offers TLS 1.0 to 1.2 and never 1.3; nodes of this broker negotiate 1.2 (docs/security.md).
/// </remarks>
public static class RemotingTls
{
    public const string CertFileKey = "broker.remote-tls.cert-file";
    public const string KeyFileKey = "broker.remote-tls.key-file";
    public const string CaFileKey = "broker.remote-tls.ca-file";

    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    /// <summary>Whether remoting runs over TLS: cert-file is set.</summary>
    public static bool Enabled(Config config) => config.GetString(CertFileKey, "").Length > 0;

    /// <summary>The protocol of this cluster's remoting addresses (seed nodes are written with it).</summary>
    public static string Protocol(Config config) => Enabled(config) ? "akka.ssl.tcp" : "akka.tcp";

    /// <summary>The Akka settings that follow from broker.remote-tls, to add to the merged configuration.</summary>
    public static string Hocon(Config config) => $"akka.remote.dot-netty.tcp.enable-ssl = {(Enabled(config) ? "on" : "off")}";

    /// <summary>
    /// <paramref name="setup"/> with the remoting certificate and peer check when remote-tls is on; refuses a setting
    /// that is missing, a file that cannot be read and a ca-file without a cert-file, naming the key.
    /// </summary>
    public static ActorSystemSetup AddTo(ActorSystemSetup setup, Config config)
    {
        var certFile = config.GetString(CertFileKey, "");
        var keyFile = config.GetString(KeyFileKey, "");
        var caFile = config.GetString(CaFileKey, "");
        if (certFile.Length == 0)
        {
            if (caFile.Length > 0 || keyFile.Length > 0)
            {
                throw new ConfigurationException($"{(caFile.Length > 0 ? CaFileKey : KeyFileKey)} is set but {CertFileKey} is not: remoting would run in clear text");
            }
            return setup;
        }
        if (keyFile.Length == 0)
        {
            throw new ConfigurationException($"{KeyFileKey} must be set when {CertFileKey} is (the PEM private key of the node's certificate)");
        }
        if (caFile.Length == 0)
        {
            throw new ConfigurationException($"{CaFileKey} must be set when {CertFileKey} is: a node accepts only peers whose certificate chains to it");
        }
        var certificate = LoadCertificate(certFile, keyFile);
        var authorities = LoadAuthorities(caFile);
        return setup.And(new DotNettySslSetup(certificate, suppressValidation: false, requireMutualAuthentication: true,
            validateCertificateHostname: false, customValidator: Validator(authorities)));
    }

    /// <summary>Accepts a peer certificate that chains to one of <paramref name="authorities"/>, for both server and client use.</summary>
    internal static CertificateValidationCallback Validator(X509Certificate2Collection authorities) => (certificate, presented, peer, _, log) =>
    {
        // SslStream's own verdict (its errors) is against the system trust store and the host name, neither of which applies.
        if (certificate is null)
        {
            DenialLog.Shared.Write(log, $"remoting TLS: refused {peer}: no certificate");
            return false;
        }
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        // Every node dials and is dialled, so a node certificate must be good for both (or name no purpose at all).
        chain.ChainPolicy.ApplicationPolicy.Add(ServerAuthentication);
        chain.ChainPolicy.ApplicationPolicy.Add(ClientAuthentication);
        if (presented is not null)
        {
            // Intermediates the peer sent.
            foreach (var element in presented.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }
        if (chain.Build(certificate))
        {
            return true;
        }
        var why = string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Distinct(StringComparer.Ordinal));
        DenialLog.Shared.Write(log, string.Format(CultureInfo.InvariantCulture,
            "remoting TLS: refused {0}: certificate {1} (issuer {2}) does not chain to {3}: {4}", peer, certificate.Subject, certificate.Issuer, CaFileKey, why));
        return false;
    };

    private static X509Certificate2 LoadCertificate(string certFile, string keyFile)
    {
        Require(certFile, CertFileKey);
        Require(keyFile, KeyFileKey);
        try
        {
            return X509Certificate2.CreateFromPemFile(certFile, keyFile);
        }
        catch (CryptographicException e)
        {
            throw new ConfigurationException($"{CertFileKey} {certFile} with {KeyFileKey} {keyFile}: not a PEM certificate and its private key ({e.Message})");
        }
    }

    private static X509Certificate2Collection LoadAuthorities(string caFile)
    {
        Require(caFile, CaFileKey);
        var authorities = new X509Certificate2Collection();
        try
        {
            authorities.ImportFromPemFile(caFile);
        }
        catch (CryptographicException e)
        {
            throw new ConfigurationException($"{CaFileKey} {caFile}: not PEM certificates ({e.Message})");
        }
        if (authorities.Count == 0)
        {
            throw new ConfigurationException($"{CaFileKey} {caFile} holds no PEM certificate");
        }
        return authorities;
    }

    private static void Require(string path, string key)
    {
        if (!File.Exists(path))
        {
            throw new ConfigurationException($"{key}: {path} does not exist");
        }
    }
}
