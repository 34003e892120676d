using System.Net;
using System.Text.Json;
using Akka.Actor;
using Broker.Actors.Sessions;
using Broker.Actors.Messages;
using Broker.AdminHttp.Security;
using Broker.AdminHttp.Sessions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Broker.AdminHttp;

/// <summary>
/// The admin HTTP API on Kestrel. Routing is done by hand so that every error, including 404 and 405,
/// carries the JSON body the contract asks for.
/// </summary>
public sealed class AdminServer : IAsyncDisposable
{
    private const string SessionsPath = "/api/v1/sessions";

    private readonly WebApplication _app;
    private readonly SessionQueryService _sessions;
    private readonly Func<(bool Ready, string Details)> _readiness;

    private readonly int _maxPageSize;

    /// <summary>The tokens in force, or null: the API is open (loopback, or opened explicitly).</summary>
    private readonly Func<AdminTokens?> _tokens;
    private readonly Akka.Event.ILoggingAdapter _log;

    private AdminServer(WebApplication app, SessionQueryService sessions, Func<(bool, string)> readiness, int maxPageSize, Func<AdminTokens?> tokens,
        Akka.Event.ILoggingAdapter log)
    {
        _tokens = tokens;
        _log = log;
        _maxPageSize = maxPageSize;
        _app = app;
        _sessions = sessions;
        _readiness = readiness;
    }

    public int Port { get; private set; }

    /// <summary>0 when the API has no HTTPS listener.</summary>
    public int HttpsPort { get; private set; }

