using Akka.Actor;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Queues;

namespace Broker.Actors.Tests.Amqp.Queues;

/// <summary>How a queue hands messages to consumers: order, credit, round robin, requeue.</summary>
public sealed class QueueDeliveryTests : QueueTestKit
{
    [Fact]
    public async Task Messages_reach_a_consumer_in_the_order_they_were_enqueued()
    {
        var def = Definition("orders");
        var queue = await Declared(def);
        var publisher = CreateTestProbe();
        await Publish(queue, "orders", publisher, Msg("1"), Msg("2"), Msg("3"));
        var consumer = CreateTestProbe();

        await Consume(queue, "orders", consumer, "c1");
        await Publish(queue, "orders", publisher, Msg("4"));

        Assert.Equal(["1", "2", "3", "4"], await Bodies(consumer, 4));
    }

    [Fact]
    public async Task Deliveries_carry_the_ready_count_left_behind_them_and_are_not_redelivered()
    {
        var def = Definition("counts");
        var queue = await Declared(def);
        await Publish(queue, "counts", CreateTestProbe(), Msg("a"), Msg("b"), Msg("c"));
        var consumer = CreateTestProbe();

        await Consume(queue, "counts", consumer, "c1");

        var first = await Next(consumer);
        Assert.Equal(("counts", (ushort)1, "c1", false, 2u), (first.Queue, first.Channel, first.ConsumerTag, first.Redelivered, first.MessageCount));
        Assert.Equal(1u, (await Next(consumer)).MessageCount);
        Assert.Equal(0u, (await Next(consumer)).MessageCount);
    }

    [Fact]
    public async Task Prefetch_of_two_allows_exactly_two_unacknowledged_deliveries_until_an_ack()
    {
        var def = Definition("prefetch");
        var queue = await Declared(def);
        await Publish(queue, "prefetch", CreateTestProbe(), Msg("1"), Msg("2"), Msg("3"), Msg("4"), Msg("5"));
        var consumer = CreateTestProbe();

        await Consume(queue, "prefetch", consumer, "c1", prefetch: 2);
        var first = await Next(consumer);
        await Next(consumer);
        Assert.Equal(3u, (await Sync(queue, def, consumer)).MessageCount);

        queue.Tell(new SettleMessages("prefetch", Channel(consumer), [first.Sequence], Settlement.Ack));
        Assert.Equal("3", Body(await Next(consumer)));
        Assert.Equal(2u, (await Sync(queue, def, consumer)).MessageCount);
    }

    [Fact]
    public async Task Two_consumers_receive_messages_in_turn()
    {
        var def = Definition("rr");
        var queue = await Declared(def);
        var a = CreateTestProbe();
        var b = CreateTestProbe();
        await Consume(queue, "rr", a, "a");
        await Consume(queue, "rr", b, "b");

        await Publish(queue, "rr", CreateTestProbe(), Msg("1"), Msg("2"), Msg("3"), Msg("4"));

        Assert.Equal(["1", "3"], await Bodies(a, 2));
        Assert.Equal(["2", "4"], await Bodies(b, 2));
    }

    [Fact]
    public async Task A_nacked_message_goes_back_to_its_position_and_is_redelivered()
    {
        var def = Definition("nack");
        var queue = await Declared(def);
        await Publish(queue, "nack", CreateTestProbe(), Msg("1"), Msg("2"), Msg("3"));
        var consumer = CreateTestProbe();
        await Consume(queue, "nack", consumer, "c1", prefetch: 2);
        var one = await Next(consumer);
        var two = await Next(consumer);

        queue.Tell(new SettleMessages("nack", Channel(consumer), [two.Sequence, one.Sequence], Settlement.Requeue));

        var again = await Next(consumer);
        Assert.Equal(("1", true, one.Sequence), (Body(again), again.Redelivered, again.Sequence));
        var twoAgain = await Next(consumer);
        Assert.Equal(("2", true), (Body(twoAgain), twoAgain.Redelivered));
        queue.Tell(new SettleMessages("nack", Channel(consumer), [again.Sequence], Settlement.Ack));
        var three = await Next(consumer);
        Assert.Equal(("3", false), (Body(three), three.Redelivered));
    }

