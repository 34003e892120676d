using Akka.Actor;
using Akka.Cluster.Sharding;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Queues;

namespace Broker.Actors.Tests.Amqp.Queues;

/// <summary>Declaring, purging, deleting and the queue arguments that remove messages or the queue itself.</summary>
public sealed class QueueLifecycleTests : QueueTestKit
{
    [Fact]
    public async Task An_undeclared_queue_answers_negatively_and_passivates_when_idle()
    {
        Settings = QueueSettings.Default with { IdleWithoutQueue = TimeSpan.FromMilliseconds(200) };
        var (queue, shard) = await Start("nowhere");
        var channel = CreateTestProbe();

        queue.Tell(new Enqueue("nowhere", Msg("x", id: 5), Confirm: true), channel.Ref);
        Assert.Equal(5, (await channel.ExpectMsgAsync<QueueMissing>(Timeout)).MessageId);
        queue.Tell(new Consume("nowhere", Channel(channel), "t", false, 0, false, null), channel.Ref);
        var refused = await channel.ExpectMsgAsync<ConsumeRefused>(Timeout);
        Assert.Equal((404, "no queue 'nowhere' in vhost '/'"), (refused.ReplyCode, refused.ReplyText));
        queue.Tell(new GetMessage("nowhere", Channel(channel), true), channel.Ref);
        await channel.ExpectMsgAsync<GetEmpty>(Timeout);
        queue.Tell(new PurgeQueue("nowhere"), channel.Ref);
        Assert.Equal(0u, (await channel.ExpectMsgAsync<QueuePurged>(Timeout)).MessageCount);

        var passivate = await shard.ExpectMsgAsync<Passivate>(Timeout);
        Assert.Equal(QueueHandOff.Instance, passivate.StopMessage);
    }

    [Fact]
    public async Task Declare_answers_the_ready_and_consumer_counts()
    {
        var def = Definition("declared");
        var queue = await Declared(def);
        var consumer = CreateTestProbe();
        await Consume(queue, "declared", consumer, "c1", prefetch: 1);
        await Publish(queue, "declared", CreateTestProbe(), Msg("1"), Msg("2"), Msg("3"));

        var ready = await Sync(queue, def, CreateTestProbe());

        Assert.Equal(("declared", 2u, 1u), (ready.Queue, ready.MessageCount, ready.ConsumerCount));
    }

    [Fact]
    public async Task Stats_answer_ready_unacknowledged_and_consumer_counts_and_the_node()
    {
        Settings = QueueSettings.Default with { NodeName = "node-7" };
        var def = Definition("counted");
        var queue = await Declared(def);
        var consumer = CreateTestProbe();
        await Consume(queue, "counted", consumer, "c1", prefetch: 2);
        await Publish(queue, "counted", CreateTestProbe(), Msg("1"), Msg("2"), Msg("3"), Msg("4"), Msg("5"));
        await Next(consumer);
        await Next(consumer);
        var admin = CreateTestProbe();

        queue.Tell(new GetQueueStats("counted"), admin.Ref);

        Assert.Equal(new QueueStats("counted", 3, 2, 1, "node-7"), await admin.ExpectMsgAsync<QueueStats>(Timeout));
    }

    [Fact]
    public async Task Stats_asked_of_an_undeclared_queue_answer_zeros_and_do_not_keep_it_alive()
    {
        Settings = QueueSettings.Default with { IdleWithoutQueue = TimeSpan.FromMilliseconds(600) };
        var (queue, shard) = await Start("gone");
        var admin = CreateTestProbe();
        // Asked more often than the idle period: a message that influenced the receive timeout would reset it each time.
        using var asking = new Cancelable(Sys.Scheduler);
        Sys.Scheduler.ScheduleTellRepeatedly(TimeSpan.Zero, TimeSpan.FromMilliseconds(100), queue, new GetQueueStats("gone"), admin.Ref, asking);

        Assert.Equal(new QueueStats("gone", 0, 0, 0, ""), await admin.ExpectMsgAsync<QueueStats>(Timeout));
        await shard.ExpectMsgAsync<Passivate>(TimeSpan.FromSeconds(3));
    }

