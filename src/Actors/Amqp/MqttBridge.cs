using System.Globalization;
using System.Text;
using Broker.Actors.Amqp.Content;
using Akka.Actor;
using Broker.Actors.Messages;
using Broker.Actors.Routing;

namespace Broker.Actors.Amqp;

/// <summary>
/// RabbitMQ's MQTT convention: an MQTT topic is a routing key on exchange <c>amq.topic</c> with the
/// separators swapped (<c>/</c> ↔ <c>.</c>), and MQTT wildcards <c>+</c>/<c>#</c> are AMQP's <c>*</c>/<c>#</c>.
/// QoS 1 and 2 are persistent messages, QoS 0 transient; user properties are headers; content type,
/// correlation data, response topic and expiry map to the AMQP properties of the same meaning.
/// See docs/amqp.md.
/// </summary>
public static class MqttBridge
{
    public const string Exchange = "amq.topic";

    /// <summary>The header that keeps an MQTT 5 payload format indicator of 1 (UTF-8) across the bridge.</summary>
    private const string PayloadFormatHeader = "x-mqtt-payload-format";

    /// <summary>Swaps <c>/</c> and <c>.</c>, so the mapping is its own inverse and no topic is lost.</summary>
    public static string Swap(string s)
    {
        if (s.AsSpan().IndexOfAny('/', '.') < 0)
        {
            return s;
        }
        return string.Create(s.Length, s, static (span, src) =>
        {
            for (var i = 0; i < src.Length; i++)
            {
                span[i] = src[i] switch
                {
                    '/' => '.',
                    '.' => '/',
                    var c => c,
                };
            }
        });
    }

    public static string TopicToRoutingKey(string topic) => Swap(topic);

    /// <summary>The MQTT topic of a routing key, or null when it cannot be one (empty, or holding a wildcard).</summary>
    public static string? RoutingKeyToTopic(string routingKey)
    {
        if (routingKey.Length == 0 || routingKey.AsSpan().IndexOfAny('+', '#') >= 0 || routingKey.Contains('\0', StringComparison.Ordinal))
        {
            return null;
        }
        return Swap(routingKey);
    }

    /// <summary>An MQTT publish as a message on <c>amq.topic</c>.</summary>
    public static AmqpMessage ToAmqp(PublishedMessage m, long nowUnixMs)
    {
        List<KeyValuePair<string, object?>>? headers = null;
        if (m.UserProperties is { Count: > 0 } props)
        {
            headers = new List<KeyValuePair<string, object?>>(props.Count);
            foreach (var p in props)
            {
                headers.Add(new(p.Name, Encoding.UTF8.GetBytes(p.Value)));
            }
        }
        if (m.PayloadFormat == 1)
        {
            (headers ??= []).Add(new(PayloadFormatHeader, (byte)1));
        }
        string? correlationId = null;
        if (m.CorrelationData is { } data)
        {
            correlationId = data.Length <= 255 && IsUtf8(data) ? Encoding.UTF8.GetString(data) : null;
            if (correlationId is null)
            {
                (headers ??= []).Add(new("x-correlation-data", new AmqpBinary(data)));
            }
        }
        var expiration = m.ExpiresAtUnixMs != 0 ? Math.Max(0, m.ExpiresAtUnixMs - nowUnixMs).ToString(CultureInfo.InvariantCulture) : null;
        var properties = new BasicProperties
        {
            ContentType = m.ContentType,
            Headers = headers is null ? null : new FieldTable(headers),
            DeliveryMode = m.Qos > 0 ? (byte)2 : (byte)1,
            CorrelationId = correlationId,
            ReplyTo = m.ResponseTopic is { } rt ? Swap(rt) : null,
            Expiration = expiration,
        };
        return new AmqpMessage(Exchange, TopicToRoutingKey(m.Topic), BasicPropertiesCodec.Write(properties), m.Payload, m.Qos > 0, m.ExpiresAtUnixMs, m.Id);
    }

