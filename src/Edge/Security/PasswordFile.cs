using Broker.AdminHttp.Security;

namespace Broker.Edge.Security;

/// <summary>
/// A password file in mosquitto's format: one <c>user:hash</c> line per user (<see cref="PasswordHash"/>), blank lines
/// and lines starting with # ignored. A user name cannot hold ':'. Read once, then again whenever the file changes
/// (<see cref="ReloadingFile{T}"/>): editing it with <c>passwd</c> or mosquitto_passwd takes effect without a restart.
/// </summary>
public sealed class PasswordFile
{
    private readonly IReadOnlyDictionary<string, string> _hashes;

    private PasswordFile(IReadOnlyDictionary<string, string> hashes) => _hashes = hashes;

    public int Count => _hashes.Count;

    public IEnumerable<string> Users => _hashes.Keys;

    /// <summary>Parses the file's text; a malformed line is an error naming its number (a typo must not lock users out silently).</summary>
    public static PasswordFile Parse(string text, string source = "password file")
    {
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (number, line) in ContentLines.Of(text))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0 || !PasswordHash.IsValid(line[(colon + 1)..]))
            {
                throw new FormatException($"{source} line {number}: not user:$7$... or user:$6$... (make lines with the passwd command or mosquitto_passwd)");
            }
            hashes[line[..colon]] = line[(colon + 1)..];
        }
        return new PasswordFile(hashes);
    }

    public static PasswordFile Load(string path) => Parse(File.ReadAllText(path), path);

    public bool Contains(string user) => _hashes.ContainsKey(user);

    /// <summary>Whether <paramref name="user"/> is in the file with this password. An unknown user costs a hash too, so timing does not tell which users exist.</summary>
    public bool Verify(string user, ReadOnlySpan<byte> password)
    {
        if (_hashes.TryGetValue(user, out var hash))
        {
            return PasswordHash.Verify(hash, password);
        }
        PasswordHash.Verify(DummyHash, password);
        return false;
    }

    private static readonly string DummyHash = PasswordHash.Create("no such user");

    /// <summary>
    /// Sets (or with a null password removes) one user in the file at <paramref name="path"/>, keeping every other line as
    /// it was. The new file is written beside the old one and renamed over it, readable by its owner only.
    /// </summary>
    /// <returns>false when removing a user the file does not hold.</returns>
    public static bool Update(string path, string user, string? password)
    {
        if (user.Length == 0 || user.Contains(':', StringComparison.Ordinal) || user.Any(char.IsControl))
        {
            throw new ArgumentException("a user name must be non-empty and hold neither ':' nor control characters");
        }
        var lines = File.Exists(path) ? File.ReadAllText(path).Split('\n').Select(l => l.TrimEnd('\r')).ToList() : [];
        if (lines.Count > 0 && lines[^1].Length == 0)
        {
            lines.RemoveAt(lines.Count - 1);
        }
        Parse(string.Join('\n', lines), path);
        var index = lines.FindIndex(l => l.StartsWith(user + ":", StringComparison.Ordinal));
        if (password is null)
        {
            if (index < 0)
            {
                return false;
            }
            lines.RemoveAt(index);
        }
        else if (index >= 0)
        {
            lines[index] = user + ":" + PasswordHash.Create(password);
        }
        else
        {
            lines.Add(user + ":" + PasswordHash.Create(password));
        }
        PrivateFile.Write(path, lines);
        return true;
    }
}