    /// <param name="maxPageSize">most sessions in one page: a larger <c>limit</c>, or none, gets this many and a next_page_token.</param>
    public static async Task<AdminServer> StartAsync(ActorSystem system, string host, int port, TimeSpan queryTimeout, int maxPageSize,
        RestingSessions? resting, Func<(bool, string)> readiness, Func<AdminTokens?>? tokens = null, int httpsPort = 0,
        Func<System.Security.Cryptography.X509Certificates.X509Certificate2>? certificate = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(o =>
        {
            var ip = IPAddress.TryParse(host, out var parsed) ? parsed : IPAddress.Any;
            o.Listen(ip, port);
            if (httpsPort != 0 && certificate is not null)
            {
                // HTTPS beside HTTP, with the node's TLS certificate as it is when each handshake starts (it may be replaced).
                o.Listen(ip, httpsPort, listen => listen.UseHttps(https =>
                {
                    https.SslProtocols = System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13;
                    https.ServerCertificateSelector = (_, _) => certificate();
                }));
            }
        });
        var app = builder.Build();
        var server = new AdminServer(app, new SessionQueryService(system, queryTimeout, resting, maxPageSize), readiness, maxPageSize,
            tokens ?? (() => null), system.Log);
        app.Run(server.HandleAsync);
        await app.StartAsync().ConfigureAwait(false);
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => new Uri(a)).ToList();
        server.Port = addresses.First(a => a.Scheme == "http").Port;
        server.HttpsPort = addresses.FirstOrDefault(a => a.Scheme == "https")?.Port ?? 0;
        return server;
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        var path = ctx.Request.Path.Value ?? "/";
        try
        {
            if (path is not ("/health" or "/ready") && !await Authorized(ctx).ConfigureAwait(false))
            {
                return;
            }
            switch (path)
            {
                case "/health":
                    if (await MethodAllowed(ctx).ConfigureAwait(false))
                    {
                        await WriteJson(ctx, 200, w => w.WriteString("status", "ok")).ConfigureAwait(false);
                    }
                    return;
                case "/ready":
                    if (await MethodAllowed(ctx).ConfigureAwait(false))
                    {
                        var (ready, details) = _readiness();
                        await WriteJson(ctx, ready ? 200 : 503, w =>
                        {
                            w.WriteString("status", ready ? "ready" : "not_ready");
                            if (!ready)
                            {
                                w.WriteString("details", details);
                            }
                        }).ConfigureAwait(false);
                    }
                    return;
                case SessionsPath:
                case SessionsPath + "/":
                    if (await MethodAllowed(ctx).ConfigureAwait(false))
                    {
                        await ListSessions(ctx).ConfigureAwait(false);
                    }
                    return;
            }
            if (path.StartsWith(SessionsPath + "/", StringComparison.Ordinal))
            {
                if (await MethodAllowed(ctx).ConfigureAwait(false))
                {
                    await SessionDetail(ctx).ConfigureAwait(false);
                }
                return;
            }
            await Error(ctx, 404, "not found").ConfigureAwait(false);
        }
        catch (Exception) when (!ctx.Response.HasStarted)
        {
            await Error(ctx, 503, "broker not available").ConfigureAwait(false);
        }
    }

    /// <summary>
    /// With tokens configured, a request needs <c>Authorization: Bearer SECRET</c> of a known token (else 401), and a
    /// viewer's token only reads (else 403). Refusals are counted and logged at a bounded rate.
    /// </summary>
    private async Task<bool> Authorized(HttpContext ctx)
    {
        if (_tokens() is not { } tokens)
        {
            return true;
        }
        var header = ctx.Request.Headers.Authorization.ToString();
        var role = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? tokens.Authenticate(header[7..].Trim()) : null;
        if (role is null)
        {
            BrokerCounters.AuthDenied.Increment();
            DenialLog.Shared.Write(_log, $"admin API: {ctx.Request.Method} {ctx.Request.Path} from {ctx.Connection.RemoteIpAddress} without a valid token");
            ctx.Response.Headers.WWWAuthenticate = "Bearer";
            await Error(ctx, 401, "unauthorized").ConfigureAwait(false);
            return false;
        }
        if (role == AdminRole.Viewer && !HttpMethods.IsGet(ctx.Request.Method) && !HttpMethods.IsHead(ctx.Request.Method))
        {
            BrokerCounters.AuthzDenied.Increment();
            DenialLog.Shared.Write(_log, $"admin API: {ctx.Request.Method} {ctx.Request.Path} from {ctx.Connection.RemoteIpAddress} refused to a viewer token");
            await Error(ctx, 403, "forbidden").ConfigureAwait(false);
            return false;
        }
        return true;
    }

    private static async Task<bool> MethodAllowed(HttpContext ctx)
    {
        if (HttpMethods.IsGet(ctx.Request.Method) || HttpMethods.IsHead(ctx.Request.Method))
        {
            return true;
        }
        ctx.Response.Headers.Allow = "GET, HEAD";
        await Error(ctx, 405, "method not allowed").ConfigureAwait(false);
        return false;
    }

    private async Task ListSessions(HttpContext ctx)
    {
        var q = ctx.Request.Query;
        var state = SessionStateFilter.All;
        if (q.TryGetValue("state", out var stateValue))
        {
            switch (stateValue.ToString().ToLowerInvariant())
            {
                case "all":
                    break;
                case "connected":
                    state = SessionStateFilter.Connected;
                    break;
                case "disconnected":
                    state = SessionStateFilter.Disconnected;
                    break;
                default:
                    await Error(ctx, 400, "state must be one of: all, connected, disconnected").ConfigureAwait(false);
                    return;
            }
        }
        var limit = 0;
        if (q.TryGetValue("limit", out var limitValue) && limitValue.ToString().Length > 0
            && (!int.TryParse(limitValue.ToString(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out limit) || limit < 0))
        {
            await Error(ctx, 400, "limit must be a non-negative integer").ConfigureAwait(false);
            return;
        }
        string? after = null;
        if (q.TryGetValue("page_token", out var tokenValue) && tokenValue.ToString().Length > 0)
        {
            if (!PageToken.TryDecode(tokenValue.ToString(), out var last))
            {
                await Error(ctx, 400, "invalid page_token").ConfigureAwait(false);
                return;
            }
            after = last;
        }
        var prefix = q.TryGetValue("prefix", out var prefixValue) ? prefixValue.ToString() : "";
        if (!_sessions.IsAvailable)
        {
            await Error(ctx, 503, "broker not available").ConfigureAwait(false);
            return;
        }
        // Every member gathers and sends at most one page: "no limit" is served page by page like any other.
        limit = limit == 0 ? _maxPageSize : Math.Min(limit, _maxPageSize);
        var page = await _sessions.ListAsync(new ListSessions(after, prefix, state, limit)).ConfigureAwait(false);
        if (!page.AnyAnswered)
        {
            await Error(ctx, 503, "broker not available").ConfigureAwait(false);
            return;
        }
        var next = page.HasMore && page.Sessions.Count > 0 ? PageToken.Encode(page.Sessions[^1].ClientId) : "";
        await WriteJson(ctx, 200, w =>
        {
            w.WriteStartArray("sessions");
            foreach (var s in page.Sessions)
            {
                SessionJson.Write(w, s);
            }
            w.WriteEndArray();
            w.WriteString("next_page_token", next);
            if (page.UnreachableNodes.Count > 0)
            {
                w.WriteStartArray("unreachable_nodes");
                foreach (var n in page.UnreachableNodes)
                {
                    w.WriteStringValue(n);
                }
                w.WriteEndArray();
            }
        }).ConfigureAwait(false);
    }

    private async Task SessionDetail(HttpContext ctx)
    {
        // The raw target keeps %2F encoded, so a client ID containing '/' survives routing.
        var raw = ctx.Features.Get<IHttpRequestFeature>()?.RawTarget ?? ctx.Request.Path.Value ?? "";
        var q = raw.IndexOf('?', StringComparison.Ordinal);
        if (q >= 0)
        {
            raw = raw[..q];
        }
        var encoded = raw[(SessionsPath.Length + 1)..];
        if (encoded.Length == 0 || encoded.Contains('/', StringComparison.Ordinal))
        {
            await Error(ctx, 404, "not found").ConfigureAwait(false);
            return;
        }
        var clientId = Uri.UnescapeDataString(encoded);
        if (!_sessions.IsAvailable)
        {
            await Error(ctx, 503, "broker not available").ConfigureAwait(false);
            return;
        }
        var (session, answered, _) = await _sessions.FindAsync(clientId).ConfigureAwait(false);
        if (session is null)
        {
            await Error(ctx, answered ? 404 : 503, answered ? "session not found" : "broker not available").ConfigureAwait(false);
            return;
        }
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(ctx.Response.Body);
        SessionJson.Write(w, session);
        await w.FlushAsync().ConfigureAwait(false);
    }

    private static Task Error(HttpContext ctx, int status, string message) =>
        WriteJson(ctx, status, w => w.WriteString("error", message));

    private static async Task WriteJson(HttpContext ctx, int status, Action<Utf8JsonWriter> body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(ctx.Response.Body);
        w.WriteStartObject();
        body(w);
        w.WriteEndObject();
        await w.FlushAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
