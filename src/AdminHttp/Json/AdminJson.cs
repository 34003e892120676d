using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using Broker.AdminHttp.Sessions;

namespace Broker.AdminHttp.Json;

/// <summary>Every error of the API: <c>{"error": "..."}</c>.</summary>
public sealed record ErrorBody(string Error);

/// <summary><c>/health</c>, <c>/ready</c>: a status and, when not ready, why.</summary>
public sealed record StatusBody(string Status, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Details = null);

/// <summary>
/// The API's JSON, generated at build time (no reflection): snake_case names, nulls written (a field of the contract
/// is never left out), and topic characters such as <c>+</c> and <c>/</c> kept readable.
/// </summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(StatusBody))]
[JsonSerializable(typeof(SessionBody))]
[JsonSerializable(typeof(SessionsPageBody))]
[JsonSerializable(typeof(Stats.StatsBody))]
[JsonSerializable(typeof(Retained.RetainedPageBody))]
[JsonSerializable(typeof(Subscriptions.SubscriptionsPageBody))]
[JsonSerializable(typeof(Subscriptions.FilterClientsBody))]
[JsonSerializable(typeof(Stats.ClusterBody))]
[JsonSerializable(typeof(Stats.OverviewBody))]
[JsonSerializable(typeof(Stats.ClusterStatusBody))]
[JsonSerializable(typeof(Amqp.QueuesPageBody))]
public sealed partial class AdminJson : JsonSerializerContext
{
    /// <summary>The options the API writes with: this context, and an encoder that escapes only what JSON requires.</summary>
    public static JsonSerializerOptions ApiOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        // The relaxed encoder still escapes quotes, backslashes and control characters: the body is JSON, never HTML.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The context bound to <see cref="ApiOptions"/>.</summary>
    public static AdminJson Api { get; } = new(ApiOptions);
}