    [Fact]
    public async Task Purge_drops_ready_messages_and_leaves_unacknowledged_ones()
    {
        var def = Definition("purge");
        var queue = await Declared(def);
        var consumer = CreateTestProbe();
        await Consume(queue, "purge", consumer, "c1", prefetch: 1);
        await Publish(queue, "purge", CreateTestProbe(), Msg("1"), Msg("2"), Msg("3"));
        var held = await Next(consumer);

        queue.Tell(new PurgeQueue("purge"), consumer.Ref);
        Assert.Equal(2u, (await consumer.ExpectMsgAsync<QueuePurged>(Timeout)).MessageCount);

        queue.Tell(new SettleMessages("purge", Channel(consumer), [held.Sequence], Settlement.Requeue));
        var back = await Next(consumer);
        Assert.Equal(("1", true), (Body(back), back.Redelivered));
    }

    [Fact]
    public async Task Delete_if_unused_is_refused_while_the_queue_has_a_consumer()
    {
        var def = Definition("busy");
        var queue = await Declared(def);
        await Consume(queue, "busy", CreateTestProbe(), "c1");
        var owner = CreateTestProbe();

        queue.Tell(new DeleteQueueContent("busy", IfUnused: true, IfEmpty: false), owner.Ref);

        Assert.Equal("PRECONDITION_FAILED - queue 'busy' in vhost '/' in use", (await owner.ExpectMsgAsync<QueueDeleteRefused>(Timeout)).ReplyText);
    }

    [Fact]
    public async Task Delete_if_empty_is_refused_while_messages_are_ready()
    {
        var def = Definition("full");
        var queue = await Declared(def);
        await Publish(queue, "full", CreateTestProbe(), Msg("1"));
        var owner = CreateTestProbe();

        queue.Tell(new DeleteQueueContent("full", IfUnused: false, IfEmpty: true), owner.Ref);

        Assert.Equal("PRECONDITION_FAILED - queue 'full' in vhost '/' not empty", (await owner.ExpectMsgAsync<QueueDeleteRefused>(Timeout)).ReplyText);
    }

    [Fact]
    public async Task Delete_cancels_every_consumer_answers_the_ready_count_and_passivates()
    {
        var (queue, shard) = await Start("doomed");
        var def = Definition("doomed");
        var owner = CreateTestProbe();
        queue.Tell(new EnsureQueue(def), owner.Ref);
        await owner.ExpectMsgAsync<QueueReady>(Timeout);
        var a = CreateTestProbe();
        var b = CreateTestProbe();
        await Consume(queue, "doomed", a, "a", prefetch: 1);
        await Consume(queue, "doomed", b, "b", prefetch: 1, channel: 7);
        await Publish(queue, "doomed", CreateTestProbe(), Msg("1"), Msg("2"), Msg("3"), Msg("4"));
        await Next(a);
        await Next(b);

        queue.Tell(new DeleteQueueContent("doomed", IfUnused: false, IfEmpty: false), owner.Ref);

        Assert.Equal(2u, (await owner.ExpectMsgAsync<QueueContentDeleted>(Timeout)).MessageCount);
        var cancelledA = await a.ExpectMsgAsync<ConsumerCancelled>(Timeout);
        var cancelledB = await b.ExpectMsgAsync<ConsumerCancelled>(Timeout);
        Assert.Equal(("doomed", (ushort)1, "a"), (cancelledA.Queue, cancelledA.Channel, cancelledA.ConsumerTag));
        Assert.Equal(("doomed", (ushort)7, "b"), (cancelledB.Queue, cancelledB.Channel, cancelledB.ConsumerTag));
        await shard.ExpectMsgAsync<Passivate>(Timeout);
    }

