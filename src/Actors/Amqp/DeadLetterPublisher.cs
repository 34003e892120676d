using System.Text;
using Akka.Actor;
using Broker.Actors.Amqp.Content;
using Broker.Actors.Amqp.Queues;
using Broker.Actors.Amqp.Topology;

namespace Broker.Actors.Amqp;

/// <summary>
/// Dead-letters through the node's topology replica: the message gets an <c>x-death</c> entry (as RabbitMQ
/// writes it: queue, reason, count, time, exchange, routing keys; repeated deaths for the same queue and
/// reason count up) and is enqueued in every queue the dead-letter exchange routes it to.
/// </summary>
public sealed class DeadLetterPublisher(AmqpTopology topology, Func<IActorRef> queueRegion) : IDeadLetterPublisher
{
    public void Publish(AmqpMessage original, string queue, string reason, string exchange, string routingKey)
    {
        var properties = BasicPropertiesCodec.Read(original.Properties);
        var headers = new List<KeyValuePair<string, object?>>();
        object?[] deaths = [];
        if (properties.Headers is { } existing)
        {
            foreach (var header in existing)
            {
                if (header.Key == "x-death" && header.Value is object?[] previous)
                {
                    deaths = previous;
                    continue;
                }
                headers.Add(header);
            }
        }
        headers.Add(new("x-death", AddDeath(deaths, original, queue, reason)));
        if (!headers.Exists(h => h.Key == "x-first-death-queue"))
        {
            headers.Add(new("x-first-death-queue", Encoding.UTF8.GetBytes(queue)));
            headers.Add(new("x-first-death-reason", Encoding.UTF8.GetBytes(reason)));
            headers.Add(new("x-first-death-exchange", Encoding.UTF8.GetBytes(original.Exchange)));
        }
        // An expired message must not expire again in its new queue because of the old per-message TTL.
        var rewritten = properties with { Headers = new FieldTable(headers), Expiration = reason == "expired" ? null : properties.Expiration };
        var message = original with
        {
            Exchange = exchange,
            RoutingKey = routingKey,
            Properties = BasicPropertiesCodec.Write(rewritten),
            ExpiresAtUnixMs = reason == "expired" ? 0 : original.ExpiresAtUnixMs,
            Id = original.Id == 0 ? 0 : Random.Shared.NextInt64(1, long.MaxValue),
        };
        var queues = new HashSet<string>(StringComparer.Ordinal);
        topology.View.Route(exchange, routingKey, message.Properties, queues);
        // A queue never dead-letters into itself with the same reason forever: RabbitMQ drops such cycles too.
        queues.Remove(queue);
        var region = queueRegion();
        foreach (var target in queues)
        {
            region.Tell(new Enqueue(target, message, Confirm: false));
        }
    }

    private static object?[] AddDeath(object?[] deaths, AmqpMessage original, string queue, string reason)
    {
        for (var i = 0; i < deaths.Length; i++)
        {
            if (deaths[i] is FieldTable entry && Text(entry, "queue") == queue && Text(entry, "reason") == reason)
            {
                var count = entry.TryGet("count", out var c) && c is long n ? n + 1 : 1;
                var updated = new List<KeyValuePair<string, object?>>();
                foreach (var field in entry)
                {
                    updated.Add(field.Key == "count" ? new(field.Key, count) : field);
                }
                var result = new object?[deaths.Length];
                result[0] = new FieldTable(updated);
                Array.Copy(deaths, 0, result, 1, i);
                Array.Copy(deaths, i + 1, result, i + 1, deaths.Length - i - 1);
                return result;
            }
        }
        var death = new FieldTable([
            new("count", 1L),
            new("reason", Encoding.UTF8.GetBytes(reason)),
            new("queue", Encoding.UTF8.GetBytes(queue)),
            new("time", new AmqpTimestamp((ulong)DateTimeOffset.UtcNow.ToUnixTimeSeconds())),
            new("exchange", Encoding.UTF8.GetBytes(original.Exchange)),
            new("routing-keys", new object?[] { Encoding.UTF8.GetBytes(original.RoutingKey) }),
        ]);
        var all = new object?[deaths.Length + 1];
        all[0] = death;
        deaths.CopyTo(all, 1);
        return all;
    }

    private static string? Text(FieldTable table, string key) =>
        table.TryGet(key, out var value) && value is byte[] bytes ? Encoding.UTF8.GetString(bytes) : null;
}