    [Fact]
    public async Task Closing_a_channel_requeues_its_unacknowledged_deliveries_for_other_consumers()
    {
        var def = Definition("closing");
        var queue = await Declared(def);
        var connection = CreateTestProbe();
        await Consume(queue, "closing", connection, "first", prefetch: 10, channel: 1);
        await Publish(queue, "closing", CreateTestProbe(), Msg("1"), Msg("2"));
        Assert.Equal(["1", "2"], await Bodies(connection, 2));

        queue.Tell(new ChannelClosed("closing", Channel(connection, 1)));
        await Consume(queue, "closing", connection, "second", prefetch: 10, channel: 2);

        var redelivered = new[] { await Next(connection), await Next(connection) };
        Assert.All(redelivered, d => Assert.Equal(("second", (ushort)2, true), (d.ConsumerTag, d.Channel, d.Redelivered)));
        Assert.Equal(["1", "2"], redelivered.Select(Body));
    }

    [Fact]
    public async Task Death_of_a_connection_requeues_its_deliveries_and_removes_its_consumers()
    {
        var def = Definition("death");
        var queue = await Declared(def);
        var doomed = CreateTestProbe();
        await Consume(queue, "death", doomed, "doomed", prefetch: 1);
        await Publish(queue, "death", CreateTestProbe(), Msg("1"), Msg("2"));
        Assert.Equal("1", Body(await Next(doomed)));

        Sys.Stop(doomed.Ref);
        var survivor = CreateTestProbe();
        await AwaitAssertAsync(async () => Assert.Equal(0u, (await Sync(queue, def, survivor)).ConsumerCount), Timeout);
        await Consume(queue, "death", survivor, "survivor", prefetch: 5);

        var first = await Next(survivor);
        Assert.Equal(("1", true), (Body(first), first.Redelivered));
        var second = await Next(survivor);
        Assert.Equal(("2", false), (Body(second), second.Redelivered));
    }

    [Fact]
    public async Task Acks_a_connection_sent_before_it_stopped_take_effect_when_its_death_is_heard_first()
    {
        // The acks are still in the region's mailbox (here: the test holds them) when the queue hears the connection died.
        var region = CreateTestProbe();
        Region = region.Ref;
        var def = Definition("late-acks");
        var queue = await Declared(def);
        var doomed = CreateTestProbe();
        await Consume(queue, "late-acks", doomed, "doomed", prefetch: 10);
        await Publish(queue, "late-acks", CreateTestProbe(), Msg("1"), Msg("2"), Msg("3"), Msg("4"), Msg("5"));
        var deliveries = new List<QueueDelivery>();
        for (var i = 0; i < 5; i++)
        {
            deliveries.Add(await Next(doomed));
        }

        Sys.Stop(doomed.Ref);
        // The queue sends its marker the way the connection's acks go, and requeues nothing until it comes back.
        var marker = await region.ExpectMsgAsync<ConnectionDrained>(Timeout);
        Assert.Equal(("late-acks", doomed.Ref), (marker.Queue, marker.Connection));
        var state = await Sync(queue, def, CreateTestProbe());
        Assert.Equal((0u, 0u), (state.ConsumerCount, state.MessageCount));

        // The region hands on what it holds, in the order it got it: the acks, then the marker.
        queue.Tell(new SettleMessages("late-acks", Channel(doomed), [.. deliveries.Take(3).Select(d => d.Sequence)], Settlement.Ack));
        queue.Tell(marker);
        var survivor = CreateTestProbe();
        await AwaitAssertAsync(async () => Assert.Equal(2u, (await Sync(queue, def, survivor)).MessageCount), Timeout);
        await Consume(queue, "late-acks", survivor, "survivor", prefetch: 10);
        var redelivered = new[] { await Next(survivor), await Next(survivor) };
        Assert.Equal(["4", "5"], redelivered.Select(Body));
        Assert.All(redelivered, d => Assert.True(d.Redelivered));
        Assert.Equal(0u, (await Sync(queue, def, survivor)).MessageCount);
    }

