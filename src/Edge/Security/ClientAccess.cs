using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;
using Broker.Actors.Messages;

namespace Broker.Edge.Security;

/// <summary>What authentication decided about a CONNECT (or an AMQP login).</summary>
public enum AuthVerdict : byte
{
    Allowed,

    /// <summary>A user name the user store does not know, or the wrong password: MQTT 5 0x86, 3.1.1 4.</summary>
    BadCredentials,

    /// <summary>No user name where anonymous clients are refused: MQTT 5 0x87, 3.1.1 5.</summary>
    NotAuthorized,

    /// <summary>The HTTP authentication backend did not answer: MQTT 5 0x88, 3.1.1 3 (the client may try again).</summary>
    Unavailable,
}

/// <summary>
/// Who may connect and what they may do, one object per node shared by every connection: the password file, the HTTP
/// authentication backend, the anonymous policy and the ACL file (<see cref="SecuritySettings"/>). With no ACL file every
/// authenticated client may publish and subscribe to anything.
/// </summary>
public sealed class ClientAccess
{
    private readonly ReloadingFile<PasswordFile>? _passwords;
    private readonly ReloadingFile<AclFile>? _acl;
    private readonly HttpAuthBackend? _http;

    public ClientAccess(SecuritySettings settings, Action<string> report)
    {
        AllowAnonymous = settings.AnonymousAllowed;
        if (settings.PasswordFile.Length > 0)
        {
            _passwords = new ReloadingFile<PasswordFile>(settings.PasswordFile, PasswordFile.Load, report);
        }
        if (settings.AclFile.Length > 0)
        {
            _acl = new ReloadingFile<AclFile>(settings.AclFile, AclFile.Load, report);
        }
        if (settings.AuthHttpUrl.Length > 0)
        {
            _http = new HttpAuthBackend(settings.AuthHttpUrl, settings.AuthHttpTimeout, settings.AuthHttpCacheTtl, settings.AuthHttpCacheEntries);
        }
    }

    /// <summary>Reads the password and ACL files again now (SIGHUP).</summary>
    public void Reload()
    {
        _passwords?.Reload(force: true);
        _acl?.Reload(force: true);
    }

    /// <summary>Everyone may connect and do anything: what a node on loopback with no security configured runs with.</summary>
    public static ClientAccess Open { get; } = new(SecuritySettings.Open, _ => { });

    public bool AllowAnonymous { get; }

    /// <summary>The node's connection limits; failed logins are reported to it.</summary>
    internal Hosting.Admission Admission { get; init; } = Hosting.Admission.Unlimited;

    /// <summary>True when a user store (password file or HTTP backend) is configured.</summary>
    public bool HasUserStore => _passwords is not null || _http is not null;

    /// <summary>True when topic access is restricted by an ACL file.</summary>
    public bool HasAcl => _acl is not null;

    /// <summary>
    /// Checks a login. Without a user name: allowed only when anonymous clients are. With one: the password file
    /// decides for the users it holds, the HTTP backend for the others; with neither configured, any user name is
    /// accepted (as mosquitto does with anonymous access on and no password file).
    /// </summary>
    public ValueTask<AuthVerdict> AuthenticateAsync(string clientId, string? username, byte[]? password, string peer)
    {
        if (username is null)
        {
            return new(AllowAnonymous ? AuthVerdict.Allowed : AuthVerdict.NotAuthorized);
        }
        if (!HasUserStore)
        {
            return new(AllowAnonymous ? AuthVerdict.Allowed : AuthVerdict.NotAuthorized);
        }
        var passwords = _passwords?.Current;
        if (passwords is not null && (_http is null || passwords.Contains(username)))
        {
            return new(passwords.Verify(username, password ?? []) ? AuthVerdict.Allowed : AuthVerdict.BadCredentials);
        }
        return _http!.CheckAsync(clientId, username, password ?? [], peer);
    }

    /// <summary>Whether the password file holds <paramref name="user"/> with this password (false without a file).</summary>
    public bool VerifyPassword(string user, byte[] password) => _passwords?.Current.Verify(user, password) == true;

    /// <summary>
    /// The ACL rules of one client, or null when there is no ACL file. <paramref name="cached"/> is returned while the
    /// file has not been read again since it was made, so a connection fills in its patterns once.
    /// </summary>
    public ClientAcl? AclFor(string? username, string clientId, ClientAcl? cached)
    {
        if (_acl is null)
        {
            return null;
        }
        var file = _acl.Current;
        return cached is not null && ReferenceEquals(cached.Source, file) ? cached : file.For(username, clientId);
    }
}

/// <summary>
/// Authentication by the operator's own user store: POST <c>{"client_id","username","password","peer"}</c> as JSON to
/// a URL; any 2xx allows, any other status denies, no answer within the timeout is "unavailable". Allowed logins are
/// remembered for a short time (keyed by a hash of all four fields, never the password itself), in a cache bounded in
/// entries so that a flood of distinct logins cannot grow it.
/// </summary>
public sealed class HttpAuthBackend
{
    private readonly HttpClient _client;
    private readonly Uri _url;
    private readonly long _ttlMs;
    private readonly int _maxEntries;
    private readonly ConcurrentDictionary<string, long> _allowedUntil = new(StringComparer.Ordinal);

    public HttpAuthBackend(string url, TimeSpan timeout, TimeSpan cacheTtl, int maxEntries)
    {
        _url = new Uri(url);
        _client = new HttpClient { Timeout = timeout };
        _ttlMs = (long)cacheTtl.TotalMilliseconds;
        _maxEntries = maxEntries;
    }

    /// <summary>Allowed logins remembered now (at most broker.auth-http.cache-entries).</summary>
    internal int CachedLogins => _allowedUntil.Count;

    public async ValueTask<AuthVerdict> CheckAsync(string clientId, string username, byte[] password, string peer)
    {
        var key = CacheKey(clientId, username, password);
        var now = Environment.TickCount64;
        if (_allowedUntil.TryGetValue(key, out var until) && until > now)
        {
            return AuthVerdict.Allowed;
        }
        var request = new HttpAuthRequest(clientId, username, Encoding.UTF8.GetString(password), peer);
        try
        {
            using var response = await _client.PostAsJsonAsync(_url, request, HttpAuthJson.Default.HttpAuthRequest).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                return AuthVerdict.BadCredentials;
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            BrokerCounters.AuthBackendFailures.Increment();
            return AuthVerdict.Unavailable;
        }
        if (_ttlMs > 0)
        {
            if (_allowedUntil.Count >= _maxEntries)
            {
                _allowedUntil.Clear();
            }
            _allowedUntil[key] = Environment.TickCount64 + _ttlMs;
        }
        return AuthVerdict.Allowed;
    }

    private static string CacheKey(string clientId, string username, byte[] password)
    {
        var text = Encoding.UTF8.GetBytes(clientId + "\0" + username + "\0");
        var all = new byte[text.Length + password.Length];
        text.CopyTo(all, 0);
        password.CopyTo(all, text.Length);
        return Convert.ToBase64String(SHA256.HashData(all));
    }
}

public sealed record HttpAuthRequest(
    [property: JsonPropertyName("client_id")] string ClientId,
    [property: JsonPropertyName("username")] string Username,
    [property: JsonPropertyName("password")] string Password,
    [property: JsonPropertyName("peer")] string Peer);

[JsonSerializable(typeof(HttpAuthRequest))]
internal sealed partial class HttpAuthJson : JsonSerializerContext;
