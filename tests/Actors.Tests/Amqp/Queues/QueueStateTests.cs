using System.Text;
using Akka.Actor;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Queues;

namespace Broker.Actors.Tests.Amqp.Queues;

/// <summary>The queue's decisions without an actor system: what it delivers, reports for the journal, and recovers.</summary>
public sealed class QueueStateTests
{
    private const long Now = 1_700_000_000_000;

    private sealed class Recorder : IQueueEffects
    {
        public List<QueueDelivery> Deliveries { get; } = [];
        public List<object> Other { get; } = [];
        public List<long> Removed { get; } = [];
        public List<(string Body, string Reason)> DeadLettered { get; } = [];
        public int Unused { get; private set; }

        public void Send(IActorRef connection, object message)
        {
            if (message is QueueDelivery d)
            {
                Deliveries.Add(d);
            }
            else
            {
                Other.Add(message);
            }
        }

        void IQueueEffects.Removed(long sequence) => Removed.Add(sequence);

        public void DeadLetter(AmqpMessage message, string reason) => DeadLettered.Add((Encoding.UTF8.GetString(message.Body), reason));

        void IQueueEffects.Unused() => Unused++;

        public string[] Bodies() => [.. Deliveries.Select(d => Encoding.UTF8.GetString(d.Message.Body))];
    }

    private static readonly ChannelRef Ch1 = new(ActorRefs.Nobody, 1);
    private static readonly ChannelRef Ch2 = new(ActorRefs.Nobody, 2);

    private static AmqpMessage Msg(string body, bool persistent = true, long id = 0) =>
        new("", "rk", [0, 0], Encoding.UTF8.GetBytes(body), persistent, 0, id);

    private static (QueueState State, Recorder Effects) Declared(bool durable = true, QueueArguments? arguments = null, bool autoDelete = false, int window = 1000)
    {
        var effects = new Recorder();
        var state = new QueueState("q", effects, window);
        state.Define(new QueueDefinition("q", durable, autoDelete, null, arguments ?? QueueArguments.None), Now);
        return (state, effects);
    }

    private static Consume Consumer(ChannelRef channel, string tag, ushort prefetch = 0, bool noAck = false) =>
        new("q", channel, tag, noAck, prefetch, false, null);

    private static void Enqueue(QueueState state, params string[] bodies)
    {
        foreach (var body in bodies)
        {
            state.Enqueue(Msg(body), Now);
        }
    }

    [Fact]
    public void Requeued_messages_come_back_in_sequence_order_before_newer_ones()
    {
        var (state, effects) = Declared();
        Enqueue(state, "1", "2", "3", "4", "5");
        Assert.IsType<ConsumeOk>(state.Consume(Consumer(Ch1, "a", prefetch: 3), Now));
        state.Dispatch(Now);
        var seqs = effects.Deliveries.Select(d => d.Sequence).ToArray();

        state.Settle(Ch1, [seqs[2], seqs[0]], Settlement.Requeue, Now);
        state.Settle(Ch1, [seqs[1]], Settlement.Ack, Now);

        Assert.Equal(["1", "2", "3", "1", "3", "4"], effects.Bodies());
        Assert.Equal([false, false, false, true, true, false], effects.Deliveries.Select(d => d.Redelivered));
        Assert.Equal([seqs[1]], effects.Removed);
        Assert.Equal((1, 3), (state.ReadyCount, state.UnackedCount));
    }

    [Fact]
    public void A_message_a_no_ack_consumer_takes_on_arrival_is_neither_journaled_nor_reported_removed()
    {
        var (state, effects) = Declared();
        state.Consume(Consumer(Ch1, "a", noAck: true), Now);

        var entry = state.Enqueue(Msg("x"), Now);

        Assert.False(entry.Persisted);
        Assert.Empty(effects.Removed);
        Assert.Equal((0, 0, 0), (state.ReadyCount, state.UnackedCount, state.PersistedCount));
        Assert.Single(effects.Deliveries);
    }

    [Fact]
    public void Only_persistent_messages_of_a_durable_queue_are_journaled()
    {
        var (durable, _) = Declared(durable: true);
        var (transient, _) = Declared(durable: false);

        Assert.True(durable.Enqueue(Msg("p", persistent: true), Now).Persisted);
        Assert.False(durable.Enqueue(Msg("t", persistent: false), Now).Persisted);
        Assert.False(transient.Enqueue(Msg("p", persistent: true), Now).Persisted);
        Assert.Equal(1, durable.PersistedCount);
    }

    [Fact]
    public void Window_credit_bounds_deliveries_until_more_is_granted_and_prefetch_ignores_the_window()
    {
        var (state, effects) = Declared(window: 2);
        Enqueue(state, "1", "2", "3", "4", "5", "6");
        state.Consume(Consumer(Ch1, "window"), Now);
        state.Dispatch(Now);
        Assert.Equal(["1", "2"], effects.Bodies());

        state.Consume(Consumer(Ch2, "prefetch", prefetch: 3), Now);
        state.Dispatch(Now);
        Assert.Equal(["1", "2", "3", "4", "5"], effects.Bodies());

        state.Credit(Ch1, "window", 5, Now);
        Assert.Equal(["1", "2", "3", "4", "5", "6"], effects.Bodies());
        Assert.Equal("window", effects.Deliveries[^1].ConsumerTag);
    }

