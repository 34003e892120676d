using Akka.Actor;
using Broker.Actors.Dispatch;

namespace Broker.Actors.Tests.Dispatch;

public sealed class CompactMessageQueueTests
{
    private static Envelope Message(int n) => new(n, ActorRefs.NoSender);

    private static List<object> Drain(CompactMessageQueue queue)
    {
        var taken = new List<object>();
        while (queue.TryDequeue(out var envelope))
        {
            taken.Add(envelope.Message);
        }
        return taken;
    }

    [Fact]
    public void Messages_come_out_in_arrival_order_whether_they_wait_alone_or_queued()
    {
        var queue = new CompactMessageQueue();
        queue.Enqueue(ActorRefs.Nobody, Message(1));
        Assert.True(queue.TryDequeue(out var one));
        Assert.Equal(1, one.Message);

        queue.Enqueue(ActorRefs.Nobody, Message(2));
        queue.Enqueue(ActorRefs.Nobody, Message(3));
        queue.Enqueue(ActorRefs.Nobody, Message(4));
        Assert.Equal(3, queue.Count);
        Assert.True(queue.TryDequeue(out var two));
        Assert.Equal(2, two.Message);
        // Arrives while older ones still wait in the queue: it must come after them.
        queue.Enqueue(ActorRefs.Nobody, Message(5));
        Assert.Equal(new object[] { 3, 4, 5 }, Drain(queue));
        Assert.False(queue.HasMessages);
        Assert.Equal(0, queue.Count);

        queue.Enqueue(ActorRefs.Nobody, Message(6));
        Assert.Equal(new object[] { 6 }, Drain(queue));
    }

    [Fact]
    public void Unstashed_messages_come_first_last_prepended_first()
    {
        var queue = new CompactMessageQueue();
        queue.Enqueue(ActorRefs.Nobody, Message(10));
        queue.Enqueue(ActorRefs.Nobody, Message(11));
        queue.EnqueueFirst(Message(2));
        queue.EnqueueFirst(Message(1));
        Assert.Equal(4, queue.Count);
        Assert.Equal(new object[] { 1, 2, 10, 11 }, Drain(queue));
    }

    private sealed record Sized(int QueuedBytes) : IQueuedBytes;

    [Fact]
    public void Bytes_count_what_sized_messages_hold_while_they_wait_on_every_path_in_and_out()
    {
        var queue = new CompactMessageQueue();
        queue.Enqueue(ActorRefs.Nobody, new Envelope(new Sized(100), ActorRefs.NoSender));
        Assert.Equal(100, queue.Bytes);
        queue.Enqueue(ActorRefs.Nobody, new Envelope(new Sized(20), ActorRefs.NoSender));
        queue.Enqueue(ActorRefs.Nobody, Message(7));
        queue.EnqueueFirst(new Envelope(new Sized(3), ActorRefs.NoSender));
        Assert.Equal(123, queue.Bytes);

        Assert.True(queue.TryDequeue(out _));
        Assert.Equal(120, queue.Bytes);
        Assert.True(queue.TryDequeue(out _));
        Assert.Equal(20, queue.Bytes);
        Assert.Equal(new object[] { new Sized(20), 7 }, Drain(queue));
        Assert.Equal(0, queue.Bytes);
    }
}
