using System.Text;
using Broker.Actors.Sessions;

namespace Broker.Actors.Tests.Sessions;

public class Utf8OrdinalTests
{
    private static readonly string[] Pieces = ["a", "b", "z", "/", "\u00e9", "\u07ff", "\ud7ff", "\ue000", "\uffff", "\U0001F600", "\U00010000", "\U0010FFFF"];
    private static readonly string[] Broken = ["\ud800", "\udc00", "\udbff"];

    private static int Sign(int c) => Math.Sign(c);

    /// <summary>The order the admin API promises: the strings' UTF-8 bytes, compared byte by byte.</summary>
    private static int Bytes(string x, string y) => Encoding.UTF8.GetBytes(x).AsSpan().SequenceCompareTo(Encoding.UTF8.GetBytes(y));

    /// <summary>Code points in order, a broken surrogate read as U+FFFD (as Rune enumeration reads it).</summary>
    private static int CodePoints(string x, string y) =>
        x.EnumerateRunes().Select(r => r.Value).ToArray().AsSpan().SequenceCompareTo(y.EnumerateRunes().Select(r => r.Value).ToArray());

    private static string Random(Random random, string[] alphabet, int maxLength)
    {
        var sb = new StringBuilder();
        for (var n = random.Next(maxLength + 1); n > 0; n--)
        {
            sb.Append(alphabet[random.Next(alphabet.Length)]);
        }
        return sb.ToString();
    }

    [Fact]
    public void Orders_like_the_UTF8_bytes_where_UTF16_order_differs()
    {
        // U+E000 sorts before U+1F600 in UTF-8 and code points, after it in UTF-16 code units.
        Assert.True(Utf8Ordinal.Instance.Compare("a\ue000", "a\U0001F600") < 0);
        Assert.True(string.CompareOrdinal("a\ue000", "a\U0001F600") > 0);
        Assert.True(Utf8Ordinal.Instance.Compare("ab", "abc") < 0);
        Assert.Equal(0, Utf8Ordinal.Instance.Compare("x\U0001F600", "x\U0001F600"));
        Assert.True(Utf8Ordinal.Instance.Compare("x\U0001F600", "x\U0001F601") < 0);
    }

    [Fact]
    public void Agrees_with_the_UTF8_bytes_on_many_random_pairs()
    {
        var random = new Random(20261203);
        for (var i = 0; i < 20_000; i++)
        {
            var x = Random(random, Pieces, 6);
            var y = random.Next(3) == 0 ? x + Random(random, Pieces, 2) : Random(random, Pieces, 6);
            Assert.True(Sign(Bytes(x, y)) == Sign(Utf8Ordinal.Instance.Compare(x, y)), $"'{x}' vs '{y}'");
            Assert.True(Sign(Bytes(y, x)) == Sign(Utf8Ordinal.Instance.Compare(y, x)), $"'{y}' vs '{x}'");
        }
    }

    [Fact]
    public void Broken_surrogates_compare_as_the_replacement_character()
    {
        var random = new Random(7);
        var alphabet = Pieces.Concat(Broken).ToArray();
        for (var i = 0; i < 20_000; i++)
        {
            var x = Random(random, alphabet, 5);
            var y = random.Next(3) == 0 ? x + Random(random, alphabet, 2) : Random(random, alphabet, 5);
            Assert.True(Sign(CodePoints(x, y)) == Sign(Utf8Ordinal.Instance.Compare(x, y)), $"{Escape(x)} vs {Escape(y)}");
        }
    }

    private static string Escape(string s) => string.Concat(s.Select(c => $"\\u{(int)c:x4}"));
}
