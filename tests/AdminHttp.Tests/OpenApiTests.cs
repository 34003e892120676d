using System.Text.Json;

namespace Broker.AdminHttp.Tests;

/// <summary>The OpenAPI document is generated from the endpoints: every route is in it, and the Session schema has every field of the contract.</summary>
public sealed class OpenApiTests(AdminFixture fixture) : IClassFixture<AdminFixture>
{
    private async Task<JsonElement> Document()
    {
        var response = await fixture.Http.GetAsync("/api/v1/openapi.json");
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    [Fact]
    public async Task Every_route_and_method_of_the_server_is_in_the_document()
    {
        var doc = await Document();
        Assert.StartsWith("3.", doc.GetProperty("openapi").GetString(), StringComparison.Ordinal);
        var paths = doc.GetProperty("paths");
        var routes = fixture.Node.Node.AdminRoutes;
        Assert.True(routes.Count >= 10, $"{routes.Count} routes");
        foreach (var (pattern, methods) in routes.Where(r => r.Pattern != "/api/v1/openapi.json"))
        {
            // The document names a catch-all parameter without its ** and its constraints.
            var path = System.Text.RegularExpressions.Regex.Replace(pattern, @"\{\*\*([a-z_]+)(:[^}]*)?\}", "{$1}");
            Assert.True(paths.TryGetProperty(path, out var item), $"{path} is not in the document");
            foreach (var method in methods.Where(m => m != "HEAD"))
            {
                Assert.True(item.TryGetProperty(method.ToLowerInvariant(), out var operation), $"{method} {path} is not in the document");
                Assert.True(operation.TryGetProperty("responses", out _), $"{method} {path} has no responses");
            }
        }
        var list = paths.GetProperty("/api/v1/sessions").GetProperty("get");
        var parameters = list.GetProperty("parameters").EnumerateArray().Select(p => p.GetProperty("name").GetString()).ToHashSet();
        Assert.Superset(new HashSet<string?> { "state", "prefix", "limit", "page_token" }, parameters);
        var responses = list.GetProperty("responses");
        foreach (var status in new[] { "200", "400", "401", "503" })
        {
            Assert.True(responses.TryGetProperty(status, out _), $"GET /api/v1/sessions does not document {status}");
        }
    }

    [Fact]
    public async Task The_session_schema_lists_every_field_of_the_contract()
    {
        var schemas = (await Document()).GetProperty("components").GetProperty("schemas");
        var session = schemas.GetProperty("SessionBody").GetProperty("properties");
        Assert.All(SessionsApiTests.SessionFields, f => Assert.True(session.TryGetProperty(f, out _), $"Session lacks {f}"));
        var subscription = schemas.GetProperty("SubscriptionBody").GetProperty("properties");
        Assert.All(SessionsApiTests.SubscriptionFields, f => Assert.True(subscription.TryGetProperty(f, out _), $"Subscription lacks {f}"));
        Assert.True(schemas.GetProperty("ErrorBody").GetProperty("properties").TryGetProperty("error", out _));
    }
}
