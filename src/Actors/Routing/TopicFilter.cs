using System.Text;

namespace Broker.Actors.Routing;

/// <summary>Validation and matching of MQTT topic names and topic filters (MQTT 5.0 §4.7, 3.1.1 §4.7).</summary>
public static class TopicFilter
{
    public const string SharePrefix = "$share/";

    /// <summary>A topic name a client may publish to: non-empty, no wildcards, no NUL, at most 65535 UTF-8 bytes.</summary>
    public static bool IsValidTopicName(string? topic)
    {
        if (string.IsNullOrEmpty(topic) || Encoding.UTF8.GetByteCount(topic) > 65535)
        {
            return false;
        }
        return topic.AsSpan().IndexOfAny('+', '#', '\0') < 0;
    }

    /// <summary>
    /// True when a topic name or filter has at most <paramref name="maxBytes"/> UTF-8 bytes and at most
    /// <paramref name="maxLevels"/> levels (a <c>$share/group/</c> prefix counts as its two levels, so the
    /// bound covers what the trie stores). Counts without allocating.
    /// </summary>
    public static bool WithinBounds(string topic, int maxBytes, int maxLevels)
    {
        // A char is at most 3 UTF-8 bytes (a surrogate pair is 4 for 2 chars): skip the count when that cannot reach the bound.
        if (topic.Length > maxBytes || (topic.Length * 3L > maxBytes && Encoding.UTF8.GetByteCount(topic) > maxBytes))
        {
            return false;
        }
        return topic.AsSpan().Count('/') < maxLevels;
    }

    /// <summary>A topic filter a client may subscribe to, including <c>$share/group/filter</c>.</summary>
    public static bool IsValidFilter(string? filter)
    {
        if (string.IsNullOrEmpty(filter) || Encoding.UTF8.GetByteCount(filter) > 65535 || filter.Contains('\0', StringComparison.Ordinal))
        {
            return false;
        }
        if (filter.StartsWith(SharePrefix, StringComparison.Ordinal))
        {
            return TryParseShared(filter, out _, out var inner) && IsValidPlainFilter(inner);
        }
        return IsValidPlainFilter(filter);
    }

    private static bool IsValidPlainFilter(string filter)
    {
        if (filter.Length == 0)
        {
            return false;
        }
        var levelStart = 0;
        for (var i = 0; i <= filter.Length; i++)
        {
            if (i < filter.Length && filter[i] != '/')
            {
                continue;
            }
            var level = filter.AsSpan(levelStart, i - levelStart);
            if (level.IndexOfAny('+', '#') >= 0)
            {
                if (level.Length != 1)
                {
                    return false;
                }
                if (level[0] == '#' && i != filter.Length)
                {
                    return false;
                }
            }
            levelStart = i + 1;
        }
        return true;
    }

    /// <summary>Splits <c>$share/{group}/{filter}</c>; false when the filter is not a well-formed shared filter.</summary>
    public static bool TryParseShared(string filter, out string group, out string innerFilter)
    {
        group = "";
        innerFilter = "";
        if (!filter.StartsWith(SharePrefix, StringComparison.Ordinal))
        {
            return false;
        }
        var rest = filter.AsSpan(SharePrefix.Length);
        var slash = rest.IndexOf('/');
        if (slash <= 0)
        {
            return false;
        }
        var g = rest[..slash];
        if (g.IndexOfAny('+', '#') >= 0)
        {
            return false;
        }
        group = g.ToString();
        innerFilter = rest[(slash + 1)..].ToString();
        return innerFilter.Length > 0;
    }

    /// <summary>True when <paramref name="topic"/> matches the plain (non-shared) <paramref name="filter"/>.</summary>
    public static bool Matches(string filter, string topic)
    {
        // Topics starting with '$' are not matched by a filter starting with a wildcard (§4.7.2).
        if (topic.Length > 0 && topic[0] == '$' && filter.Length > 0 && (filter[0] == '+' || filter[0] == '#'))
        {
            return false;
        }
        int f = 0, t = 0;
        while (true)
        {
            var fEnd = filter.IndexOf('/', f);
            if (fEnd < 0)
            {
                fEnd = filter.Length;
            }
            var fLevel = filter.AsSpan(f, fEnd - f);
            if (fLevel.Length == 1 && fLevel[0] == '#')
            {
                return true;
            }
            if (t > topic.Length)
            {
                return false;
            }
            var tEnd = topic.IndexOf('/', t);
            if (tEnd < 0)
            {
                tEnd = topic.Length;
            }
            var tLevel = topic.AsSpan(t, tEnd - t);
            if (!(fLevel.Length == 1 && fLevel[0] == '+') && !fLevel.SequenceEqual(tLevel))
            {
                return false;
            }
            var fDone = fEnd == filter.Length;
            var tDone = tEnd == topic.Length;
            if (fDone && tDone)
            {
                return true;
            }
            if (fDone)
            {
                return false;
            }
            if (tDone)
            {
                // "a/#" also matches "a": the remaining filter must be exactly "#".
                return filter.AsSpan(fEnd + 1).SequenceEqual("#");
            }
            f = fEnd + 1;
            t = tEnd + 1;
        }
    }
}