    [Fact]
    public void Closing_a_channel_requeues_only_its_own_deliveries()
    {
        var (state, effects) = Declared();
        Enqueue(state, "1", "2");
        state.Consume(Consumer(Ch1, "a", prefetch: 1), Now);
        state.Consume(Consumer(Ch2, "b", prefetch: 2), Now);
        state.Dispatch(Now);

        state.ChannelClosed(Ch1, Now);

        Assert.Equal(["1", "2", "1"], effects.Bodies());
        Assert.Equal(("b", true), (effects.Deliveries[^1].ConsumerTag, effects.Deliveries[^1].Redelivered));
        Assert.Equal(1, state.ConsumerCount);
    }

    [Fact]
    public void An_auto_delete_queue_reports_unused_only_when_its_last_consumer_goes()
    {
        var (state, effects) = Declared(autoDelete: true);
        state.Consume(Consumer(Ch1, "a"), Now);
        state.Consume(Consumer(Ch2, "b"), Now);

        state.Cancel(Ch1, "a", Now);
        Assert.Equal(0, effects.Unused);
        state.ChannelClosed(Ch2, Now);
        Assert.Equal(1, effects.Unused);
        state.ChannelClosed(Ch2, Now);
        Assert.Equal(1, effects.Unused);
    }

    [Fact]
    public void An_expired_head_is_dead_lettered_instead_of_delivered_and_later_messages_wait_behind_a_live_head()
    {
        var (state, effects) = Declared(arguments: new QueueArguments(DeadLetterExchange: "dlx"));
        state.Enqueue(Msg("live"), Now);
        state.Enqueue(Msg("stale") with { ExpiresAtUnixMs = Now + 10 }, Now);

        state.ExpireHeads(Now + 20);
        Assert.Empty(effects.DeadLettered);

        state.Consume(Consumer(Ch1, "a"), Now + 20);
        state.Dispatch(Now + 20);

        Assert.Equal(["live"], effects.Bodies());
        Assert.Equal([("stale", "expired")], effects.DeadLettered);
        Assert.Equal(2, effects.Removed.Single());
    }

    [Fact]
    public void A_snapshot_recovers_ready_and_unacknowledged_journaled_messages_in_order_with_their_ids()
    {
        var (state, _) = Declared();
        state.Enqueue(Msg("1", id: 11), Now);
        state.Enqueue(Msg("t", persistent: false, id: 12), Now);
        state.Enqueue(Msg("2", id: 13), Now);
        state.Enqueue(Msg("3", id: 14), Now);
        state.Consume(Consumer(Ch1, "a", prefetch: 2), Now);
        state.Dispatch(Now);
        var snapshot = state.ToSnapshot();

        var effects = new Recorder();
        var recovered = new QueueState("q", effects);
        recovered.RestoreSnapshot(snapshot);
        recovered.CompleteRecovery(Now);
        recovered.Consume(Consumer(Ch1, "a"), Now);
        recovered.Dispatch(Now);

        Assert.Equal(["1", "2", "3"], effects.Bodies());
        Assert.All(effects.Deliveries, d => Assert.True(d.Redelivered));
        Assert.True(recovered.Holds(11));
        Assert.True(recovered.Holds(12));
        Assert.Equal(state.NextSequence, recovered.NextSequence);
    }

    [Fact]
    public void Replay_forgets_everything_before_a_destroy_marker()
    {
        var effects = new Recorder();
        var state = new QueueState("q", effects);
        var def = new QueueDefinition("q", true, false, null, QueueArguments.None);
        state.Recover(new QueueInitialized(def));
        state.Recover(new MessagesEnqueued([new MessageEnqueued(1, Now, Msg("old", id: 5))]));
        state.Recover(QueueDestroyed.Instance);
        state.Recover(new QueueInitialized(def));
        state.Recover(new MessagesEnqueued([new MessageEnqueued(2, Now, Msg("new")), new MessageEnqueued(3, Now, Msg("gone"))]));
        state.Recover(new MessagesRemoved([3]));
        state.CompleteRecovery(Now);

        Assert.Equal((1, 4L), (state.ReadyCount, state.NextSequence));
        Assert.False(state.Holds(5));
        Assert.Equal("new", Encoding.UTF8.GetString(state.Get(Ch1, true, Now)!.Message.Body));
    }

    [Fact]
    public void The_last_thousand_accepted_ids_are_recognised_after_their_messages_left()
    {
        var (state, _) = Declared(durable: false);
        for (var id = 1; id <= 1100; id++)
        {
            state.Enqueue(Msg("m", id: id), Now);
        }
        state.Purge();

        Assert.False(state.Holds(50));
        Assert.True(state.Holds(100));
        Assert.True(state.Holds(1100));
        Assert.False(state.Holds(0));
    }
}
