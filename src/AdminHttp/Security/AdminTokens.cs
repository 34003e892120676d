using System.Security.Cryptography;
using System.Text;

namespace Broker.AdminHttp.Security;

/// <summary>What a token may do: <c>viewer</c> reads (GET, HEAD), <c>admin</c> does everything.</summary>
public enum AdminRole : byte
{
    Viewer,
    Admin,
}

/// <summary>
/// Bearer tokens of the admin API, from a file of lines <c>name:role:$sha256$HASH</c> (made by the <c>token add</c>
/// command, which prints the secret once). A secret is <c>name.RANDOM</c> with 32 random bytes, so the file keeps only
/// a SHA-256 of it: a secret that long needs no slow hash, and the name finds its line without trying each one.
/// </summary>
public sealed class AdminTokens
{
    private const string HashPrefix = "$sha256$";

    private readonly Dictionary<string, (AdminRole Role, byte[] Hash)> _tokens;

    private AdminTokens(Dictionary<string, (AdminRole, byte[])> tokens) => _tokens = tokens;

    public int Count => _tokens.Count;

    public IEnumerable<(string Name, AdminRole Role)> Entries => _tokens.Select(t => (t.Key, t.Value.Role));

    public static AdminTokens Load(string path) => Parse(File.ReadAllText(path), path);

    public static AdminTokens Parse(string text, string source = "tokens file")
    {
        var tokens = new Dictionary<string, (AdminRole, byte[])>(StringComparer.Ordinal);
        foreach (var (number, line) in ContentLines.Of(text))
        {
            var parts = line.Split(':');
            if (parts.Length != 3 || !IsValidName(parts[0]) || ParseRole(parts[1]) is not { } role || !TryParseHash(parts[2], out var hash))
            {
                throw new FormatException($"{source} line {number}: not name:viewer|admin:$sha256$... (make lines with the 'token add' command)");
            }
            tokens[parts[0]] = (role, hash);
        }
        return new AdminTokens(tokens);
    }

    /// <summary>The role of a presented secret, or null when no line of the file made it.</summary>
    public AdminRole? Authenticate(string secret)
    {
        var dot = secret.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0 || !_tokens.TryGetValue(secret[..dot], out var entry))
        {
            return null;
        }
        var actual = SHA256.HashData(Encoding.UTF8.GetBytes(secret));
        return CryptographicOperations.FixedTimeEquals(actual, entry.Hash) ? entry.Role : null;
    }

    public static AdminRole? ParseRole(string role) => role switch
    {
        "viewer" => AdminRole.Viewer,
        "admin" => AdminRole.Admin,
        _ => null,
    };

    /// <summary>Letters, digits, '-' and '_', at most 64.</summary>
    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= 64 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    /// <summary>
    /// Adds (or replaces) the token <paramref name="name"/> in the file at <paramref name="path"/> and returns its secret,
    /// which exists nowhere else: the file holds only its hash.
    /// </summary>
    public static string Add(string path, string name, AdminRole role)
    {
        if (!IsValidName(name))
        {
            throw new ArgumentException("a token name is 1 to 64 letters, digits, '-' or '_'");
        }
        var secret = name + "." + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var hash = Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
        var lines = ReadLines(path).Where(l => !l.StartsWith(name + ":", StringComparison.Ordinal)).ToList();
        lines.Add($"{name}:{role.ToString().ToLowerInvariant()}:{HashPrefix}{hash}");
        PrivateFile.Write(path, lines);
        return secret;
    }

    /// <summary>Removes the token <paramref name="name"/>; false when the file has none of that name.</summary>
    public static bool Remove(string path, string name)
    {
        var lines = ReadLines(path);
        var kept = lines.Where(l => !l.StartsWith(name + ":", StringComparison.Ordinal)).ToList();
        if (kept.Count == lines.Count)
        {
            return false;
        }
        PrivateFile.Write(path, kept);
        return true;
    }

    private static List<string> ReadLines(string path)
    {
        if (!File.Exists(path))
        {
            return [];
        }
        var text = File.ReadAllText(path);
        Parse(text, path);
        return [.. text.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0)];
    }

    private static bool TryParseHash(string text, out byte[] hash)
    {
        hash = [];
        if (!text.StartsWith(HashPrefix, StringComparison.Ordinal))
        {
            return false;
        }
        try
        {
            hash = Convert.FromBase64String(text[HashPrefix.Length..]);
            return hash.Length == 32;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