    [Fact]
    public async Task Consumers_are_told_to_register_again_when_the_entity_hands_off()
    {
        var def = Definition("moving");
        var queue = await Declared(def);
        var consumer = CreateTestProbe();
        await Consume(queue, "moving", consumer, "c1", channel: 3);

        await Stop(queue);

        var moved = await consumer.ExpectMsgAsync<ConsumerMoved>(Timeout);
        Assert.Equal(("moving", (ushort)3, "c1"), (moved.Queue, moved.Channel, moved.ConsumerTag));
    }

    [Fact]
    public async Task An_auto_delete_queue_reports_itself_unused_when_its_last_consumer_cancels()
    {
        var def = Definition("auto", autoDelete: true);
        var queue = await Declared(def);
        var a = CreateTestProbe();
        var b = CreateTestProbe();
        await Consume(queue, "auto", a, "a");
        await Consume(queue, "auto", b, "b");

        queue.Tell(new CancelConsumer("auto", Channel(a), "a"), a.Ref);
        await a.ExpectMsgAsync<CancelOk>(Timeout);
        Sys.Stop(b.Ref);

        Assert.Equal("auto", (await Owner.ExpectMsgAsync<QueueUnused>(Timeout)).Queue);
        Assert.Equal(0u, (await Sync(queue, def, CreateTestProbe())).ConsumerCount);
    }

    [Fact]
    public async Task A_queue_with_x_expires_reports_itself_unused_after_a_period_without_consumers()
    {
        var def = Definition("expiring", arguments: new QueueArguments(ExpiresMs: 300));
        await Declared(def);

        Assert.Equal("expiring", (await Owner.ExpectMsgAsync<QueueUnused>(Timeout)).Queue);
    }

    [Fact]
    public async Task Messages_past_the_queue_TTL_are_dead_lettered_as_expired_without_any_consumer()
    {
        var def = Definition("ttl", arguments: new QueueArguments(MessageTtlMs: 200, DeadLetterExchange: "dlx"));
        var queue = await Declared(def);

        await Publish(queue, "ttl", CreateTestProbe(), Msg("old"), Msg("older"));

        await AwaitAssertAsync(() => Assert.Equal(2, DeadLetters.Published.Count), Timeout);
        Assert.Equal([("old", "ttl", "expired", "dlx", "rk"), ("older", "ttl", "expired", "dlx", "rk")], DeadLetters.Published.ToArray());
        var channel = CreateTestProbe();
        queue.Tell(new GetMessage("ttl", Channel(channel), true), channel.Ref);
        await channel.ExpectMsgAsync<GetEmpty>(Timeout);
    }

    [Fact]
    public async Task A_message_past_its_own_expiration_is_dropped_at_the_head_and_never_delivered()
    {
        var def = Definition("per-message");
        var queue = await Declared(def);
        var expired = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 1;

        await Publish(queue, "per-message", CreateTestProbe(), Msg("stale", expiresAt: expired), Msg("fresh"));
        var consumer = CreateTestProbe();
        await Consume(queue, "per-message", consumer, "c1");

        Assert.Equal("fresh", Body(await Next(consumer)));
        Assert.Equal(0u, (await Sync(queue, def, consumer)).MessageCount);
        Assert.Empty(DeadLetters.Published);
    }

    [Fact]
    public async Task Max_length_drops_the_oldest_ready_messages_to_the_dead_letter_exchange()
    {
        var def = Definition("bounded", arguments: new QueueArguments(MaxLength: 2, DeadLetterExchange: "dlx", DeadLetterRoutingKey: "over"));
        var queue = await Declared(def);

        await Publish(queue, "bounded", CreateTestProbe(), Msg("1"), Msg("2"), Msg("3"), Msg("4"));
        var consumer = CreateTestProbe();
        await Consume(queue, "bounded", consumer, "c1");

        Assert.Equal(["3", "4"], await Bodies(consumer, 2));
        Assert.Equal([("1", "bounded", "maxlen", "dlx", "over"), ("2", "bounded", "maxlen", "dlx", "over")], DeadLetters.Published.ToArray());
    }

