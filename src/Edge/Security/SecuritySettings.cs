using System.Net;
using Akka.Configuration;

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
    public static SecuritySettings From(Config config)
    {
        var b = config.GetConfig("broker");
        var host = b.GetString("host", "127.0.0.1");
        var s = new SecuritySettings
        {
            PasswordFile = b.GetString("mqtt.password-file", ""),
            AclFile = b.GetString("mqtt.acl-file", ""),
            AmqpPermissionsFile = b.GetString("amqp.permissions-file", ""),
            AuthHttpUrl = b.GetString("auth-http.url", ""),
            AuthHttpTimeout = b.GetTimeSpan("auth-http.timeout", TimeSpan.FromSeconds(3)),
            AuthHttpCacheTtl = b.GetTimeSpan("auth-http.cache-ttl", TimeSpan.FromSeconds(30)),
            AuthHttpCacheEntries = b.GetInt("auth-http.cache-entries", 10_000),
            AdminTokensFile = b.GetString("admin.tokens-file", ""),
            AdminOpen = b.GetBoolean("admin.open", false),
            TlsCertFile = b.GetString("tls.cert-file", ""),
            TlsKeyFile = b.GetString("tls.key-file", ""),
            TlsCaFile = b.GetString("tls.ca-file", ""),
            TlsRequireClientCert = b.GetBoolean("tls.require-client-cert", false),
            TlsCnAsUsername = b.GetBoolean("tls.cn-as-username", false),
            TlsHandshakeTimeout = b.GetTimeSpan("tls.handshake-timeout", TimeSpan.FromSeconds(10)),
            MqttTlsPort = b.GetInt("mqtt-tls-port", 8883),
            AmqpTlsPort = b.GetInt("amqp-tls-port", 5671),
            AdminTlsPort = b.GetInt("admin-tls-port", 8443),
            WsPort = b.GetInt("ws-port", 8083),
            WssPort = b.GetInt("wss-port", 9443),
            Limits = new Hosting.ConnectionLimits
            {
                MaxConnections = b.GetInt("limits.max-connections", 0),
                MaxConnectionsPerListener = b.GetInt("limits.max-connections-per-listener", 0),
                ConnectRatePerIp = b.GetDouble("limits.connect-rate-per-ip", 0),
                ConnectBurstPerIp = b.GetInt("limits.connect-burst-per-ip", 20),
                FailedLoginsPerIp = b.GetInt("limits.failed-logins-per-ip", 0),
                FailedLoginRefill = b.GetTimeSpan("limits.failed-login-refill", TimeSpan.FromSeconds(10)),
                TrackedAddresses = b.GetInt("limits.tracked-addresses", 100_000),
                PublishRatePerClient = b.GetDouble("limits.publish-rate-per-client", 0),
                PublishBytesPerClient = b.GetDouble("limits.publish-bytes-per-client", 0),
            },
        };
        var l = s.Limits;
        if (l.MaxConnections < 0 || l.MaxConnectionsPerListener < 0 || l.ConnectRatePerIp < 0 || l.ConnectBurstPerIp < 1 || l.FailedLoginsPerIp < 0
            || l.FailedLoginRefill <= TimeSpan.Zero || l.TrackedAddresses < 1 || l.PublishRatePerClient < 0 || l.PublishBytesPerClient < 0)
        {
            throw new ConfigurationException("broker.limits: counts and rates are 0 (no limit) or positive; connect-burst-per-ip, tracked-addresses and failed-login-refill are positive");
        }
        if (s.HasTls != (s.TlsKeyFile.Length > 0))
        {
            throw new ConfigurationException("broker.tls.cert-file (BROKER_TLS_CERT_FILE) and broker.tls.key-file (BROKER_TLS_KEY_FILE) go together");
        }
        if ((s.TlsRequireClientCert || s.TlsCnAsUsername) && s.TlsCaFile.Length == 0)
        {
            throw new ConfigurationException("broker.tls.require-client-cert and broker.tls.cn-as-username need broker.tls.ca-file (BROKER_TLS_CA_FILE)");
        }
        foreach (var (key, port) in new[] { ("mqtt-tls-port", s.MqttTlsPort), ("amqp-tls-port", s.AmqpTlsPort), ("admin-tls-port", s.AdminTlsPort) })
        {
            if (port is < 0 or > 65535)
            {
                throw new ConfigurationException($"broker.{key} must be 0 (off) or a port, not {port}");
            }
        }
        foreach (var (key, port) in new[] { ("ws-port", s.WsPort), ("wss-port", s.WssPort) })
        {
            if (port is < -1 or > 65535)
            {
                throw new ConfigurationException($"broker.{key} must be 0 (off), -1 (a free port) or a port, not {port}");
            }
        }
        if (s.TlsHandshakeTimeout <= TimeSpan.Zero)
        {
            throw new ConfigurationException("broker.tls.handshake-timeout must be positive");
        }
        if (s.AuthHttpUrl.Length > 0 && (!Uri.TryCreate(s.AuthHttpUrl, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https")))
        {
            throw new ConfigurationException($"broker.auth-http.url must be an http:// or https:// URL, not '{s.AuthHttpUrl}'");
        }
        if (s.AuthHttpTimeout <= TimeSpan.Zero || s.AuthHttpCacheEntries < 1)
        {
            throw new ConfigurationException("broker.auth-http.timeout must be positive and broker.auth-http.cache-entries at least 1");
        }
        var anonymous = b.GetString("allow-anonymous", "auto").ToLowerInvariant();
        var loopback = IsLoopback(host);
        var allowed = anonymous switch
        {
            "true" or "on" or "yes" => true,
            "false" or "off" or "no" => false,
            "auto" => !s.HasUserStore && loopback ? true
                : s.HasUserStore ? false
                : throw new ConfigurationException(
                    $"the listeners bind to {host}, beyond this machine, and no client is authenticated: set broker.mqtt.password-file " +
                    "(BROKER_MQTT_PASSWORD_FILE) or broker.auth-http.url (BROKER_AUTH_HTTP_URL), or allow anonymous clients " +
                    "explicitly with broker.allow-anonymous = true (BROKER_ALLOW_ANONYMOUS=true)"),
            _ => throw new ConfigurationException($"broker.allow-anonymous must be auto, true or false, not '{anonymous}'"),
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