    [Fact]
    public async Task A_stopped_connection_s_deliveries_come_back_after_the_drain_wait_when_its_marker_is_lost()
    {
        Settings = QueueSettings.Default with { DrainWait = TimeSpan.FromMilliseconds(300) };
        var region = CreateTestProbe();
        Region = region.Ref;
        var def = Definition("lost-marker");
        var queue = await Declared(def);
        var doomed = CreateTestProbe();
        await Consume(queue, "lost-marker", doomed, "doomed", prefetch: 10);
        await Publish(queue, "lost-marker", CreateTestProbe(), Msg("1"), Msg("2"));
        Assert.Equal(["1", "2"], await Bodies(doomed, 2));

        Sys.Stop(doomed.Ref);
        await region.ExpectMsgAsync<ConnectionDrained>(Timeout);
        var survivor = CreateTestProbe();
        await AwaitAssertAsync(async () => Assert.Equal(2u, (await Sync(queue, def, survivor)).MessageCount), Timeout);
        await Consume(queue, "lost-marker", survivor, "survivor", prefetch: 10);
        Assert.Equal(["1", "2"], await Bodies(survivor, 2));
    }

    [Fact]
    public async Task A_no_ack_consumer_stops_at_its_window_until_the_channel_grants_credit()
    {
        Settings = QueueSettings.Default with { ConsumerWindow = 2 };
        var def = Definition("window");
        var queue = await Declared(def);
        await Publish(queue, "window", CreateTestProbe(), Msg("1"), Msg("2"), Msg("3"), Msg("4"));
        var consumer = CreateTestProbe();

        await Consume(queue, "window", consumer, "c1", noAck: true);
        Assert.Equal(["1", "2"], await Bodies(consumer, 2));
        Assert.Equal(2u, (await Sync(queue, def, consumer)).MessageCount);

        queue.Tell(new ConsumerCredit("window", Channel(consumer), "c1", 1));
        Assert.Equal("3", Body(await Next(consumer)));
        Assert.Equal(1u, (await Sync(queue, def, consumer)).MessageCount);
    }

    [Fact]
    public async Task No_ack_deliveries_leave_the_queue_for_good()
    {
        var def = Definition("noack");
        var queue = await Declared(def);
        var consumer = CreateTestProbe();
        await Consume(queue, "noack", consumer, "c1", noAck: true);
        await Publish(queue, "noack", CreateTestProbe(), Msg("1"));
        await Next(consumer);

        queue.Tell(new ChannelClosed("noack", Channel(consumer)));
        var getter = CreateTestProbe();
        queue.Tell(new GetMessage("noack", Channel(getter), NoAck: true), getter.Ref);

        await getter.ExpectMsgAsync<GetEmpty>(Timeout);
    }

    [Fact]
    public async Task Get_takes_the_head_and_answers_empty_when_nothing_is_ready()
    {
        var def = Definition("get");
        var queue = await Declared(def);
        await Publish(queue, "get", CreateTestProbe(), Msg("1"), Msg("2"));
        var channel = CreateTestProbe();

        queue.Tell(new GetMessage("get", Channel(channel), NoAck: false), channel.Ref);
        var got = await channel.ExpectMsgAsync<QueueDelivery>(Timeout);
        Assert.Equal(("1", null, 1u), (Body(got), got.ConsumerTag, got.MessageCount));
        queue.Tell(new GetMessage("get", Channel(channel), NoAck: true), channel.Ref);
        Assert.Equal("2", Body(await channel.ExpectMsgAsync<QueueDelivery>(Timeout)));
        queue.Tell(new GetMessage("get", Channel(channel), NoAck: true), channel.Ref);
        await channel.ExpectMsgAsync<GetEmpty>(Timeout);

        // The unacknowledged get comes back when rejected with requeue.
        queue.Tell(new SettleMessages("get", Channel(channel), [got.Sequence], Settlement.Requeue));
        queue.Tell(new GetMessage("get", Channel(channel), NoAck: true), channel.Ref);
        var again = await channel.ExpectMsgAsync<QueueDelivery>(Timeout);
        Assert.Equal(("1", true), (Body(again), again.Redelivered));
    }

