using Akka.Actor;
using Akka.Cluster.Sharding;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Queues;

namespace Broker.Actors.Tests.Amqp.Queues;

/// <summary>What a queue keeps in its SQLite journal, and what a new incarnation of the entity recovers from it.</summary>
public sealed class QueuePersistenceTests : QueueTestKit
{
    [Fact]
    public async Task A_persistent_message_in_a_durable_queue_survives_a_restart_as_redelivered_and_a_transient_one_does_not()
    {
        var def = Definition("durable", durable: true);
        var queue = await Declared(def);
        await Publish(queue, "durable", CreateTestProbe(), Msg("kept", persistent: true), Msg("lost"), Msg("kept too", persistent: true));

        await Stop(queue);
        var (again, _) = await Start("durable");
        var consumer = CreateTestProbe();
        await Consume(again, "durable", consumer, "c1");

        var first = await Next(consumer);
        var second = await Next(consumer);
        Assert.Equal([("kept", true), ("kept too", true)], new[] { (Body(first), first.Redelivered), (Body(second), second.Redelivered) });
        Assert.Equal(0u, (await Sync(again, def, consumer)).MessageCount);
    }

    [Fact]
    public async Task A_persistent_message_in_a_transient_queue_is_not_journaled_but_the_definition_is()
    {
        var def = Definition("transient");
        var queue = await Declared(def);
        await Publish(queue, "transient", CreateTestProbe(), Msg("gone", persistent: true));

        await Stop(queue);
        var (again, _) = await Start("transient");
        var consumer = CreateTestProbe();

        await Consume(again, "transient", consumer, "c1");
        Assert.Equal(0u, (await Sync(again, def, consumer)).MessageCount);
        Assert.Equal(1, await CountEvents("amqp-queue-transient"));
    }

    [Fact]
    public async Task A_confirm_is_sent_only_once_the_message_is_in_the_journal()
    {
        var queue = await Declared(Definition("confirmed", durable: true));
        var publisher = CreateTestProbe();

        for (var i = 1; i <= 20; i++)
        {
            queue.Tell(new Enqueue("confirmed", Msg("m" + i, persistent: true, id: i), Confirm: true), publisher.Ref);
            var confirmed = await publisher.ExpectMsgAsync<Enqueued>(Timeout);
            Assert.Equal(i, confirmed.MessageId);
            Assert.Equal(i, await CountEvents("amqp-queue-confirmed", "Q:2.1"));
        }
    }

    [Fact]
    public async Task Confirms_of_a_burst_come_in_publish_order_and_only_persistent_messages_are_recovered()
    {
        var queue = await Declared(Definition("burst", durable: true));
        var publisher = CreateTestProbe();

        for (var i = 1; i <= 300; i++)
        {
            queue.Tell(new Enqueue("burst", Msg("m" + i, persistent: i % 3 != 0, id: i), Confirm: true), publisher.Ref);
        }

        for (var i = 1; i <= 300; i++)
        {
            Assert.Equal(i, (await publisher.ExpectMsgAsync<Enqueued>(Timeout)).MessageId);
        }
        await Stop(queue);
        var (again, _) = await Start("burst");
        Assert.Equal(200u, (await Sync(again, Definition("burst", durable: true), publisher)).MessageCount);
    }

    [Fact]
    public async Task A_copy_sent_again_is_confirmed_but_queued_once_also_after_a_restart()
    {
        var def = Definition("dedupe", durable: true);
        var queue = await Declared(def);
        var publisher = CreateTestProbe();
        await Publish(queue, "dedupe", publisher, Msg("once", persistent: true, id: 42), Msg("once", persistent: true, id: 42));
        Assert.Equal(1u, (await Sync(queue, def, publisher)).MessageCount);

        await Stop(queue);
        var (again, _) = await Start("dedupe");
        await Publish(again, "dedupe", publisher, Msg("once", persistent: true, id: 42));

        Assert.Equal(1u, (await Sync(again, def, publisher)).MessageCount);
    }

    [Fact]
    public async Task A_copy_of_an_acknowledged_message_sent_again_is_not_queued_again()
    {
        var def = Definition("late-copy", durable: true);
        var queue = await Declared(def);
        var consumer = CreateTestProbe();
        await Consume(queue, "late-copy", consumer, "c1", prefetch: 1);
        var publisher = CreateTestProbe();
        await Publish(queue, "late-copy", publisher, Msg("x", persistent: true, id: 7));
        queue.Tell(new SettleMessages("late-copy", Channel(consumer), [(await Next(consumer)).Sequence], Settlement.Ack));

        await Publish(queue, "late-copy", publisher, Msg("x", persistent: true, id: 7));

        Assert.Equal(0u, (await Sync(queue, def, consumer)).MessageCount);
    }

