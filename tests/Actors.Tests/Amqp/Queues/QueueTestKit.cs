using System.Collections.Concurrent;
using System.Text;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Queues;
using Microsoft.Data.Sqlite;

namespace Broker.Actors.Tests.Amqp.Queues;

/// <summary>Dead-lettered messages as the queue hands them over, in order.</summary>
public sealed class RecordingDeadLetters : IDeadLetterPublisher
{
    public ConcurrentQueue<(string Body, string Queue, string Reason, string Exchange, string RoutingKey)> Published { get; } = new();

    public void Publish(AmqpMessage original, string queue, string reason, string exchange, string routingKey) =>
        Published.Enqueue((Encoding.UTF8.GetString(original.Body), queue, reason, exchange, routingKey));
}

/// <summary>Stands in for the queue region: hands a queue command to the entity of that name started by the test kit.</summary>
public sealed class TestQueueRegion : ReceiveActor
{
    public TestQueueRegion(ConcurrentDictionary<string, IActorRef> entities) =>
        Receive<IQueueCommand>(c =>
        {
            if (entities.TryGetValue(c.Queue, out var entity))
            {
                entity.Forward(c);
            }
        });
}

/// <summary>
/// An actor system journaling to a fresh SQLite file (as the node does for sqlite), a probe standing in for the
/// topology owner, and helpers that talk to a queue entity the way an AMQP channel does. Each queue is started
/// as the child of its own probe, which receives its <see cref="Akka.Cluster.Sharding.Passivate"/> like a shard would.
/// </summary>
public abstract class QueueTestKit : Akka.TestKit.Xunit2.TestKit
{
    protected static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly SqliteJournalFolder _db;
    private readonly ConcurrentDictionary<string, IActorRef> _entities = new();

    protected QueueTestKit() : this(new SqliteJournalFolder("queue-test"))
    {
    }

    private QueueTestKit(SqliteJournalFolder db) : base(db.SystemConfig())
    {
        _db = db;
        Owner = CreateTestProbe("topology-owner");
        Region = Sys.ActorOf(Props.Create(() => new TestQueueRegion(_entities)), "queue-region");
    }

    /// <summary>Where a queue sends what goes through a connection's region (<see cref="ConnectionDrained"/>): by default one that hands it back to the entity.</summary>
    protected ICanTell Region { get; set; }

    protected TestProbe Owner { get; }

    protected RecordingDeadLetters DeadLetters { get; } = new();

    protected QueueSettings Settings { get; set; } = QueueSettings.Default;

    protected string ConnectionString => _db.ConnectionString;

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        _db.Dispose();
    }

    protected static QueueDefinition Definition(string name, bool durable = false, bool autoDelete = false, string? exclusiveOwner = null, QueueArguments? arguments = null) =>
        new(name, durable, autoDelete, exclusiveOwner, arguments ?? QueueArguments.None);

    protected static AmqpMessage Msg(string body, bool persistent = false, long id = 0, long expiresAt = 0) =>
        new("amq.direct", "rk", [0x00, 0x00], Encoding.UTF8.GetBytes(body), persistent, expiresAt, id);

    protected static string Body(QueueDelivery d) => Encoding.UTF8.GetString(d.Message.Body);

    protected static ChannelRef Channel(TestProbe connection, ushort channel = 1) => new(connection.Ref, channel);

    /// <summary>Starts the queue entity as the child of a new probe (its shard).</summary>
    protected async Task<(IActorRef Queue, TestProbe Shard)> Start(string name)
    {
        var shard = CreateTestProbe();
        var queue = await shard.ChildActorOfAsync(QueueActor.Props(Settings, Owner.Ref, DeadLetters, _ => Region), name);
        _entities[name] = queue;
        return (queue, shard);
    }

    /// <summary>Starts the queue entity and declares it.</summary>
    protected async Task<IActorRef> Declared(QueueDefinition definition)
    {
        var (queue, _) = await Start(definition.Name);
        var probe = CreateTestProbe();
        queue.Tell(new EnsureQueue(definition), probe.Ref);
        await probe.ExpectMsgAsync<QueueReady>(Timeout);
        return queue;
    }

    /// <summary>Stops the entity the way its shard does on hand-off, and waits until it is gone.</summary>
    protected async Task Stop(IActorRef queue)
    {
        var watcher = CreateTestProbe();
        watcher.Watch(queue);
        queue.Tell(QueueHandOff.Instance);
        await watcher.ExpectTerminatedAsync(queue, Timeout);
    }

    /// <summary>
    /// Declares again from <paramref name="from"/> and returns the answer. Everything the queue sent to that probe
    /// before (deliveries) arrives ahead of it, so the probe having nothing else pending proves nothing more was sent.
    /// </summary>
    protected static async Task<QueueReady> Sync(IActorRef queue, QueueDefinition definition, TestProbe from)
    {
        queue.Tell(new EnsureQueue(definition), from.Ref);
        return await from.ExpectMsgAsync<QueueReady>(Timeout);
    }

    protected static async Task Publish(IActorRef queue, string name, TestProbe publisher, params AmqpMessage[] messages)
    {
        foreach (var m in messages)
        {
            queue.Tell(new Enqueue(name, m, Confirm: true), publisher.Ref);
        }
        foreach (var m in messages)
        {
            Assert.Equal(m.Id, (await publisher.ExpectMsgAsync<Enqueued>(Timeout)).MessageId);
        }
    }

    protected static async Task Consume(IActorRef queue, string name, TestProbe connection, string tag, ushort prefetch = 0, bool noAck = false, ushort channel = 1)
    {
        queue.Tell(new Consume(name, Channel(connection, channel), tag, noAck, prefetch, false, "conn-" + connection.Ref.Path.Name), connection.Ref);
        Assert.Equal(tag, (await connection.ExpectMsgAsync<ConsumeOk>(Timeout)).ConsumerTag);
    }

    protected static async Task<QueueDelivery> Next(TestProbe connection) => await connection.ExpectMsgAsync<QueueDelivery>(Timeout);

    protected static async Task<string[]> Bodies(TestProbe connection, int count)
    {
        var bodies = new string[count];
        for (var i = 0; i < count; i++)
        {
            bodies[i] = Body(await Next(connection));
        }
        return bodies;
    }

    /// <summary>Live journal events of an entity, optionally of one manifest (the journal keeps the last deleted row, marked deleted).</summary>
    protected Task<long> CountEvents(string persistenceId, string? manifest = null) =>
        Count("SELECT COUNT(*) FROM event_journal WHERE persistence_id = $id AND is_deleted = 0", persistenceId, manifest);

    protected Task<long> CountSnapshots(string persistenceId) => Count("SELECT COUNT(*) FROM snapshot WHERE persistence_id = $id", persistenceId, null);

    private async Task<long> Count(string sql, string persistenceId, string? manifest)
    {
        await using var db = new SqliteConnection(ConnectionString);
        await db.OpenAsync();
        await using var cmd = db.CreateCommand();
        cmd.CommandText = sql + (manifest is null ? "" : " AND manifest = $manifest");
        cmd.Parameters.AddWithValue("$id", persistenceId);
        if (manifest is not null)
        {
            cmd.Parameters.AddWithValue("$manifest", manifest);
        }
        return (long)(await cmd.ExecuteScalarAsync())!;
    }
}
