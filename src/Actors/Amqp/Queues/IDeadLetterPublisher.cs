namespace Broker.Actors.Amqp.Queues;

/// <summary>
/// Re-publishes a message a queue dead-letters (<paramref name="reason"/>: "rejected", "expired" or "maxlen")
/// through <paramref name="exchange"/> with <paramref name="routingKey"/>, adding the <c>x-death</c> header
/// for <paramref name="queue"/>. Called on the queue actor's thread: it must not block.
/// </summary>
public interface IDeadLetterPublisher
{
    void Publish(AmqpMessage original, string queue, string reason, string exchange, string routingKey);
}
