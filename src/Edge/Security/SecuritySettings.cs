using System.Net;
using Akka.Configuration;
using Broker.Actors.Configuration;

namespace Broker.Edge.Security;

/// <summary>
/// The security keys of cluster.hocon (after environment overrides), resolved: whether anonymous clients are allowed,
/// and whether this node may start at all (a listener beyond loopback with nobody authenticated does not).
/// </summary>
public sealed record SecuritySettings
{
    /// <summary>mosquitto_passwd-format file of MQTT users; "" = none (broker.mqtt.password-file).</summary>
    public string PasswordFile { get; init; } = "";

    /// <summary>mosquitto acl_file-format topic rules; "" = every client may use every topic (broker.mqtt.acl-file).</summary>
    public string AclFile { get; init; } = "";

    /// <summary>RabbitMQ-style AMQP permissions; "" = every AMQP user may do everything (broker.amqp.permissions-file).</summary>
    public string AmqpPermissionsFile { get; init; } = "";

    /// <summary>URL of the HTTP authentication backend; "" = none (broker.auth-http.url).</summary>
    public string AuthHttpUrl { get; init; } = "";

    public TimeSpan AuthHttpTimeout { get; init; } = TimeSpan.FromSeconds(3);

    public TimeSpan AuthHttpCacheTtl { get; init; } = TimeSpan.FromSeconds(30);

    public int AuthHttpCacheEntries { get; init; } = 10_000;

    /// <summary>What applies to a client without a user name, resolved from broker.allow-anonymous.</summary>
    public bool AnonymousAllowed { get; init; } = true;

    /// <summary>File of admin API bearer tokens; "" = none (broker.admin.tokens-file).</summary>
    public string AdminTokensFile { get; init; } = "";

    /// <summary>The admin API without tokens even when bound beyond loopback (broker.admin.open).</summary>
    public bool AdminOpen { get; init; }

    /// <summary>PEM certificate (then any intermediates) of the TLS listeners; "" = no TLS listener (broker.tls.cert-file).</summary>
    public string TlsCertFile { get; init; } = "";

    /// <summary>PEM private key of <see cref="TlsCertFile"/> (broker.tls.key-file).</summary>
    public string TlsKeyFile { get; init; } = "";

    /// <summary>PEM certificates that sign client certificates; "" = clients are not asked for one (broker.tls.ca-file).</summary>
    public string TlsCaFile { get; init; } = "";

    public bool TlsRequireClientCert { get; init; }

    public bool TlsCnAsUsername { get; init; }

    public TimeSpan TlsHandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>MQTT over TLS; 0 = off (broker.mqtt-tls-port).</summary>
    public int MqttTlsPort { get; init; }

    /// <summary>AMQP over TLS; 0 = off (broker.amqp-tls-port).</summary>
    public int AmqpTlsPort { get; init; }

    /// <summary>The admin API over HTTPS; 0 = off (broker.admin-tls-port).</summary>
    public int AdminTlsPort { get; init; }

    /// <summary>MQTT over WebSocket; 0 = off, -1 = a free port (broker.ws-port).</summary>
    public int WsPort { get; init; }

    /// <summary>MQTT over secure WebSocket; 0 = off, -1 = a free port (broker.wss-port).</summary>
    public int WssPort { get; init; }

    public bool HasTls => TlsCertFile.Length > 0;

    /// <summary>broker.limits: connections per node and listener, connects and failed logins per source address.</summary>
    internal Hosting.ConnectionLimits Limits { get; init; } = Hosting.ConnectionLimits.None;

    /// <summary>Nothing configured: what a node on loopback runs with by default.</summary>
    public static SecuritySettings Open { get; } = new();

    public bool HasUserStore => PasswordFile.Length > 0 || AuthHttpUrl.Length > 0;

    /// <summary>Reads and checks the keys; a combination that would expose an unauthenticated node is an error naming what to set.</summary>
    public static SecuritySettings From(Config config) => From(new SettingsReader(config));

