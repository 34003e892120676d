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
}
