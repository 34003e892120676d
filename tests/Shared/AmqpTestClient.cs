using System.Collections.Concurrent;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Broker.Tests.Shared;

/// <summary>RabbitMQ.Client 7 connections to a node, and a consumer that records deliveries with bounded waits.</summary>
public static class AmqpTestClient
{
    public static Task<IConnection> ConnectAsync(int port, string? name = null, string user = "guest", string password = "guest", string vhost = "/", ushort heartbeatSeconds = 0)
    {
        var factory = new ConnectionFactory
        {
            HostName = "127.0.0.1",
            Port = port,
            UserName = user,
            Password = password,
            VirtualHost = vhost,
            ClientProvidedName = name,
            AutomaticRecoveryEnabled = false,
            TopologyRecoveryEnabled = false,
            RequestedHeartbeat = TimeSpan.FromSeconds(heartbeatSeconds),
            ContinuationTimeout = TimeSpan.FromSeconds(20),
            HandshakeContinuationTimeout = TimeSpan.FromSeconds(20),
        };
        return factory.CreateConnectionAsync();
    }

    /// <summary>A channel with publisher confirms: each BasicPublishAsync returns once the broker acknowledged it.</summary>
    public static Task<IChannel> ConfirmChannelAsync(this IConnection connection) =>
        connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));

    public static ValueTask PublishTextAsync(this IChannel channel, string exchange, string routingKey, string body, bool persistent = false, bool mandatory = false)
    {
        var props = new BasicProperties { DeliveryMode = persistent ? DeliveryModes.Persistent : DeliveryModes.Transient };
        return channel.BasicPublishAsync(exchange, routingKey, mandatory, props, System.Text.Encoding.UTF8.GetBytes(body));
    }
}

/// <summary>Records every delivery of one consumer; waits are bounded.</summary>
public sealed class RecordingConsumer : AsyncDefaultBasicConsumer
{
    private readonly BlockingCollection<Delivery> _deliveries = new();
    private readonly TaskCompletionSource<string> _cancelled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public RecordingConsumer(IChannel channel) : base(channel)
    {
    }

    public sealed record Delivery(ulong Tag, bool Redelivered, string Exchange, string RoutingKey, IReadOnlyBasicProperties Properties, byte[] Body)
    {
        public string Text => System.Text.Encoding.UTF8.GetString(Body);
    }

    public int Count => _deliveries.Count;

    /// <summary>Completes when the broker cancels this consumer (basic.cancel from the server).</summary>
    public Task<string> Cancelled => _cancelled.Task;

    public override Task HandleBasicDeliverAsync(string consumerTag, ulong deliveryTag, bool redelivered, string exchange, string routingKey,
        IReadOnlyBasicProperties properties, ReadOnlyMemory<byte> body, CancellationToken cancellationToken = default)
    {
        _deliveries.Add(new Delivery(deliveryTag, redelivered, exchange, routingKey, properties, body.ToArray()), cancellationToken);
        return Task.CompletedTask;
    }

    protected override Task OnCancelAsync(string[] consumerTags, CancellationToken cancellationToken = default)
    {
        _cancelled.TrySetResult(consumerTags.FirstOrDefault() ?? "");
        return Task.CompletedTask;
    }

    public Delivery Next(TimeSpan? timeout = null) =>
        _deliveries.TryTake(out var d, timeout ?? TimeSpan.FromSeconds(10)) ? d : throw new TimeoutException("no delivery in time");

    /// <summary>Asserts nothing more arrives within <paramref name="window"/> (used only to check absence).</summary>
    public void ExpectNothing(TimeSpan window)
    {
        if (_deliveries.TryTake(out var d, window))
        {
            throw new InvalidOperationException($"unexpected delivery {d.Tag}: {d.Text}");
        }
    }
}
