using MQTTnet.Formatter;

namespace Broker.Edge.Mqtt;

/// <summary>
/// MQTTnet packet formatters, one per protocol version per thread. A formatter holds several KiB of
/// buffers; sharing them per thread instead of owning them per connection keeps an idle connection
/// small. Safe because every encode and decode runs to completion on one thread without awaiting, and
/// the caller copies an encoded packet out (or decodes from its own array) before the next use.
/// </summary>
internal static class MqttCodec
{
    [ThreadStatic]
    private static MqttPacketFormatterAdapter?[]? _formatters;

    public static MqttPacketFormatterAdapter For(MqttProtocolVersion version)
    {
        var formatters = _formatters ??= new MqttPacketFormatterAdapter?[6];
        return formatters[(int)version] ??= new MqttPacketFormatterAdapter(version, new MqttBufferWriter(4096, 65536));
    }

    public static MqttProtocolVersion VersionOf(byte level) => level switch
    {
        3 => MqttProtocolVersion.V310,
        4 => MqttProtocolVersion.V311,
        5 => MqttProtocolVersion.V500,
        _ => MqttProtocolVersion.Unknown,
    };
}
