using Broker.Actors.Amqp.Content;

namespace Broker.Actors.Amqp.Topology;

/// <summary>
/// One publish being routed: collects destination queues, queues the exchanges reached through
/// exchange-to-exchange bindings (each visited once, so cycles end), and decodes the message headers
/// only if a headers exchange asks for them.
/// </summary>
internal sealed class RouteContext(string exchange, byte[] properties, HashSet<string> queues)
{
    private FieldTable? _headers;
    private bool _headersRead;
    private HashSet<string>? _visited;
    private Stack<string>? _pending;

    public FieldTable? Headers
    {
        get
        {
            if (!_headersRead)
            {
                _headersRead = true;
                _headers = ReadHeaders(properties);
            }
            return _headers;
        }
    }

    public void Hit(BindingDefinition binding)
    {
        if (!binding.ToExchange)
        {
            queues.Add(binding.Destination);
            return;
        }
        // Allocated only once a binding leads to another exchange: most publishes never need it.
        _visited ??= new HashSet<string>(StringComparer.Ordinal) { exchange };
        if (_visited.Add(binding.Destination))
        {
            (_pending ??= new Stack<string>()).Push(binding.Destination);
        }
    }

    public bool TryNext(out string next)
    {
        if (_pending is { Count: > 0 })
        {
            next = _pending.Pop();
            return true;
        }
        next = "";
        return false;
    }

    private static FieldTable? ReadHeaders(byte[] properties)
    {
        try
        {
            return BasicPropertiesCodec.ReadHeaders(properties);
        }
        catch (AmqpFormatException)
        {
            // Properties the publisher got wrong carry no headers to match; the message still goes where its key leads.
            return null;
        }
    }
}
