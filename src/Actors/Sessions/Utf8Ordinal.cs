namespace Broker.Actors.Sessions;

/// <summary>
/// Orders strings by their UTF-8 bytes (the admin API's "ordinal, byte-wise" order), which equals
/// Unicode code point order; plain UTF-16 ordinal order differs for characters above U+FFFF.
/// </summary>
public sealed class Utf8Ordinal : IComparer<string>
{
    public static readonly Utf8Ordinal Instance = new();

    public int Compare(string? x, string? y)
    {
        if (ReferenceEquals(x, y))
        {
            return 0;
        }
        if (x is null)
        {
            return -1;
        }
        if (y is null)
        {
            return 1;
        }
        // Below the first difference the strings agree. Where it is between two characters that are not surrogates,
        // UTF-16 order is code point order; only a surrogate there (a character above U+FFFF, or a broken one) needs
        // the strings read as code points. One string a prefix of the other: the shorter first, unless it ends in
        // half a pair.
        var common = x.AsSpan().CommonPrefixLength(y);
        var split = common > 0 && char.IsHighSurrogate(x[common - 1]);
        if (!split)
        {
            if (common == x.Length || common == y.Length)
            {
                return x.Length.CompareTo(y.Length);
            }
            if (!char.IsSurrogate(x[common]) && !char.IsSurrogate(y[common]))
            {
                return x[common].CompareTo(y[common]);
            }
        }
        return CompareRunes(x, y);
    }

    private static int CompareRunes(string x, string y)
    {
        var ex = x.EnumerateRunes();
        var ey = y.EnumerateRunes();
        while (true)
        {
            var hx = ex.MoveNext();
            var hy = ey.MoveNext();
            if (!hx || !hy)
            {
                return hx == hy ? 0 : hx ? 1 : -1;
            }
            var c = ex.Current.Value.CompareTo(ey.Current.Value);
            if (c != 0)
            {
                return c;
            }
        }
    }

    public static bool StartsWith(string value, string prefix) => value.StartsWith(prefix, StringComparison.Ordinal);

    /// <summary>The keys of <paramref name="set"/> strictly after <paramref name="after"/> (or from <paramref name="prefix"/>), in order.</summary>
    public static IEnumerable<string> KeysAfter(SortedSet<string> set, string? after, string prefix)
    {
        if (set.Count == 0)
        {
            return [];
        }
        var cmp = Utf8Ordinal.Instance;
        var lower = after;
        var inclusive = false;
        if (prefix.Length > 0 && (lower is null || cmp.Compare(prefix, lower) > 0))
        {
            lower = prefix;
            inclusive = true;
        }
        if (lower is null)
        {
            return set;
        }
        if (cmp.Compare(lower, set.Max!) > 0)
        {
            return [];
        }
        var view = set.GetViewBetween(lower, set.Max!);
        return inclusive ? view : view.Where(k => cmp.Compare(k, lower) > 0);
    }
}
