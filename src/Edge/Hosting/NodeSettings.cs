using Akka.Configuration;
using Broker.Actors.Configuration;
using Broker.Edge.Security;

namespace Broker.Edge.Hosting;

/// <summary>
/// Every setting of the broker section, read and checked once at start: the broker's own and the security ones. A key
/// the section holds that none of them reads is refused too, so a misspelt key stops the node instead of leaving the
/// setting it meant at its default.
/// </summary>
public sealed record NodeSettings(BrokerSettings Broker, SecuritySettings Security)
{
    public static NodeSettings Read(Config config)
    {
        var reader = new SettingsReader(config);
        var settings = new NodeSettings(BrokerSettings.From(reader), SecuritySettings.From(reader));
        if (reader.KeysNotRead() is { Count: > 0 } unknown)
        {
            throw new ConfigurationException(
                $"{string.Join(", ", unknown.Select(k => "broker." + k))} {(unknown.Count == 1 ? "is not a setting" : "are not settings")}; " +
                "cluster.hocon lists every setting with a comment");
        }
        return settings;
    }
}
