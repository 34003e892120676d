using System.Collections.Frozen;
using Broker.AdminHttp.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Broker.AdminHttp.Dashboard;

/// <summary>
/// The web dashboard: three hand-written files embedded in this assembly, served without a token (the page asks for
/// one when the API answers 401), read once at start.
/// </summary>
internal static class DashboardAssets
{
    /// <summary>Every path under this prefix is a dashboard file; the admin API's token check skips them.</summary>
    public const string Prefix = "/dashboard";

    private static readonly FrozenDictionary<string, (byte[] Content, string ContentType)> Files = Load();

    private static FrozenDictionary<string, (byte[], string)> Load()
    {
        var assembly = typeof(DashboardAssets).Assembly;
        var files = new Dictionary<string, (byte[], string)>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith("Dashboard.", StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var name = resource["Dashboard.".Length..];
            files[name] = (copy.ToArray(), ContentType(name));
        }
        return files.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private static string ContentType(string name) => Path.GetExtension(name) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    };

    /// <summary>The dashboard's own paths: the page at <c>/</c> and its files under <see cref="Prefix"/>.</summary>
    public static bool IsDashboardPath(PathString path) => path == "/" || path.StartsWithSegments(Prefix, StringComparison.Ordinal);

    /// <summary><c>GET /</c>: the page; <c>GET /dashboard/{file}</c>: one of its files.</summary>
    public static void MapDashboard(this IEndpointRouteBuilder app)
    {
        string[] read = [HttpMethods.Get, HttpMethods.Head];
        app.MapMethods("/", read, (HttpContext ctx) => Serve(ctx, "index.html")).WithName("dashboard")
            .WithSummary("The web dashboard (no token needed; it asks for one when the API does)").Produces(200, contentType: "text/html");
        app.MapMethods(Prefix + "/{file}", read, (HttpContext ctx, string file) => Serve(ctx, file)).WithName("dashboardFile")
            .WithSummary("A file of the dashboard (no token needed)").Produces(200, null, "text/javascript", "text/css").Produces<ErrorBody>(404);
    }

    private static IResult Serve(HttpContext ctx, string name)
    {
        if (!Files.TryGetValue(name, out var file))
        {
            return AdminServer.Error(404, "not found");
        }
        ctx.Response.Headers.CacheControl = "no-cache";
        ctx.Response.Headers.XContentTypeOptions = "nosniff";
        return TypedResults.Bytes(file.Content, file.ContentType);
    }
}
