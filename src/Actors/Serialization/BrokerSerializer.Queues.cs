namespace Broker.Actors.Serialization;

/// <summary>Manifests and layouts of the AMQP queue messages and events (manifests start with "Q:").</summary>
public sealed partial class BrokerSerializer
{
    private static string? QueueManifest(object o) => o switch
    {
        _ => null,
    };

    private bool WriteQueueMessage(BinaryWriter w, object obj)
    {
        switch (obj)
        {
            default:
                return false;
        }
    }

    private object? ReadQueueMessage(BinaryReader r, string manifest) => manifest switch
    {
        _ => null,
    };
}