    [Fact]
    public async Task A_cancelled_consumer_gets_no_more_deliveries_but_can_still_ack_what_it_has()
    {
        var def = Definition("cancel");
        var queue = await Declared(def);
        var consumer = CreateTestProbe();
        await Consume(queue, "cancel", consumer, "c1", prefetch: 1);
        await Publish(queue, "cancel", CreateTestProbe(), Msg("1"), Msg("2"));
        var held = await Next(consumer);

        queue.Tell(new CancelConsumer("cancel", Channel(consumer), "c1"), consumer.Ref);
        await consumer.ExpectMsgAsync<CancelOk>(Timeout);
        queue.Tell(new SettleMessages("cancel", Channel(consumer), [held.Sequence], Settlement.Ack));
        var ready = await Sync(queue, def, consumer);
        Assert.Equal((1u, 0u), (ready.MessageCount, ready.ConsumerCount));

        // Acked, so closing the channel does not bring it back.
        queue.Tell(new ChannelClosed("cancel", Channel(consumer)));
        Assert.Equal(1u, (await Sync(queue, def, consumer)).MessageCount);
    }

    [Fact]
    public async Task Consume_sent_again_by_the_same_channel_and_tag_registers_one_consumer()
    {
        var def = Definition("again");
        var queue = await Declared(def);
        var consumer = CreateTestProbe();

        await Consume(queue, "again", consumer, "c1");
        await Consume(queue, "again", consumer, "c1");

        Assert.Equal(1u, (await Sync(queue, def, consumer)).ConsumerCount);
    }

    [Fact]
    public async Task An_exclusive_consumer_keeps_others_out_and_cannot_join_other_consumers()
    {
        var def = Definition("excl");
        var queue = await Declared(def);
        var owner = CreateTestProbe();
        var other = CreateTestProbe();
        queue.Tell(new Consume("excl", Channel(owner), "mine", false, 0, Exclusive: true, "conn-a"), owner.Ref);
        await owner.ExpectMsgAsync<ConsumeOk>(Timeout);

        queue.Tell(new Consume("excl", Channel(other), "theirs", false, 0, Exclusive: false, "conn-b"), other.Ref);
        var refused = await other.ExpectMsgAsync<ConsumeRefused>(Timeout);
        Assert.Equal((403, "queue 'excl' in vhost '/' in exclusive use"), (refused.ReplyCode, refused.ReplyText));

        queue.Tell(new CancelConsumer("excl", Channel(owner), "mine"), owner.Ref);
        await owner.ExpectMsgAsync<CancelOk>(Timeout);
        await Consume(queue, "excl", other, "theirs");
        queue.Tell(new Consume("excl", Channel(owner), "mine", false, 0, Exclusive: true, "conn-a"), owner.Ref);
        Assert.Equal(403, (await owner.ExpectMsgAsync<ConsumeRefused>(Timeout)).ReplyCode);
    }

    [Fact]
    public async Task A_queue_exclusive_to_another_connection_refuses_consumers_with_405()
    {
        var def = Definition("private", exclusiveOwner: "conn-owner");
        var queue = await Declared(def);
        var stranger = CreateTestProbe();
        var owner = CreateTestProbe();

        queue.Tell(new Consume("private", Channel(stranger), "t", false, 0, false, "conn-stranger"), stranger.Ref);
        var refused = await stranger.ExpectMsgAsync<ConsumeRefused>(Timeout);
        queue.Tell(new Consume("private", Channel(owner), "t", false, 0, false, "conn-owner"), owner.Ref);

        Assert.Equal((405, "cannot obtain exclusive access to locked queue 'private' in vhost '/'"), (refused.ReplyCode, refused.ReplyText));
        await owner.ExpectMsgAsync<ConsumeOk>(Timeout);
    }
}
