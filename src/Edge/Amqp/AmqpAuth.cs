using System.Security.Cryptography;
using System.Text;
using Broker.Actors.Amqp.Content;

namespace Broker.Edge.Amqp;

/// <summary>The SASL responses of connection.start-ok.</summary>
internal static class AmqpAuth
{
    /// <summary>PLAIN: <c>authzid NUL user NUL password</c> (RFC 4616); the authorization identity is ignored.</summary>
    public static (string User, string Password)? ParsePlain(byte[] response)
    {
        var span = response.AsSpan();
        var first = span.IndexOf((byte)0);
        if (first < 0)
        {
            return null;
        }
        var rest = span[(first + 1)..];
        var second = rest.IndexOf((byte)0);
        if (second < 0)
        {
            return null;
        }
        return (Encoding.UTF8.GetString(rest[..second]), Encoding.UTF8.GetString(rest[(second + 1)..]));
    }

    /// <summary>AMQPLAIN: a field table without its length prefix, holding LOGIN and PASSWORD.</summary>
    public static (string User, string Password)? ParseAmqplain(byte[] response)
    {
        var wire = new byte[response.Length + 4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(wire, (uint)response.Length);
        response.CopyTo(wire, 4);
        FieldTable table;
        try
        {
            table = FieldTableCodec.Read(wire);
        }
        catch (AmqpFormatException)
        {
            return null;
        }
        return table.TryGet("LOGIN", out var login) && table.TryGet("PASSWORD", out var password) && Text(login) is { } u && Text(password) is { } p
            ? (u, p)
            : null;
    }

    private static string? Text(object? value) => value switch
    {
        byte[] b => Encoding.UTF8.GetString(b),
        string s => s,
        _ => null,
    };
}

/// <summary>
/// The users from <c>broker.amqp.users</c> ("name:password" pairs). Users named in
/// <c>broker.amqp.loopback-users</c> (by default <c>guest</c>) may only connect from this machine, as in RabbitMQ.
/// </summary>
internal sealed class AmqpUsers(IReadOnlyDictionary<string, string> passwords, IReadOnlySet<string> loopbackOnly)
{
    public static AmqpUsers Parse(string users, string loopbackUsers)
    {
        var passwords = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in users.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var colon = pair.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                throw new ArgumentException($"broker.amqp.users: '{pair}' is not name:password");
            }
            passwords[pair[..colon]] = pair[(colon + 1)..];
        }
        var loopback = new HashSet<string>(loopbackUsers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), StringComparer.Ordinal);
        return new AmqpUsers(passwords, loopback);
    }

    public bool Contains(string user) => passwords.ContainsKey(user);

    /// <summary>Null when the login is accepted, else why not (for the log; the client only hears ACCESS_REFUSED).</summary>
    public string? Check(string user, string password, bool fromLoopback)
    {
        if (!passwords.TryGetValue(user, out var expected) ||
            !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(expected), Encoding.UTF8.GetBytes(password)))
        {
            return "unknown user or wrong password";
        }
        if (loopbackOnly.Contains(user) && !fromLoopback)
        {
            return "user may only connect from localhost";
        }
        return null;
    }
}
