using System.Security.Cryptography;
using System.Text;

namespace Broker.Edge.Security;

/// <summary>
/// Password hashes as mosquitto_passwd writes them, so a file made by Debian's mosquitto_passwd works unchanged:
/// <code>
///   $7$ITERATIONS$SALT$HASH    PBKDF2-HMAC-SHA512 (mosquitto 2.x default, 101 iterations), HASH = 64 bytes
///   $6$SALT$HASH               SHA-512(password ‖ salt) (mosquitto 1.6 and earlier)
/// </code>
/// SALT and HASH are base64; the salt is 12 random bytes.
/// </summary>
public static class PasswordHash
{
    /// <summary>What mosquitto_passwd uses; a file may name more (each line says its own count).</summary>
    public const int DefaultIterations = 101;

    /// <summary>Most PBKDF2 iterations a line may ask for: a hand-edited file cannot make every CONNECT cost seconds.</summary>
    public const int MaxIterations = 1_000_000;

    private const int SaltBytes = 12;
    private const int HashBytes = 64;

    /// <summary>A new <c>$7$</c> hash of <paramref name="password"/> with a random salt.</summary>
    public static string Create(string password, int iterations = DefaultIterations)
    {
        var salt = RandomNumberGenerator.GetBytes(SaltBytes);
        var hash = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA512, HashBytes);
        return $"$7${iterations}${Convert.ToBase64String(salt)}${Convert.ToBase64String(hash)}";
    }

    /// <summary>True when <paramref name="encoded"/> is a hash this class can check (for loading a file).</summary>
    public static bool IsValid(string encoded) => TryParse(encoded, out _, out _, out _);

    /// <summary>Whether <paramref name="password"/> is the one <paramref name="encoded"/> was made from (constant time in the hash).</summary>
    public static bool Verify(string encoded, ReadOnlySpan<byte> password)
    {
        if (!TryParse(encoded, out var iterations, out var salt, out var expected))
        {
            return false;
        }
        byte[] actual;
        if (iterations == 0)
        {
            var input = new byte[password.Length + salt.Length];
            password.CopyTo(input);
            salt.CopyTo(input.AsSpan(password.Length));
            actual = SHA512.HashData(input);
        }
        else
        {
            actual = Rfc2898DeriveBytes.Pbkdf2(password, salt, iterations, HashAlgorithmName.SHA512, expected.Length);
        }
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }

    /// <summary>Iterations 0 stands for the <c>$6$</c> form.</summary>
    private static bool TryParse(string encoded, out int iterations, out byte[] salt, out byte[] hash)
    {
        iterations = 0;
        salt = hash = [];
        var parts = encoded.Split('$');
        try
        {
            switch (parts)
            {
                case ["", "6", var s, var h]:
                    salt = Convert.FromBase64String(s);
                    hash = Convert.FromBase64String(h);
                    return salt.Length > 0 && hash.Length == HashBytes;
                case ["", "7", var n, var s, var h]:
                    if (!int.TryParse(n, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out iterations)
                        || iterations is < 1 or > MaxIterations)
                    {
                        return false;
                    }
                    salt = Convert.FromBase64String(s);
                    hash = Convert.FromBase64String(h);
                    return salt.Length > 0 && hash.Length == HashBytes;
                default:
                    return false;
            }
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
