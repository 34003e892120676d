using System.Text.Json;

namespace Broker.Actors.Tests;

/// <summary>
/// Structural equality for records that hold lists, arrays and immutable collections (which compare by
/// reference): both sides are rendered as JSON with their runtime types and the texts compared.
/// </summary>
internal static class Structural
{
    public static string Json(object? value) =>
        value is null ? "null" : value.GetType().Name + JsonSerializer.Serialize(value, value.GetType());

    public static void Equal(object? expected, object? actual) => Assert.Equal(Json(expected), Json(actual));
}