    /// <summary>
    /// A message published to <c>amq.topic</c> as an MQTT publish, or null when its routing key is no MQTT topic,
    /// or one beyond the MQTT topic bounds (<c>broker.mqtt.max-topic-length</c> / <c>max-topic-levels</c>), which an
    /// MQTT client could not publish to either.
    /// </summary>
    public static PublishedMessage? ToMqtt(string routingKey, byte[] rawProperties, byte[] body, long expiresAtUnixMs, long id, int maxTopicLength, int maxTopicLevels)
    {
        var topic = RoutingKeyToTopic(routingKey);
        if (topic is null || !TopicFilter.WithinBounds(topic, maxTopicLength, maxTopicLevels))
        {
            return null;
        }
        var p = BasicPropertiesCodec.Read(rawProperties);
        List<UserProperty>? user = null;
        byte payloadFormat = 0;
        byte[]? correlation = p.CorrelationId is { } cid ? Encoding.UTF8.GetBytes(cid) : null;
        if (p.Headers is { } headers)
        {
            foreach (var (name, value) in headers)
            {
                if (name == PayloadFormatHeader)
                {
                    payloadFormat = value is byte b and 1 ? b : (byte)0;
                    continue;
                }
                if (name == "x-correlation-data" && value is AmqpBinary bin && correlation is null)
                {
                    correlation = bin.Bytes;
                    continue;
                }
                if (ValueText(value) is { } text)
                {
                    (user ??= []).Add(new UserProperty(name, text));
                }
            }
        }
        var persistent = p.DeliveryMode == 2;
        return new PublishedMessage(
            topic,
            body,
            persistent ? (byte)1 : (byte)0,
            Retain: false,
            ContentType: p.ContentType,
            ResponseTopic: p.ReplyTo is { Length: > 0 } replyTo ? Swap(replyTo) : null,
            CorrelationData: correlation,
            PayloadFormat: payloadFormat,
            ExpiresAtUnixMs: expiresAtUnixMs,
            UserProperties: user,
            Id: persistent ? id : 0);
    }

    /// <summary>Header values that read as text become user properties; tables, arrays and void do not.</summary>
    private static string? ValueText(object? value) => value switch
    {
        byte[] bytes => Encoding.UTF8.GetString(bytes),
        string s => s,
        bool b => b ? "true" : "false",
        AmqpBinary bin => Convert.ToBase64String(bin.Bytes),
        AmqpTimestamp t => t.UnixSeconds.ToString(CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => null,
    };

    private static bool IsUtf8(byte[] data)
    {
        try
        {
            _ = new UTF8Encoding(false, true).GetCharCount(data);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }
}

/// <summary>
/// Sends MQTT publishes on to the AMQP queues bound (directly or through exchange bindings) to
/// <c>amq.topic</c>. Shared by every connection on a node, so it keeps no per-call state.
/// </summary>
public sealed class AmqpTopicRouter(Topology.AmqpTopology topology, Func<IActorRef> queueRegion)
{
    /// <summary>Enqueues the message in every matching queue; returns how many. A queue answers <see cref="Enqueued"/> to <paramref name="sender"/> when <paramref name="confirm"/>.</summary>
    public int Route(PublishedMessage message, bool confirm, IActorRef sender, Dictionary<Routing.DeliveryTarget, object>? sent, ISet<Routing.DeliveryTarget>? targets = null)
    {
        var view = topology.View;
        if (!view.HasBindings(MqttBridge.Exchange))
        {
            return 0;
        }
        var amqp = MqttBridge.ToAmqp(message, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var queues = new HashSet<string>(StringComparer.Ordinal);
        view.Route(MqttBridge.Exchange, amqp.RoutingKey, amqp.Properties, queues);
        if (queues.Count == 0)
        {
            return 0;
        }
        var region = queueRegion();
        foreach (var queue in queues)
        {
            var enqueue = new Enqueue(queue, amqp, confirm);
            region.Tell(enqueue, sender);
            sent?.Add(Routing.DeliveryTarget.Queue(queue), enqueue);
            targets?.Add(Routing.DeliveryTarget.Queue(queue));
        }
        return queues.Count;
    }

    /// <summary>Sends a flow probe to a queue, after what was enqueued there before it.</summary>
    public void Probe(string queue, long id, IActorRef sender) => queueRegion().Tell(new QueueFlowProbe(queue, id), sender);

    public void Resend(Enqueue enqueue, IActorRef sender) => queueRegion().Tell(enqueue, sender);
}
