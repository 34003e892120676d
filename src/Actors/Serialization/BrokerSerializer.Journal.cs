using System.Globalization;
using System.Runtime.Serialization;
using Akka.Configuration;
using Broker.Actors.Messages;

namespace Broker.Actors.Serialization;

/// <summary>
/// The journal format. A persisted type (<see cref="IPersisted"/>) is stored under its type manifest, a dot and the
/// format that wrote it ("E4.1"); the SQL journal and snapshot store keep the manifest beside the bytes. A manifest
/// without a version is format 0, written by every build before formats were numbered, so their journals read as they
/// are. Messages that only cross nodes keep the bare type manifest: no later build reads them.
/// <code>
///   manifest   "E4"      "E4.1"     "E4.2"
///   format      0         1          2 (a later build)
///   here       read      read       refused: SerializationException naming "E4.2" and format 2
/// </code>
/// </summary>
public sealed partial class BrokerSerializer
{
    /// <summary>The newest journal format this build reads, and the one it writes unless <c>broker.persistence.format-version</c> says an older one.</summary>
    public const int JournalFormat = 1;

    /// <summary>Manifests of types never contain it, so the first one separates the type from the format.</summary>
    private const char FormatSeparator = '.';

    private const string FormatVersionKey = "broker.persistence.format-version";

    public override string Manifest(object o)
    {
        var type = TypeManifest(o);
        return o is IPersisted && _writeFormat > 0 ? type + FormatSeparator + _writeFormat.ToString(CultureInfo.InvariantCulture) : type;
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        var (type, format) = SplitManifest(manifest);
        using var ms = new MemoryStream(bytes, writable: false);
        using var r = new BinaryReader(ms, System.Text.Encoding.UTF8);
        // One branch per format ever written, kept forever. Format 1 only named the version: its layout is format 0's,
        // byte for byte. A format that changes a type's layout gets a branch that reads the older layouts of that type.
        return format switch
        {
            0 or 1 => Read(r, type),
            _ => throw new SerializationException(
                $"manifest '{manifest}': journal format {format} was written by a newer build; this node reads formats 0 to {JournalFormat}. " +
                "Upgrade this node (see docs/architecture.md, Journal format and upgrades)."),
        };
    }

    private static (string Type, int Format) SplitManifest(string manifest)
    {
        var dot = manifest.IndexOf(FormatSeparator, StringComparison.Ordinal);
        if (dot < 0)
        {
            return (manifest, 0);
        }
        var version = manifest.AsSpan(dot + 1);
        if (version.Length == 0 || version.Length > 9 || version.ContainsAnyExceptInRange('0', '9') || version[0] == '0')
        {
            throw new SerializationException($"manifest '{manifest}': malformed journal format version");
        }
        return (manifest[..dot], int.Parse(version, NumberStyles.None, CultureInfo.InvariantCulture));
    }

    private static int WriteFormatFrom(Config config)
    {
        var format = config.GetInt(FormatVersionKey, JournalFormat);
        return format is >= 0 and <= JournalFormat
            ? format
            : throw new ConfigurationException($"{FormatVersionKey} is {format}; this build writes formats 0 to {JournalFormat}");
    }
}