    [Fact]
    public async Task Max_length_with_reject_publish_refuses_new_messages_and_keeps_the_old_ones()
    {
        var def = Definition("full", arguments: new QueueArguments(MaxLength: 2, DeadLetterExchange: "dlx", Overflow: QueueOverflow.RejectPublish));
        var queue = await Declared(def);
        var publisher = CreateTestProbe();
        await Publish(queue, "full", publisher, Msg("1", id: 1), Msg("2", id: 2));

        queue.Tell(new Enqueue("full", Msg("3", id: 3), Confirm: true), publisher.Ref);
        Assert.Equal(new EnqueueRejected("full", 3), await publisher.ExpectMsgAsync<EnqueueRejected>(Timeout));
        // Without a confirm it is dropped silently; reject-publish does not dead-letter.
        queue.Tell(new Enqueue("full", Msg("4", id: 4), Confirm: false), publisher.Ref);

        var consumer = CreateTestProbe();
        await Consume(queue, "full", consumer, "c1", prefetch: 1);
        var first = await Next(consumer);
        Assert.Equal("1", Body(first));
        await consumer.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(200));
        Assert.Empty(DeadLetters.Published);

        // Room again (one ready, one unacknowledged): a new message is taken.
        await Publish(queue, "full", publisher, Msg("5", id: 5));
        queue.Tell(new SettleMessages("full", Channel(consumer), [first.Sequence], Settlement.Ack));
        var second = await Next(consumer);
        Assert.Equal("2", Body(second));
        queue.Tell(new SettleMessages("full", Channel(consumer), [second.Sequence], Settlement.Ack));
        Assert.Equal("5", Body(await Next(consumer)));
    }

    [Fact]
    public async Task Max_length_with_reject_publish_dlx_dead_letters_the_refused_message()
    {
        var def = Definition("full-dlx", arguments: new QueueArguments(MaxLength: 1, DeadLetterExchange: "dlx", DeadLetterRoutingKey: "over",
            Overflow: QueueOverflow.RejectPublishDlx));
        var queue = await Declared(def);
        var publisher = CreateTestProbe();
        await Publish(queue, "full-dlx", publisher, Msg("1", id: 1));
        queue.Tell(new Enqueue("full-dlx", Msg("2", id: 2), Confirm: true), publisher.Ref);

        Assert.Equal(new EnqueueRejected("full-dlx", 2), await publisher.ExpectMsgAsync<EnqueueRejected>(Timeout));
        Assert.Equal([("2", "full-dlx", "maxlen", "dlx", "over")], DeadLetters.Published.ToArray());
    }

    [Fact]
    public async Task A_message_rejected_without_requeue_goes_to_the_dead_letter_exchange()
    {
        var def = Definition("rejecting", arguments: new QueueArguments(DeadLetterExchange: "dlx"));
        var queue = await Declared(def);
        var consumer = CreateTestProbe();
        await Consume(queue, "rejecting", consumer, "c1", prefetch: 1);
        await Publish(queue, "rejecting", CreateTestProbe(), Msg("bad"), Msg("good"));
        var bad = await Next(consumer);

        queue.Tell(new SettleMessages("rejecting", Channel(consumer), [bad.Sequence], Settlement.Discard));

        Assert.Equal("good", Body(await Next(consumer)));
        Assert.Equal([("bad", "rejecting", "rejected", "dlx", "rk")], DeadLetters.Published.ToArray());
    }

    [Fact]
    public async Task A_message_rejected_without_requeue_and_without_dead_letter_exchange_is_dropped()
    {
        var def = Definition("dropping");
        var queue = await Declared(def);
        var consumer = CreateTestProbe();
        await Consume(queue, "dropping", consumer, "c1", prefetch: 1);
        await Publish(queue, "dropping", CreateTestProbe(), Msg("bad"));
        var bad = await Next(consumer);

        queue.Tell(new SettleMessages("dropping", Channel(consumer), [bad.Sequence], Settlement.Discard));
        queue.Tell(new ChannelClosed("dropping", Channel(consumer)));

        Assert.Equal(0u, (await Sync(queue, def, consumer)).MessageCount);
        Assert.Empty(DeadLetters.Published);
    }
}