    [Fact]
    public async Task Acknowledged_messages_do_not_come_back_after_a_restart()
    {
        var def = Definition("acked", durable: true);
        var queue = await Declared(def);
        var consumer = CreateTestProbe();
        await Publish(queue, "acked", CreateTestProbe(), Msg("1", persistent: true), Msg("2", persistent: true), Msg("3", persistent: true));
        await Consume(queue, "acked", consumer, "c1", prefetch: 3);
        var delivered = new[] { await Next(consumer), await Next(consumer), await Next(consumer) };
        queue.Tell(new SettleMessages("acked", Channel(consumer), [delivered[0].Sequence, delivered[2].Sequence], Settlement.Ack));
        await AwaitAssertAsync(async () => Assert.Equal(1, await CountEvents("amqp-queue-acked", "Q:3.1")), Timeout);

        await Stop(queue);
        var (again, _) = await Start("acked");
        var next = CreateTestProbe();
        await Consume(again, "acked", next, "c2");

        Assert.Equal(["2"], await Bodies(next, 1));
        Assert.Equal(0u, (await Sync(again, def, next)).MessageCount);
    }

    [Fact]
    public async Task A_snapshot_and_the_events_after_it_recover_the_content_in_order()
    {
        Settings = QueueSettings.Default with { SnapshotEvery = 5 };
        var def = Definition("snap", durable: true);
        var queue = await Declared(def);
        var publisher = CreateTestProbe();
        await Publish(queue, "snap", publisher, [.. Enumerable.Range(1, 20).Select(i => Msg(i.ToString(System.Globalization.CultureInfo.InvariantCulture), persistent: true, id: i))]);
        await AwaitAssertAsync(async () => Assert.Equal(1, await CountSnapshots("amqp-queue-snap")), Timeout);
        var getter = CreateTestProbe();
        for (var i = 0; i < 3; i++)
        {
            getter.Send(queue, new GetMessage("snap", Channel(getter), NoAck: true));
            await getter.ExpectMsgAsync<QueueDelivery>(Timeout);
        }
        // The snapshot covers the enqueues: their events are deleted.
        await AwaitAssertAsync(async () => Assert.Equal(0, await CountEvents("amqp-queue-snap", "Q:2.1")), Timeout);

        await Stop(queue);
        var (again, _) = await Start("snap");
        var consumer = CreateTestProbe();
        await Consume(again, "snap", consumer, "c1");

        var expected = Enumerable.Range(4, 17).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(expected, await Bodies(consumer, 17));
        // The recovered ids still recognise a copy sent again.
        await Publish(again, "snap", publisher, Msg("20", persistent: true, id: 20));
        Assert.Equal(0u, (await Sync(again, def, consumer)).MessageCount);
    }

    [Fact]
    public async Task A_deleted_queue_does_not_recover_its_old_content_when_declared_again()
    {
        var (queue, shard) = await Start("reborn");
        var def = Definition("reborn", durable: true);
        var owner = CreateTestProbe();
        queue.Tell(new EnsureQueue(def), owner.Ref);
        await owner.ExpectMsgAsync<QueueReady>(Timeout);
        await Publish(queue, "reborn", owner, Msg("old", persistent: true), Msg("older", persistent: true));

        queue.Tell(new DeleteQueueContent("reborn", false, false), owner.Ref);
        Assert.Equal(2u, (await owner.ExpectMsgAsync<QueueContentDeleted>(Timeout)).MessageCount);
        await shard.ExpectMsgAsync<Passivate>(Timeout);
        await Stop(queue);

        var (again, _) = await Start("reborn");
        again.Tell(new Consume("reborn", Channel(owner), "t", false, 0, false, null), owner.Ref);
        Assert.Equal(404, (await owner.ExpectMsgAsync<ConsumeRefused>(Timeout)).ReplyCode);
        again.Tell(new EnsureQueue(def), owner.Ref);
        Assert.Equal(0u, (await owner.ExpectMsgAsync<QueueReady>(Timeout)).MessageCount);
        await Publish(again, "reborn", owner, Msg("new", persistent: true));

        await Stop(again);
        var (third, _) = await Start("reborn");
        var consumer = CreateTestProbe();
        await Consume(third, "reborn", consumer, "c1");
        Assert.Equal(["new"], await Bodies(consumer, 1));
        Assert.Equal(0u, (await Sync(third, def, consumer)).MessageCount);
    }

    [Fact]
    public async Task Commands_for_the_next_incarnation_wait_while_a_deleted_queue_passivates()
    {
        var (queue, shard) = await Start("handover");
        var def = Definition("handover", durable: true);
        var owner = CreateTestProbe();
        queue.Tell(new EnsureQueue(def), owner.Ref);
        await owner.ExpectMsgAsync<QueueReady>(Timeout);

        queue.Tell(new DeleteQueueContent("handover", false, false), owner.Ref);
        queue.Tell(new EnsureQueue(def), owner.Ref);

        await owner.ExpectMsgAsync<QueueContentDeleted>(Timeout);
        await shard.ExpectMsgAsync<Passivate>(Timeout);
        // The shard receives the declare back, to start the next incarnation with it.
        Assert.Equal(def, (await shard.ExpectMsgAsync<EnsureQueue>(Timeout)).Definition);
    }
}