    /// <inheritdoc cref="From(Config)"/>
    public static SecuritySettings From(SettingsReader r)
    {
        var host = r.String("host", "127.0.0.1");
        var s = new SecuritySettings
        {
            PasswordFile = r.String("mqtt.password-file", ""),
            AclFile = r.String("mqtt.acl-file", ""),
            AmqpPermissionsFile = r.String("amqp.permissions-file", ""),
            AuthHttpUrl = r.String("auth-http.url", ""),
            AuthHttpTimeout = r.Duration("auth-http.timeout", TimeSpan.FromSeconds(3), TimeSpan.FromMilliseconds(1)),
            AuthHttpCacheTtl = r.Duration("auth-http.cache-ttl", TimeSpan.FromSeconds(30), TimeSpan.Zero),
            AuthHttpCacheEntries = r.Int("auth-http.cache-entries", 10_000, 1, 10_000_000),
            AdminTokensFile = r.String("admin.tokens-file", ""),
            AdminOpen = r.Bool("admin.open", false),
            TlsCertFile = r.String("tls.cert-file", ""),
            TlsKeyFile = r.String("tls.key-file", ""),
            TlsCaFile = r.String("tls.ca-file", ""),
            TlsRequireClientCert = r.Bool("tls.require-client-cert", false),
            TlsCnAsUsername = r.Bool("tls.cn-as-username", false),
            TlsHandshakeTimeout = r.Duration("tls.handshake-timeout", TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(1)),
            MqttTlsPort = r.Port("mqtt-tls-port", 8883),
            AmqpTlsPort = r.Port("amqp-tls-port", 5671),
            AdminTlsPort = r.Port("admin-tls-port", 8443),
            WsPort = r.Port("ws-port", 8083, freePortAllowed: true),
            WssPort = r.Port("wss-port", 9443, freePortAllowed: true),
            Limits = new Hosting.ConnectionLimits
            {
                MaxConnections = r.Int("limits.max-connections", 0, 0, int.MaxValue),
                MaxConnectionsPerListener = r.Int("limits.max-connections-per-listener", 0, 0, int.MaxValue),
                ConnectRatePerIp = r.Double("limits.connect-rate-per-ip", 0, 0, double.MaxValue),
                ConnectBurstPerIp = r.Int("limits.connect-burst-per-ip", 20, 1, int.MaxValue),
                FailedLoginsPerIp = r.Int("limits.failed-logins-per-ip", 0, 0, int.MaxValue),
                FailedLoginRefill = r.Duration("limits.failed-login-refill", TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(1)),
                TrackedAddresses = r.Int("limits.tracked-addresses", 100_000, 1, 100_000_000),
                RefusalsAnswered = r.Int("limits.refusals-answered", 64, 0, 100_000),
                PublishRatePerClient = r.Double("limits.publish-rate-per-client", 0, 0, double.MaxValue),
                PublishBytesPerClient = r.Double("limits.publish-bytes-per-client", 0, 0, double.MaxValue),
            },
        };
        if (s.HasTls != (s.TlsKeyFile.Length > 0))
        {
            throw SettingsReader.Invalid(s.HasTls ? "tls.key-file" : "tls.cert-file", "must be set with broker.tls.cert-file and broker.tls.key-file together (BROKER_TLS_CERT_FILE, BROKER_TLS_KEY_FILE)");
        }
        if ((s.TlsRequireClientCert || s.TlsCnAsUsername) && s.TlsCaFile.Length == 0)
        {
            throw SettingsReader.Invalid("tls.ca-file", "must be set for broker.tls.require-client-cert and broker.tls.cn-as-username");
        }
        if (s.AuthHttpUrl.Length > 0 && (!Uri.TryCreate(s.AuthHttpUrl, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https")))
        {
            throw SettingsReader.Invalid("auth-http.url", $"must be an http:// or https:// URL, not '{s.AuthHttpUrl}'");
        }
        var anonymous = r.Choice("allow-anonymous", "auto", "auto", "true", "on", "yes", "false", "off", "no");
        var loopback = IsLoopback(host);
        var allowed = anonymous switch
        {
            "true" or "on" or "yes" => true,
            "false" or "off" or "no" => false,
            _ => !s.HasUserStore && loopback ? true
                : s.HasUserStore ? false
                : throw new ConfigurationException(
                    $"the listeners bind to {host}, beyond this machine, and no client is authenticated: set broker.mqtt.password-file " +
                    "(BROKER_MQTT_PASSWORD_FILE) or broker.auth-http.url (BROKER_AUTH_HTTP_URL), or allow anonymous clients " +
                    "explicitly with broker.allow-anonymous = true (BROKER_ALLOW_ANONYMOUS=true)"),
        };
        if (!loopback && s.AdminTokensFile.Length == 0 && !s.AdminOpen)
        {
            throw new ConfigurationException(
                $"the admin API binds to {host}, beyond this machine, without tokens: set broker.admin.tokens-file (BROKER_ADMIN_TOKENS_FILE, " +
                "tokens made with the 'token add' command) or open it explicitly with broker.admin.open = true (BROKER_ADMIN_OPEN=true)");
        }
        return s with { AnonymousAllowed = allowed };
    }

    /// <summary>True for a loopback address or "localhost": only this machine can reach a listener bound there.</summary>
    public static bool IsLoopback(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
}
