namespace Broker.Edge.Security;

/// <summary>
/// How two MQTT topic filters relate, for access rules that are filters themselves: whether one admits every topic
/// the other does (<see cref="Covers"/>) and whether some topic matches both (<see cref="Intersects"/>). Both follow
/// the matching rules of MQTT §4.7: '#' also matches its parent level, and a filter that starts with a wildcard
/// matches no topic starting with '$'. Where an exact answer would need more cases, <see cref="Covers"/> answers
/// false (the safe side for a grant).
/// </summary>
public static class FilterRelation
{
    /// <summary>True when every topic <paramref name="filter"/> matches is matched by <paramref name="rule"/>.</summary>
    public static bool Covers(string rule, string filter)
    {
        var r = rule.Split('/');
        var f = filter.Split('/');
        if (IsDollar(f[0]) && IsWildcard(r[0]))
        {
            return false;
        }
        for (var i = 0; ; i++)
        {
            if (i < r.Length && r[i] == "#")
            {
                return true;
            }
            if (i == f.Length)
            {
                return i == r.Length;
            }
            if (f[i] == "#" || i == r.Length)
            {
                return false;
            }
            if (r[i] != "+" && r[i] != f[i])
            {
                return false;
            }
        }
    }

    /// <summary>True when some topic matches both filters.</summary>
    public static bool Intersects(string a, string b)
    {
        var x = a.Split('/');
        var y = b.Split('/');
        if ((IsDollar(x[0]) && IsWildcard(y[0])) || (IsDollar(y[0]) && IsWildcard(x[0])))
        {
            return false;
        }
        for (var i = 0; ; i++)
        {
            if ((i < x.Length && x[i] == "#") || (i < y.Length && y[i] == "#"))
            {
                return true;
            }
            if (i == x.Length || i == y.Length)
            {
                return i == x.Length && i == y.Length;
            }
            if (x[i] != "+" && y[i] != "+" && x[i] != y[i])
            {
                return false;
            }
        }
    }

    private static bool IsWildcard(string level) => level is "+" or "#";

    private static bool IsDollar(string level) => level.Length > 0 && level[0] == '$';
}
