using System.Buffers.Text;
using System.Text;

namespace Broker.AdminHttp.Sessions;

/// <summary>
/// The opaque cursor of a sessions page: "s1." followed by the base64url UTF-8 bytes of the last client
/// ID returned. The next page starts strictly after that ID.
/// </summary>
public static class PageToken
{
    private const string Prefix = "s1.";

    public static string Encode(string lastClientId) => Prefix + Base64Url.EncodeToString(Encoding.UTF8.GetBytes(lastClientId));

    public static bool TryDecode(string token, out string lastClientId)
    {
        lastClientId = "";
        if (!token.StartsWith(Prefix, StringComparison.Ordinal) || token.Length == Prefix.Length)
        {
            return false;
        }
        var encoded = token.AsSpan(Prefix.Length);
        if (!Base64Url.IsValid(encoded))
        {
            return false;
        }
        try
        {
            var bytes = Base64Url.DecodeFromChars(encoded);
            lastClientId = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
            return true;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            return false;
        }
    }
}
