using System.Globalization;
using Akka.Configuration;
using Akka.Configuration.Hocon;

namespace Broker.Actors.Configuration;

/// <summary>
/// Reads the keys of the <c>broker</c> section into typed values, checking each one: a value of the wrong kind or out of
/// its range is a <see cref="ConfigurationException"/> that names the key (and the environment variable that sets it),
/// so a node with a wrong setting stops at start with that message instead of failing later or running on a default.
/// Remembers every key it read, so what the file holds but nothing reads (a misspelt key) is found.
/// </summary>
public sealed class SettingsReader
{
    private readonly Config _broker;
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    public SettingsReader(Config config)
    {
        _broker = config.GetConfig("broker") ?? throw new ConfigurationException("the configuration has no 'broker' section");
    }

    /// <summary>The keys read so far, relative to the broker section (e.g. "mqtt.max-inflight").</summary>
    public IReadOnlyCollection<string> KeysRead => _read;

    /// <summary>Every leaf key the broker section holds, relative to it.</summary>
    public IReadOnlyList<string> KeysPresent()
    {
        var keys = new List<string>();
        Collect(_broker.Root, "", keys);
        return keys;
    }

    /// <summary>Keys the section holds that nothing read (call after every reader of the section ran).</summary>
    public IReadOnlyList<string> KeysNotRead() => KeysPresent().Where(k => !_read.Contains(k)).ToList();

    public string String(string key, string fallback) => Read(key, fallback, "a string", (c, k) => c.GetString(k) ?? fallback);

    public bool Bool(string key, bool fallback) => Read(key, fallback, "true or false", (c, k) => c.GetBoolean(k));

    public long Long(string key, long fallback, long min = long.MinValue, long max = long.MaxValue)
    {
        var value = Read(key, fallback, "a whole number", (c, k) => c.GetLong(k));
        return value >= min && value <= max ? value : throw Invalid(key, $"must be between {min} and {max}, not {value}");
    }

    public int Int(string key, int fallback, int min = int.MinValue, int max = int.MaxValue) => (int)Long(key, fallback, min, max);

    public double Double(string key, double fallback, double min, double max)
    {
        var value = Read(key, fallback, "a number", (c, k) => c.GetDouble(k));
        return !double.IsNaN(value) && value >= min && value <= max ? value : throw Invalid(key, $"must be between {min} and {max}, not {value}");
    }

    /// <summary>A duration such as 10s or 500ms, at least <paramref name="min"/>.</summary>
    public TimeSpan Duration(string key, TimeSpan fallback, TimeSpan min)
    {
        var value = Read(key, fallback, "a duration such as 10s or 500ms", (c, k) => c.GetTimeSpan(k, fallback, allowInfinite: false));
        return value >= min ? value : throw Invalid(key, $"must be at least {Format(min)}, not {Format(value)}");
    }

    /// <summary>One of <paramref name="allowed"/> (compared without case), returned in lower case.</summary>
    public string Choice(string key, string fallback, params string[] allowed)
    {
        var value = String(key, fallback).ToLowerInvariant();
        return allowed.Contains(value) ? value : throw Invalid(key, $"must be {string.Join(", ", allowed[..^1])} or {allowed[^1]}, not '{value}'");
    }

    /// <summary>A TCP port; 0 means the listener is off (or, where so documented, a free port).</summary>
    public int Port(string key, int fallback, bool freePortAllowed = false)
    {
        var value = Long(key, fallback);
        return value is >= 0 and <= 65535 || (freePortAllowed && value == -1)
            ? (int)value
            : throw Invalid(key, freePortAllowed ? $"must be 0 (off), -1 (a free port) or a port, not {value}" : $"must be a port (0 to 65535), not {value}");
    }

    /// <summary>The error for <paramref name="key"/>: its full name, the environment variable that sets it, and why.</summary>
    public static ConfigurationException Invalid(string key, string why)
    {
        var variable = BrokerEnvironment.VariableOf("broker." + key);
        return new ConfigurationException($"broker.{key}{(variable is null ? "" : $" ({variable})")} {why}");
    }

    private T Read<T>(string key, T fallback, string kind, Func<Config, string, T> get)
    {
        _read.Add(key);
        if (!_broker.HasPath(key))
        {
            return fallback;
        }
        try
        {
            return get(_broker, key);
        }
        catch (Exception)
        {
            throw Invalid(key, $"must be {kind}, not '{Raw(key)}'");
        }
    }

    private string Raw(string key)
    {
        try
        {
            return _broker.GetValue(key)?.ToString() ?? "";
        }
        catch (Exception)
        {
            return "?";
        }
    }

    private static string Format(TimeSpan t) => t.TotalMilliseconds.ToString(CultureInfo.InvariantCulture) + "ms";

    private static void Collect(HoconValue value, string prefix, List<string> keys)
    {
        if (value.IsObject())
        {
            foreach (var (name, child) in value.GetObject().Items)
            {
                Collect(child, prefix.Length == 0 ? name : prefix + "." + name, keys);
            }
        }
        else if (prefix.Length > 0)
        {
            keys.Add(prefix);
        }
    }
}
