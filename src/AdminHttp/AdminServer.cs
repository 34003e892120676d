using System.Net;
using Akka.Actor;
using Akka.Event;
using Broker.Actors.Sessions;
using Broker.Actors.Messages;
using Broker.AdminHttp.Json;
using Broker.AdminHttp.Security;
using Broker.AdminHttp.Sessions;
using Broker.AdminHttp.Stats;
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
/// The admin HTTP API on Kestrel: ASP.NET Core routes (minimal APIs) with source-generated JSON, and every error,
/// routing's 404 and 405 included, in the contract's JSON body.
/// </summary>
public sealed class AdminServer : IAsyncDisposable
{
    private const string SessionsPath = "/api/v1/sessions";

    private readonly WebApplication _app;
    private readonly SessionQueryService _sessions;
    private readonly StatsService _stats;
    private readonly Func<(bool Ready, string Details)> _readiness;

    private readonly int _maxPageSize;

    /// <summary>The tokens in force, or null: the API is open (loopback, or opened explicitly).</summary>
    private readonly Func<AdminTokens?> _tokens;
    private readonly Akka.Event.ILoggingAdapter _log;

    private AdminServer(WebApplication app, SessionQueryService sessions, StatsService stats, Func<(bool, string)> readiness, int maxPageSize,
        Func<AdminTokens?> tokens, Akka.Event.ILoggingAdapter log)
    {
        _stats = stats;
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
        var server = new AdminServer(app, new SessionQueryService(system, queryTimeout, resting, maxPageSize),
            new StatsService(system, queryTimeout, resting), readiness, maxPageSize, tokens ?? (() => null), system.Log);
        server.Configure(app);
        await app.StartAsync().ConfigureAwait(false);
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => new Uri(a)).ToList();
        server.Port = addresses.First(a => a.Scheme == "http").Port;
        server.HttpsPort = addresses.FirstOrDefault(a => a.Scheme == "https")?.Port ?? 0;
        return server;
    }

    /// <summary>
    /// The pipeline: every failure becomes the contract's JSON error (a bug is logged and answered 500, never passed off
    /// as 503), admin tokens are checked before any endpoint runs, and routing's own 404 and 405 get JSON bodies.
    /// </summary>
    private void Configure(WebApplication app)
    {
        app.Use(async (ctx, next) =>
        {
            try
            {
                if (!IsOpenPath(ctx.Request.Path) && !await Authorized(ctx).ConfigureAwait(false))
                {
                    return;
                }
                await next(ctx).ConfigureAwait(false);
            }
            catch (Exception ex) when (!ctx.Response.HasStarted && !(ex is OperationCanceledException && ctx.RequestAborted.IsCancellationRequested))
            {
                _log.Error(ex, "admin API: {0} {1} failed", ctx.Request.Method, ctx.Request.Path);
                ctx.Response.Clear();
                await WriteError(ctx, 500, "internal error").ConfigureAwait(false);
            }
        });
        app.UseStatusCodePages(async pages =>
        {
            var ctx = pages.HttpContext;
            var message = ctx.Response.StatusCode switch
            {
                404 => "not found",
                405 => "method not allowed",
                _ => null,
            };
            if (message is not null)
            {
                await WriteError(ctx, ctx.Response.StatusCode, message).ConfigureAwait(false);
            }
        });

        string[] read = [HttpMethods.Get, HttpMethods.Head];
        app.MapMethods("/health", read, () => TypedResults.Json(new StatusBody("ok"), AdminJson.Api.StatusBody));
        app.MapMethods("/ready", read, () =>
        {
            var (ready, details) = _readiness();
            return TypedResults.Json(ready ? new StatusBody("ready") : new StatusBody("not_ready", details), AdminJson.Api.StatusBody,
                statusCode: ready ? 200 : 503);
        });
        var api = app.MapGroup("/api/v1");
        api.MapMethods("/sessions", read, (Delegate)ListSessions);
        api.MapMethods("/sessions/{**client_id}", read, (Delegate)SessionDetail);
        api.MapMethods("/stats", read, (Delegate)GetStats);
        api.MapMethods("/cluster", read, (Delegate)GetCluster);
        api.MapMethods("/overview", read, (Delegate)GetOverview);
        app.MapMethods("/cluster/status", read, (Delegate)GetClusterStatus);
    }

    private async Task<IResult> GetStats(HttpRequest request)
    {
        var node = request.Query.TryGetValue("node", out var value) && value.ToString().Length > 0 ? value.ToString() : null;
        if (!_stats.IsAvailable)
        {
            return Unavailable();
        }
        var stats = await _stats.GatherAsync(node).ConfigureAwait(false);
        if (stats is null)
        {
            return Error(404, "node not found");
        }
        if (stats.Nodes.Count == 0)
        {
            return Unavailable();
        }
        return TypedResults.Json(StatsService.Body(stats, withNodes: node is null), AdminJson.Api.StatsBody);
    }

    private async Task<IResult> GetCluster()
    {
        if (!_stats.IsAvailable)
        {
            return Unavailable();
        }
        var stats = await _stats.GatherAsync().ConfigureAwait(false) ?? new ClusterStats([], []);
        return TypedResults.Json(new ClusterBody(_stats.NodeId, _stats.ClusterMode, _stats.IsLeader, _stats.Nodes(stats),
            stats.Unreachable.Count > 0 ? stats.Unreachable : null), AdminJson.Api.ClusterBody);
    }

    private async Task<IResult> GetOverview()
    {
        if (!_stats.IsAvailable)
        {
            return Unavailable();
        }
        var stats = await _stats.GatherAsync().ConfigureAwait(false) ?? new ClusterStats([], []);
        if (stats.Nodes.Count == 0)
        {
            return Unavailable();
        }
        var body = StatsService.Body(stats, withNodes: true);
        var unreachable = stats.Unreachable.ToList();
        SessionTotalsBody sessions;
        try
        {
            sessions = await _stats.SessionTotalsAsync(stats).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or System.Data.Common.DbException)
        {
            sessions = new SessionTotalsBody(body.Sessions.Connected, body.Sessions.InMemory);
            unreachable.Add(SessionQueryService.CatalogSource);
        }
        return TypedResults.Json(new OverviewBody(_stats.NodeId, _stats.ClusterMode, _stats.IsLeader, body.UptimeSeconds, sessions, body,
            new OverviewClusterBody(_stats.Nodes(stats)), unreachable.Count > 0 ? unreachable : null), AdminJson.Api.OverviewBody);
    }

    private async Task<IResult> GetClusterStatus()
    {
        if (!_stats.IsAvailable)
        {
            return Unavailable();
        }
        var stats = await _stats.GatherAsync().ConfigureAwait(false) ?? new ClusterStats([], []);
        SessionTotalsBody sessions;
        try
        {
            sessions = await _stats.SessionTotalsAsync(stats).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or System.Data.Common.DbException)
        {
            sessions = new SessionTotalsBody(stats.Nodes.Sum(n => n.Counters.GetValueOrDefault("sessions.connected")),
                stats.Nodes.Sum(n => n.Counters.GetValueOrDefault("sessions.in_memory")));
        }
        var members = _stats.Nodes(stats);
        return TypedResults.Json(new ClusterStatusBody(_stats.NodeId, _stats.IsLeader, _stats.ClusterMode, members.Count(m => m.Status == "up"), sessions),
            AdminJson.Api.ClusterStatusBody);
    }

    /// <summary>What answers without a token: liveness and readiness, for probes.</summary>
    private static bool IsOpenPath(PathString path) => path == "/health" || path == "/ready";

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
            await WriteError(ctx, 401, "unauthorized").ConfigureAwait(false);
            return false;
        }
        if (role == AdminRole.Viewer && !HttpMethods.IsGet(ctx.Request.Method) && !HttpMethods.IsHead(ctx.Request.Method))
        {
            BrokerCounters.AuthzDenied.Increment();
            DenialLog.Shared.Write(_log, $"admin API: {ctx.Request.Method} {ctx.Request.Path} from {ctx.Connection.RemoteIpAddress} refused to a viewer token");
            await WriteError(ctx, 403, "forbidden").ConfigureAwait(false);
            return false;
        }
        return true;
    }

    private async Task<IResult> ListSessions(HttpRequest request)
    {
        var q = request.Query;
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
                    return Error(400, "state must be one of: all, connected, disconnected");
            }
        }
        var limit = 0;
        if (q.TryGetValue("limit", out var limitValue) && limitValue.ToString().Length > 0
            && (!int.TryParse(limitValue.ToString(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out limit) || limit < 0))
        {
            return Error(400, "limit must be a non-negative integer");
        }
        string? after = null;
        if (q.TryGetValue("page_token", out var tokenValue) && tokenValue.ToString().Length > 0)
        {
            if (!PageToken.TryDecode(tokenValue.ToString(), out var last))
            {
                return Error(400, "invalid page_token");
            }
            after = last;
        }
        var prefix = q.TryGetValue("prefix", out var prefixValue) ? prefixValue.ToString() : "";
        if (!_sessions.IsAvailable)
        {
            return Unavailable();
        }
        // Every member gathers and sends at most one page: "no limit" is served page by page like any other.
        limit = limit == 0 ? _maxPageSize : Math.Min(limit, _maxPageSize);
        var page = await _sessions.ListAsync(new ListSessions(after, prefix, state, limit)).ConfigureAwait(false);
        if (!page.AnyAnswered)
        {
            return Unavailable();
        }
        var next = page.HasMore && page.Sessions.Count > 0 ? PageToken.Encode(page.Sessions[^1].ClientId) : "";
        return TypedResults.Json(new SessionsPageBody([.. page.Sessions.Select(SessionJson.Body)], next,
            page.UnreachableNodes.Count > 0 ? page.UnreachableNodes : null), AdminJson.Api.SessionsPageBody);
    }

    private async Task<IResult> SessionDetail(HttpContext ctx)
    {
        if (RawSegment(ctx, SessionsPath + "/") is not { } clientId)
        {
            return Error(404, "not found");
        }
        if (!_sessions.IsAvailable)
        {
            return Unavailable();
        }
        var (session, answered, _) = await _sessions.FindAsync(clientId).ConfigureAwait(false);
        if (session is null)
        {
            return answered ? Error(404, "session not found") : Unavailable();
        }
        return TypedResults.Json(SessionJson.Body(session), AdminJson.Api.SessionBody);
    }

    /// <summary>
    /// The one URL-encoded path segment after <paramref name="prefix"/>, decoded; null when there is none or more than one.
    /// Read from the raw request target, where <c>%2F</c> is still encoded, so an ID or topic containing '/' is one segment.
    /// </summary>
    internal static string? RawSegment(HttpContext ctx, string prefix, string suffix = "")
    {
        var raw = ctx.Features.Get<IHttpRequestFeature>()?.RawTarget ?? ctx.Request.Path.Value ?? "";
        var q = raw.IndexOf('?', StringComparison.Ordinal);
        if (q >= 0)
        {
            raw = raw[..q];
        }
        if (!raw.StartsWith(prefix, StringComparison.Ordinal) || !raw.EndsWith(suffix, StringComparison.Ordinal) || raw.Length <= prefix.Length + suffix.Length)
        {
            return null;
        }
        var encoded = raw[prefix.Length..^suffix.Length];
        return encoded.Contains('/', StringComparison.Ordinal) ? null : Uri.UnescapeDataString(encoded);
    }

    internal static IResult Error(int status, string message) => TypedResults.Json(new ErrorBody(message), AdminJson.Api.ErrorBody, statusCode: status);

    internal static IResult Unavailable() => Error(503, "broker not available");

    private static Task WriteError(HttpContext ctx, int status, string message)
    {
        ctx.Response.StatusCode = status;
        return ctx.Response.WriteAsJsonAsync(new ErrorBody(message), AdminJson.Api.ErrorBody);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
