using Broker.Edge.Hosting;

namespace Broker.Edge.Tests.Hosting;

public class ConnectAdmissionTests
{
    [Fact]
    public void Connections_beyond_the_capacity_wait_and_go_on_in_arrival_order_as_slots_are_left()
    {
        var admission = new ConnectAdmission(2);
        var admitted = new List<int>();
        var tickets = Enumerable.Range(0, 5).Select(i => admission.Enter(() => admitted.Add(i))).ToList();

        Assert.True(tickets[0].IsAdmitted);
        Assert.True(tickets[1].IsAdmitted);
        Assert.All(tickets.Skip(2), t => Assert.False(t.IsAdmitted));
        Assert.Equal(2, admission.InFlight);
        Assert.Equal(3, admission.Waiting);
        Assert.Equal(3, admission.QueuedTotal);

        tickets[1].Leave();
        Assert.Equal([2], admitted);
        Assert.True(tickets[2].IsAdmitted);
        tickets[0].Leave();
        tickets[2].Leave();
        Assert.Equal([2, 3, 4], admitted);
        Assert.Equal(2, admission.InFlight);
        Assert.Equal(0, admission.Waiting);

        tickets[3].Leave();
        tickets[4].Leave();
        Assert.Equal(0, admission.InFlight);
        // Free slots admit at once again.
        Assert.True(admission.Enter(() => admitted.Add(99)).IsAdmitted);
        Assert.Equal([2, 3, 4], admitted);
    }

    [Fact]
    public void Leaving_twice_frees_one_slot_only()
    {
        var admission = new ConnectAdmission(1);
        var first = admission.Enter(() => { });
        var admitted = 0;
        var second = admission.Enter(() => admitted++);
        var third = admission.Enter(() => admitted++);
        first.Leave();
        first.Leave();
        Assert.Equal(1, admitted);
        Assert.True(second.IsAdmitted);
        Assert.False(third.IsAdmitted);
        Assert.Equal(1, admission.InFlight);
    }

    [Fact]
    public void A_connection_that_leaves_while_waiting_is_skipped_and_never_holds_a_slot()
    {
        var admission = new ConnectAdmission(1);
        var first = admission.Enter(() => { });
        var calls = new List<string>();
        var gone = admission.Enter(() => calls.Add("gone"));
        var next = admission.Enter(() => calls.Add("next"));
        gone.Leave();
        Assert.Equal(1, admission.Waiting);
        first.Leave();
        Assert.Equal(["next"], calls);
        Assert.True(next.IsAdmitted);
        Assert.False(gone.IsAdmitted);
        next.Leave();
        Assert.Equal(0, admission.InFlight);
        Assert.Equal(0, admission.Waiting);
    }

    [Fact]
    public void Many_connections_leaving_while_waiting_do_not_pile_up_in_the_queue()
    {
        var admission = new ConnectAdmission(1);
        var holder = admission.Enter(() => { });
        for (var i = 0; i < 100_000; i++)
        {
            admission.Enter(() => { }).Leave();
        }
        Assert.Equal(0, admission.Waiting);
        var last = 0;
        var waiter = admission.Enter(() => last++);
        holder.Leave();
        Assert.Equal(1, last);
        Assert.True(waiter.IsAdmitted);
        var queue = (System.Collections.ICollection)typeof(ConnectAdmission)
            .GetField("_waiting", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(admission)!;
        Assert.True(queue.Count <= 2048, $"{queue.Count} tickets left in the queue");
    }

    [Fact]
    public async Task Concurrent_entries_and_leaves_keep_the_count_exact()
    {
        var admission = new ConnectAdmission(3);
        var maxSeen = 0;
        var done = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; i < 2000; i++)
            {
                var turn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var ticket = admission.Enter(() => turn.TrySetResult());
                if (ticket.IsAdmitted)
                {
                    turn.TrySetResult();
                }
                await turn.Task;
                var inFlight = admission.InFlight;
                InterlockedMax(ref maxSeen, inFlight);
                if (i % 3 == 0)
                {
                    ticket.Leave();
                }
                ticket.Leave();
                Interlocked.Increment(ref done);
            }
        })));
        Assert.Equal(16000, done);
        Assert.True(maxSeen <= 3, $"{maxSeen} in flight with a capacity of 3");
        Assert.Equal(0, admission.InFlight);
        Assert.Equal(0, admission.Waiting);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while (value > (seen = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }
}
