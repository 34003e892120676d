using System.Net;
using Akka.Actor;
using Akka.Event;
using Broker.Actors.Sessions;
using Broker.Actors.Messages;
using Broker.AdminHttp.Amqp;
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
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
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
    private const string QueuesPath = "/api/v1/amqp/queues";

    private readonly WebApplication _app;
    private readonly SessionQueryService _sessions;
    private readonly StatsService _stats;
    private readonly Func<IActorRef> _sessionRegion;
    private readonly Metrics.BrokerMetrics _metrics;
    private readonly Retained.RetainedAdmin _retained;
    private readonly StatsStream _statsStream;
    private readonly Subscriptions.SubscriptionQueryService _subscriptions;
    private readonly Func<(bool Ready, string Details)> _readiness;

    /// <summary>Null where AMQP is not started: the queue endpoints answer 503.</summary>
    private QueueAdminService? _amqpQueues;

    private readonly int _maxPageSize;

    /// <summary>The tokens in force, or null: the API is open (loopback, or opened explicitly).</summary>
    private readonly Func<AdminTokens?> _tokens;
    private readonly Akka.Event.ILoggingAdapter _log;

    private AdminServer(WebApplication app, SessionQueryService sessions, StatsService stats, Func<(bool, string)> readiness, int maxPageSize,
        Func<AdminTokens?> tokens, Akka.Event.ILoggingAdapter log, int maxStatStreams)
    {
        _stats = stats;
        _metrics = new Metrics.BrokerMetrics(sessions.System);
        _retained = new Retained.RetainedAdmin(sessions);
        _statsStream = new StatsStream(sessions.System, stats, maxStatStreams);
        _subscriptions = new Subscriptions.SubscriptionQueryService(sessions, sessions.Resting);
        _sessionRegion = () => Akka.Cluster.Sharding.ClusterSharding.Get(sessions.System).ShardRegion(Broker.Actors.BrokerServices.SessionTypeName);
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
        Func<System.Security.Cryptography.X509Certificates.X509Certificate2>? certificate = null, int maxStatStreams = 32,
        Broker.Actors.Amqp.Topology.AmqpTopology? amqpTopology = null)
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
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.TypeInfoResolverChain.Insert(0, AdminJson.Default);
            o.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower;
            o.SerializerOptions.Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
        });
        builder.Services.AddOpenApi(o => o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "Broker admin API";
            document.Info.Description = "Sessions, stats and steering of the whole cluster, from any node (docs: ../shared/spec/admin-api.md)";
            document.Info.Version = "v1";
            return Task.CompletedTask;
        }));
        var app = builder.Build();
        var server = new AdminServer(app, new SessionQueryService(system, queryTimeout, resting, maxPageSize),
            new StatsService(system, queryTimeout, resting), readiness, maxPageSize, tokens ?? (() => null), system.Log, maxStatStreams);
        server._amqpQueues = amqpTopology is null ? null : new QueueAdminService(system, amqpTopology,
            () => Akka.Cluster.Sharding.ClusterSharding.Get(system).ShardRegion(Broker.Actors.BrokerServices.QueueTypeName),
            () => Akka.Cluster.Sharding.ClusterSharding.Get(system).ShardRegion(Broker.Actors.Amqp.Topology.TopologyOwner.TypeName), queryTimeout);
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
        app.MapMethods("/health", read, () => TypedResults.Json(new StatusBody("ok"), AdminJson.Api.StatusBody))
            .WithName("health").WithSummary("The process answers (no token needed)").Produces<StatusBody>();
        app.MapMethods("/ready", read, () =>
        {
            var (ready, details) = _readiness();
            return TypedResults.Json(ready ? new StatusBody("ready") : new StatusBody("not_ready", details), AdminJson.Api.StatusBody,
                statusCode: ready ? 200 : 503);
        }).WithName("ready").WithSummary("The node is a member and serves clients (no token needed)").Produces<StatusBody>().Produces<StatusBody>(503);
        var api = app.MapGroup("/api/v1");
        api.MapMethods("/sessions", read, (Delegate)ListSessions).WithName("listSessions")
            .WithSummary("MQTT sessions and AMQP connections of the whole cluster, by client ID, in cursor pages")
            .Produces<SessionsPageBody>().Errors(400, 503);
        api.MapMethods("/sessions/{**client_id}", read, (Delegate)SessionDetail).WithName("getSession")
            .WithSummary("One session, wherever it is hosted (client_id URL-encoded)").Produces<SessionBody>().Errors(404, 503);
        api.MapDelete("/sessions/{**client_id}", (Delegate)KickSession).WithName("kickSession")
            .WithSummary("Disconnect the client wherever it is (MQTT 5: DISCONNECT 0x98; AMQP: connection.close 320); discard=true also ends its session")
            .Produces(204).Errors(400, 403, 404, 503);
        api.MapMethods("/amqp/queues", read, (Delegate)ListAmqpQueues).WithName("listAmqpQueues")
            .WithSummary("AMQP queues of the whole cluster with their counts and node, by name, in cursor pages")
            .Produces<QueuesPageBody>().Errors(400, 503);
        api.MapDelete("/amqp/queues/{name}", (Delegate)DeleteAmqpQueue).WithName("deleteAmqpQueue")
            .WithSummary("Delete a queue (name URL-encoded), cancelling its consumers; if_empty / if_unused refuse with 409 as queue.delete does")
            .Produces(204).Errors(400, 403, 404, 409, 503);
        api.MapDelete("/amqp/queues/{name}/contents", (Delegate)PurgeAmqpQueue).WithName("purgeAmqpQueue")
            .WithSummary("Purge a queue (name URL-encoded): its ready messages are dropped, unacknowledged ones stay")
            .Produces(204).Errors(403, 404, 503);
        api.MapMethods("/stats", read, (Delegate)GetStats).WithName("getStats")
            .WithSummary("Cumulative counts summed over the members (nodes: each member's), or one member's with node=NAME")
            .Produces<StatsBody>().Errors(404, 503);
        api.MapGet("/stats/stream", async (HttpContext ctx) =>
        {
            if (!_stats.IsAvailable)
            {
                return Unavailable();
            }
            await _statsStream.ServeAsync(ctx).ConfigureAwait(false);
            return TypedResults.Empty;
        }).WithName("streamStats").WithSummary("The cluster-wide stats as Server-Sent Events, one data: line about every second")
            .Produces(200, contentType: "text/event-stream").Errors(503);
        api.MapMethods("/cluster", read, (Delegate)GetCluster).WithName("getCluster").WithSummary("The members and their health")
            .Produces<ClusterBody>().Errors(503);
        api.MapMethods("/overview", read, (Delegate)GetOverview).WithName("getOverview").WithSummary("Sessions, stats and members for a first paint")
            .Produces<OverviewBody>().Errors(503);
        api.MapMethods("/subscriptions", read, (Delegate)ListSubscriptions).WithName("listSubscriptions")
            .WithSummary("Subscriptions of the whole cluster by filter: subscriber count and highest QoS, in cursor pages (state default connected)")
            .Produces<Subscriptions.SubscriptionsPageBody>().Errors(400, 503);
        api.MapMethods("/subscriptions/{filter}/clients", read, (Delegate)ListFilterClients).WithName("listFilterClients")
            .WithSummary("The sessions subscribed to one filter (URL-encoded: %2F, %23, %2B), by client ID in cursor pages")
            .Produces<Subscriptions.FilterClientsBody>().Errors(400, 404, 503);
        api.MapMethods("/retained", read, (Delegate)ListRetained).WithName("listRetained")
            .WithSummary("The cluster's retained messages by topic, in cursor pages").Produces<Retained.RetainedPageBody>().Errors(400, 503);
        api.MapDelete("/retained/{**topic}", (Delegate)DeleteRetained).WithName("deleteRetained")
            .WithSummary("Remove the retained message of a topic (topic URL-encoded)").Produces(204).Errors(403, 404, 503);
        app.MapMethods("/cluster/status", read, (Delegate)GetClusterStatus).WithName("getClusterStatus").WithSummary("This node's view of the cluster in brief")
            .Produces<ClusterStatusBody>().Errors(503);
        app.MapMethods("/metrics", read, async (HttpContext ctx) =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await _metrics.WriteAsync(ctx.Response.Body, ctx.RequestAborted).ConfigureAwait(false);
            return TypedResults.Empty;
        }).WithName("getMetrics").WithSummary("This node's metrics in Prometheus's text exposition format")
            .Produces(200, contentType: "text/plain").Errors();
        app.MapOpenApi(OpenApiPath);
        Dashboard.DashboardAssets.MapDashboard(app);
    }

    /// <summary>Every route pattern the server maps, with its methods.</summary>
    public IReadOnlyList<(string Pattern, IReadOnlyList<string> Methods)> Routes =>
        [.. _app.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Select(e => (e.RoutePattern.RawText ?? "", (IReadOnlyList<string>)(e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? [])))];

    /// <summary>Where the OpenAPI document of every endpoint is served.</summary>
    public const string OpenApiPath = "/api/v1/openapi.json";

    /// <param name="node">one member's name: only its counts</param>
    private async Task<IResult> GetStats([FromQuery(Name = "node")] string? node)
    {
        node = string.IsNullOrEmpty(node) ? null : node;
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

    /// <summary>What answers without a token: liveness and readiness, for probes, and the dashboard's static files.</summary>
    private static bool IsOpenPath(PathString path) => path == "/health" || path == "/ready" || Dashboard.DashboardAssets.IsDashboardPath(path);

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

    /// <param name="state">all (default), connected or disconnected</param>
    /// <param name="prefix">only client IDs starting with this (ordinal)</param>
    /// <param name="limit">page size; 0 or none = the node's maximum page</param>
    /// <param name="pageToken">next_page_token of the previous page</param>
    /// <param name="node">only sessions this member hosts (exact node name)</param>
    /// <param name="protocol">mqtt3.1, mqtt3.1.1, mqtt5 or amqp0.9.1</param>
    /// <param name="username">only sessions whose client last connected with this user name (sessions in memory)</param>
    private async Task<IResult> ListSessions([FromQuery(Name = "state")] string? state, [FromQuery(Name = "prefix")] string? prefix,
        [FromQuery(Name = "limit")] string? limit, [FromQuery(Name = "page_token")] string? pageToken,
        [FromQuery(Name = "node")] string? node, [FromQuery(Name = "protocol")] string? protocol, [FromQuery(Name = "username")] string? username)
    {
        byte? level = protocol switch
        {
            null or "" => null,
            "mqtt3.1" => 3,
            "mqtt3.1.1" => 4,
            "mqtt5" => 5,
            "amqp0.9.1" => 0,
            _ => 255,
        };
        if (level == 255)
        {
            return Error(400, "protocol must be one of: mqtt3.1, mqtt3.1.1, mqtt5, amqp0.9.1");
        }
        if (ParseState(state, SessionStateFilter.All, out var stateFilter) is { } badState)
        {
            return badState;
        }
        if (ParsePage(limit, pageToken, out var pageSize, out var after) is { } bad)
        {
            return bad;
        }
        prefix ??= "";
        if (!_sessions.IsAvailable)
        {
            return Unavailable();
        }
        // Every member gathers and sends at most one page: "no limit" is served page by page like any other (ParsePage).
        node = string.IsNullOrEmpty(node) ? null : node;
        if (node is not null && !_sessions.MemberNames.Contains(node))
        {
            return Error(404, "node not found");
        }
        var query = new ListSessions(after, prefix, stateFilter, pageSize, level, string.IsNullOrEmpty(username) ? null : username);
        var page = await _sessions.ListAsync(query, node).ConfigureAwait(false);
        if (!page.AnyAnswered)
        {
            return Unavailable();
        }
        var next = page.HasMore && page.Sessions.Count > 0 ? PageToken.Encode(page.Sessions[^1].ClientId) : "";
        return TypedResults.Json(new SessionsPageBody([.. page.Sessions.Select(SessionJson.Body)], next,
            page.UnreachableNodes.Count > 0 ? page.UnreachableNodes : null), AdminJson.Api.SessionsPageBody);
    }

    /// <param name="clientIdInRoute">the client ID, URL-encoded (read from the raw request target, where %2F stays one segment)</param>
    private async Task<IResult> SessionDetail(HttpContext ctx, [FromRoute(Name = "client_id")] string? clientIdInRoute)
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

    /// <param name="state">connected (default), disconnected or all</param>
    /// <param name="prefix">only filters starting with this (ordinal)</param>
    /// <param name="limit">page size; 0 or none = the node's maximum page</param>
    /// <param name="pageToken">next_page_token of the previous page</param>
    private async Task<IResult> ListSubscriptions([FromQuery(Name = "state")] string? state, [FromQuery(Name = "prefix")] string? prefix,
        [FromQuery(Name = "limit")] string? limit, [FromQuery(Name = "page_token")] string? pageToken)
    {
        if (ParseList(state, limit, pageToken, out var stateFilter, out var pageSize, out var after) is { } refused)
        {
            return refused;
        }
        var (body, answered) = await _subscriptions.FiltersAsync(after, prefix ?? "", stateFilter, pageSize).ConfigureAwait(false);
        return answered ? TypedResults.Json(body!, AdminJson.Api.SubscriptionsPageBody) : Unavailable();
    }

    /// <param name="filterInRoute">the filter, URL-encoded</param>
    /// <param name="state">connected (default), disconnected or all</param>
    /// <param name="prefix">only client IDs starting with this (ordinal)</param>
    /// <param name="limit">page size; 0 or none = the node's maximum page</param>
    /// <param name="pageToken">next_page_token of the previous page</param>
    private async Task<IResult> ListFilterClients(HttpContext ctx, [FromRoute(Name = "filter")] string filterInRoute, [FromQuery(Name = "state")] string? state,
        [FromQuery(Name = "prefix")] string? prefix, [FromQuery(Name = "limit")] string? limit, [FromQuery(Name = "page_token")] string? pageToken)
    {
        if (RawSegment(ctx, "/api/v1/subscriptions/", "/clients") is not { } filter)
        {
            return Error(404, "not found");
        }
        if (ParseList(state, limit, pageToken, out var stateFilter, out var pageSize, out var after) is { } refused)
        {
            return refused;
        }
        var (body, answered) = await _subscriptions.ClientsAsync(filter, after, prefix ?? "", stateFilter, pageSize).ConfigureAwait(false);
        return answered ? TypedResults.Json(body!, AdminJson.Api.FilterClientsBody) : Unavailable();
    }

    /// <summary>A subscription list's parameters (state defaults to connected), or the answer that refuses them: 400, or 503.</summary>
    private IResult? ParseList(string? state, string? limit, string? pageToken, out SessionStateFilter stateFilter, out int pageSize, out string? after)
    {
        pageSize = 0;
        after = null;
        return ParseState(state, SessionStateFilter.Connected, out stateFilter)
            ?? ParsePage(limit, pageToken, out pageSize, out after)
            ?? (_sessions.IsAvailable ? null : Unavailable());
    }

    /// <summary>The <c>state</c> parameter: a 400 result when it is none of all, connected, disconnected.</summary>
    private static IResult? ParseState(string? state, SessionStateFilter fallback, out SessionStateFilter filter)
    {
        filter = fallback;
        switch (state?.ToLowerInvariant())
        {
            case null:
                return null;
            case "all":
                filter = SessionStateFilter.All;
                return null;
            case "connected":
                filter = SessionStateFilter.Connected;
                return null;
            case "disconnected":
                filter = SessionStateFilter.Disconnected;
                return null;
            default:
                return Error(400, "state must be one of: all, connected, disconnected");
        }
    }

    /// <param name="prefix">only topics starting with this (ordinal)</param>
    /// <param name="limit">page size; 0 or none = the node's maximum page</param>
    /// <param name="pageToken">next_page_token of the previous page</param>
    private async Task<IResult> ListRetained([FromQuery(Name = "prefix")] string? prefix, [FromQuery(Name = "limit")] string? limit,
        [FromQuery(Name = "page_token")] string? pageToken)
    {
        if (ParsePage(limit, pageToken, out var pageSize, out var after) is { } bad)
        {
            return bad;
        }
        if (!_sessions.IsAvailable)
        {
            return Unavailable();
        }
        try
        {
            return TypedResults.Json(await _retained.ListAsync(after, prefix ?? "", pageSize).ConfigureAwait(false), AdminJson.Api.RetainedPageBody);
        }
        catch (AskTimeoutException)
        {
            return Unavailable();
        }
    }

    /// <param name="topicInRoute">the topic, URL-encoded</param>
    private async Task<IResult> DeleteRetained(HttpContext ctx, [FromRoute(Name = "topic")] string? topicInRoute)
    {
        if (string.IsNullOrEmpty(topicInRoute))
        {
            ctx.Response.Headers.Allow = "GET, HEAD";
            return Error(405, "method not allowed");
        }
        if (RawSegment(ctx, "/api/v1/retained/") is not { } topic)
        {
            return Error(404, "not found");
        }
        if (!_sessions.IsAvailable)
        {
            return Unavailable();
        }
        try
        {
            return await _retained.DeleteAsync(topic).ConfigureAwait(false) ? TypedResults.NoContent() : Error(404, "retained message not found");
        }
        catch (AskTimeoutException)
        {
            return Unavailable();
        }
    }

    /// <summary>The paging parameters every list takes: a 400 result when malformed.</summary>
    private IResult? ParsePage(string? limit, string? pageToken, out int pageSize, out string? after)
    {
        after = null;
        pageSize = 0;
        if (!string.IsNullOrEmpty(limit)
            && (!int.TryParse(limit, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out pageSize) || pageSize < 0))
        {
            return Error(400, "limit must be a non-negative integer");
        }
        if (!string.IsNullOrEmpty(pageToken))
        {
            if (!PageToken.TryDecode(pageToken, out var last))
            {
                return Error(400, "invalid page_token");
            }
            after = last;
        }
        pageSize = pageSize == 0 ? _maxPageSize : Math.Min(pageSize, _maxPageSize);
        return null;
    }

    /// <summary>DELETE a session: its client is disconnected wherever it is; with <c>?discard=true</c> the session ends too.</summary>
    /// <param name="clientIdInRoute">the client ID, URL-encoded</param>
    /// <param name="discard">true: also end the session (and its queue)</param>
    private async Task<IResult> KickSession(HttpContext ctx, [FromRoute(Name = "client_id")] string? clientIdInRoute, [FromQuery(Name = "discard")] string? discard)
    {
        if (string.IsNullOrEmpty(clientIdInRoute))
        {
            // The catch-all also matches the collection itself, which is only read.
            ctx.Response.Headers.Allow = "GET, HEAD";
            return Error(405, "method not allowed");
        }
        if (RawSegment(ctx, SessionsPath + "/") is not { } clientId)
        {
            return Error(404, "not found");
        }
        var discardSession = false;
        if (discard is not null && !bool.TryParse(discard, out discardSession))
        {
            return Error(400, "discard must be true or false");
        }
        if (!_sessions.IsAvailable)
        {
            return Unavailable();
        }
        var (found, answered) = await _sessions.KickAsync(clientId, discardSession, _sessionRegion()).ConfigureAwait(false);
        if (found)
        {
            _log.Info("admin API: {0} {1} by {2}", discardSession ? "discarded session" : "disconnected client", clientId, ctx.Connection.RemoteIpAddress);
            return TypedResults.NoContent();
        }
        return answered ? Error(404, "session not found") : Unavailable();
    }

    /// <param name="prefix">only queue names starting with this (ordinal)</param>
    /// <param name="limit">page size; 0 or none = the node's maximum page</param>
    /// <param name="pageToken">next_page_token of the previous page</param>
    private async Task<IResult> ListAmqpQueues([FromQuery(Name = "prefix")] string? prefix, [FromQuery(Name = "limit")] string? limit,
        [FromQuery(Name = "page_token")] string? pageToken)
    {
        var pageSize = 0;
        if (!string.IsNullOrEmpty(limit)
            && (!int.TryParse(limit, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out pageSize) || pageSize < 0))
        {
            return Error(400, "limit must be a non-negative integer");
        }
        string? after = null;
        if (!string.IsNullOrEmpty(pageToken))
        {
            if (!PageToken.TryDecode(pageToken, out var last))
            {
                return Error(400, "invalid page_token");
            }
            after = last;
        }
        if (_amqpQueues is not { IsAvailable: true } queues)
        {
            return Unavailable();
        }
        var page = await queues.ListAsync(after, prefix ?? "", pageSize == 0 ? _maxPageSize : Math.Min(pageSize, _maxPageSize)).ConfigureAwait(false);
        var next = page.HasMore && page.Queues.Count > 0 ? PageToken.Encode(page.Queues[^1].Name) : "";
        return TypedResults.Json(new QueuesPageBody(page.Queues, next, page.Unreachable.Count > 0 ? page.Unreachable : null), AdminJson.Api.QueuesPageBody);
    }

    /// <param name="nameInRoute">the queue name, URL-encoded (read from the raw request target)</param>
    /// <param name="ifEmpty">true: refuse (409) while the queue has ready messages</param>
    /// <param name="ifUnused">true: refuse (409) while the queue has consumers</param>
    private async Task<IResult> DeleteAmqpQueue(HttpContext ctx, [FromRoute(Name = "name")] string? nameInRoute,
        [FromQuery(Name = "if_empty")] string? ifEmpty, [FromQuery(Name = "if_unused")] string? ifUnused)
    {
        if (RawSegment(ctx, QueuesPath + "/") is not { } name)
        {
            return Error(404, "not found");
        }
        var empty = false;
        var unused = false;
        if (ifEmpty is not null && !bool.TryParse(ifEmpty, out empty))
        {
            return Error(400, "if_empty must be true or false");
        }
        if (ifUnused is not null && !bool.TryParse(ifUnused, out unused))
        {
            return Error(400, "if_unused must be true or false");
        }
        if (_amqpQueues is not { IsAvailable: true } queues)
        {
            return Unavailable();
        }
        var (outcome, refusal) = await queues.DeleteAsync(name, unused, empty).ConfigureAwait(false);
        if (outcome == QueueCommandOutcome.Done)
        {
            _log.Info("admin API: deleted AMQP queue {0} by {1}", name, ctx.Connection.RemoteIpAddress);
        }
        return QueueCommandResult(outcome, refusal);
    }

    /// <param name="nameInRoute">the queue name, URL-encoded (read from the raw request target)</param>
    private async Task<IResult> PurgeAmqpQueue(HttpContext ctx, [FromRoute(Name = "name")] string? nameInRoute)
    {
        if (RawSegment(ctx, QueuesPath + "/", "/contents") is not { } name)
        {
            return Error(404, "not found");
        }
        if (_amqpQueues is not { IsAvailable: true } queues)
        {
            return Unavailable();
        }
        var outcome = await queues.PurgeAsync(name).ConfigureAwait(false);
        if (outcome == QueueCommandOutcome.Done)
        {
            _log.Info("admin API: purged AMQP queue {0} by {1}", name, ctx.Connection.RemoteIpAddress);
        }
        return QueueCommandResult(outcome, "");
    }

    private static IResult QueueCommandResult(QueueCommandOutcome outcome, string refusal) => outcome switch
    {
        QueueCommandOutcome.Done => TypedResults.NoContent(),
        QueueCommandOutcome.NotFound => Error(404, "queue not found"),
        QueueCommandOutcome.Refused => Error(409, refusal),
        _ => Unavailable(),
    };

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
        _statsStream.Dispose();
        _metrics.Dispose();
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>OpenAPI metadata shared by the endpoints.</summary>
internal static class EndpointDocs
{
    /// <summary>These statuses answer with the contract's <c>{"error": "..."}</c> (401 too, whenever tokens are configured).</summary>
    public static RouteHandlerBuilder Errors(this RouteHandlerBuilder builder, params int[] statuses)
    {
        foreach (var status in statuses.Append(401).Distinct())
        {
            builder.Produces<ErrorBody>(status);
        }
        return builder;
    }
}
