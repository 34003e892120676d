namespace Broker.Actors.Serialization;

/// <summary>Manifests and layouts of the AMQP topology messages and events (manifests start with "T:").</summary>
public sealed partial class BrokerSerializer
{
    private static string? TopologyManifest(object o) => o switch
    {
        _ => null,
    };

    private bool WriteTopologyMessage(BinaryWriter w, object obj)
    {
        switch (obj)
        {
            default:
                return false;
        }
    }

    private object? ReadTopologyMessage(BinaryReader r, string manifest) => manifest switch
    {
        _ => null,
    };
}
