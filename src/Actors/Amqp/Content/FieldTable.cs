using System.Collections;
using System.Runtime.CompilerServices;

namespace Broker.Actors.Amqp.Content;

/// <summary>Field type 'D': <c>Value</c> × 10^-<c>Scale</c>.</summary>
public readonly record struct AmqpDecimal(byte Scale, int Value);

/// <summary>Field type 'T': seconds since the Unix epoch.</summary>
public readonly record struct AmqpTimestamp(ulong UnixSeconds);

/// <summary>
/// Field type 'x' (byte array), kept apart from 'S' (long string, read as a plain <c>byte[]</c>) so a value
/// is written back with the tag it arrived with. Equal when the bytes are equal.
/// </summary>
public sealed record AmqpBinary(byte[] Bytes)
{
    public bool Equals(AmqpBinary? other) => other is not null && Bytes.AsSpan().SequenceEqual(other.Bytes);

    public override int GetHashCode() => Bytes.Length;
}

/// <summary>
/// An AMQP field table: entries in wire order, duplicates kept, so that writing a table that was read gives
/// back the same bytes. Values are typed by their wire tag:
/// <code>
///  't' bool      'b' sbyte    'B' byte       's' short     'u' ushort     'I' int      'i' uint
///  'l' long      'f' float    'd' double     'D' AmqpDecimal               'S' byte[]   'T' AmqpTimestamp
///  'F' FieldTable             'A' IReadOnlyList&lt;object?&gt;                  'V' null     'x' AmqpBinary
/// </code>
/// A <c>string</c> value is accepted when writing and goes out as 'S' (UTF-8); it reads back as <c>byte[]</c>.
/// Two tables are equal when they hold the same keys in the same order with values of the same type and value.
/// </summary>
[CollectionBuilder(typeof(FieldTable), nameof(Create))]
public sealed class FieldTable : IReadOnlyList<KeyValuePair<string, object?>>, IEquatable<FieldTable>
{
    private readonly KeyValuePair<string, object?>[] _entries;

    public static FieldTable Empty { get; } = new([]);

    public FieldTable(IEnumerable<KeyValuePair<string, object?>> entries) => _entries = [.. entries];

    private FieldTable(KeyValuePair<string, object?>[] entries, bool _) => _entries = entries;

    public static FieldTable Create(ReadOnlySpan<KeyValuePair<string, object?>> entries) =>
        entries.IsEmpty ? Empty : new FieldTable(entries.ToArray(), true);

    /// <summary>Takes ownership of <paramref name="entries"/>; the reader hands over the array it filled.</summary>
    internal static FieldTable Wrap(KeyValuePair<string, object?>[] entries) => entries.Length == 0 ? Empty : new FieldTable(entries, true);

    public int Count => _entries.Length;

    public KeyValuePair<string, object?> this[int index] => _entries[index];

    /// <summary>The value of the first entry named <paramref name="key"/> (ordinal comparison).</summary>
    public bool TryGet(string key, out object? value)
    {
        foreach (var entry in _entries)
        {
            if (string.Equals(entry.Key, key, StringComparison.Ordinal))
            {
                value = entry.Value;
                return true;
            }
        }
        value = null;
        return false;
    }

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => ((IEnumerable<KeyValuePair<string, object?>>)_entries).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public bool Equals(FieldTable? other)
    {
        if (ReferenceEquals(this, other))
        {
            return true;
        }
        if (other is null || other._entries.Length != _entries.Length)
        {
            return false;
        }
        for (var i = 0; i < _entries.Length; i++)
        {
            if (!string.Equals(_entries[i].Key, other._entries[i].Key, StringComparison.Ordinal) ||
                !FieldValues.ExactlyEqual(_entries[i].Value, other._entries[i].Value))
            {
                return false;
            }
        }
        return true;
    }

    public override bool Equals(object? obj) => Equals(obj as FieldTable);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(_entries.Length);
        foreach (var entry in _entries)
        {
            hash.Add(entry.Key, StringComparer.Ordinal);
        }
        return hash.ToHashCode();
    }

    public override string ToString() => "{" + string.Join(", ", _entries.Select(e => e.Key + "=" + FieldValues.Describe(e.Value))) + "}";
}

internal static class FieldValues
{
    /// <summary>Same wire type and same value; byte arrays, tables and arrays by content.</summary>
    public static bool ExactlyEqual(object? a, object? b)
    {
        if (a is null || b is null)
        {
            return a is null && b is null;
        }
        if (a.GetType() != b.GetType() && !(a is IReadOnlyList<object?> && b is IReadOnlyList<object?>))
        {
            return false;
        }
        return (a, b) switch
        {
            (byte[] x, byte[] y) => x.AsSpan().SequenceEqual(y),
            (FieldTable x, FieldTable y) => x.Equals(y),
            (IReadOnlyList<object?> x, IReadOnlyList<object?> y) => ListsEqual(x, y, ExactlyEqual),
            _ => a.Equals(b),
        };
    }

    public static bool ListsEqual(IReadOnlyList<object?> x, IReadOnlyList<object?> y, Func<object?, object?, bool> equal)
    {
        if (x.Count != y.Count)
        {
            return false;
        }
        for (var i = 0; i < x.Count; i++)
        {
            if (!equal(x[i], y[i]))
            {
                return false;
            }
        }
        return true;
    }

    public static string Describe(object? value) => value switch
    {
        null => "void",
        byte[] bytes => "\"" + System.Text.Encoding.UTF8.GetString(bytes) + "\"",
        AmqpBinary binary => "0x" + Convert.ToHexString(binary.Bytes),
        IReadOnlyList<object?> list => "[" + string.Join(", ", list.Select(Describe)) + "]",
        _ => value.ToString() ?? "",
    };
}
