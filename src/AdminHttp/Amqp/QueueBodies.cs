using System.Text.Json.Serialization;

namespace Broker.AdminHttp.Amqp;

/// <summary>
/// One AMQP queue: its definition, its counts now, and <c>node</c>, where its entity runs. Counts are 0 and node is
/// <c>""</c> when the queue did not answer in time (it is then named in <c>unreachable_queues</c>).
/// </summary>
public sealed record QueueBody(
    string Name,
    bool Durable,
    bool Exclusive,
    bool AutoDelete,
    int MessagesReady,
    int MessagesUnacknowledged,
    int Consumers,
    string Node);

/// <summary>A page of queues; <c>unreachable_queues</c> only when some queue did not answer.</summary>
public sealed record QueuesPageBody(
    IReadOnlyList<QueueBody> Queues,
    string NextPageToken,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? UnreachableQueues);
