using Broker.Actors.Routing;

namespace Broker.Actors.Tests.Routing;

public sealed class FlowWindowTests
{
    private static readonly DeliveryTarget A = DeliveryTarget.Session("a");
    private static readonly DeliveryTarget Q = DeliveryTarget.Queue("a");

    private static List<(DeliveryTarget Target, long Id)> Probe(FlowWindow window, long now, out long released)
    {
        var sent = new List<(DeliveryTarget, long)>();
        released = window.Probe(now, (t, id) => sent.Add((t, id)));
        return sent;
    }

    [Fact]
    public void A_probe_is_due_once_the_held_weight_reaches_the_probe_weight()
    {
        var window = new FlowWindow(probeWeight: 1000, timeoutMs: 10_000);
        window.Targets.Add(A);
        Assert.False(window.Hold(600));
        window.Targets.Add(A);
        Assert.True(window.Hold(400));
        Assert.Equal(1000, window.Unprobed);
    }

    [Fact]
    public void The_weight_is_released_when_the_last_target_of_the_probe_answers()
    {
        var window = new FlowWindow(1000, 10_000);
        window.Targets.Add(A);
        window.Hold(700);
        window.Targets.Add(Q);
        window.Targets.Add(DeliveryTarget.RetainedStore);
        window.Hold(500);

        var sent = Probe(window, 0, out var released);

        // One probe per distinct target (a session and a queue of the same name are two), all with one id.
        Assert.Equal(0, released);
        Assert.Equal(3, sent.Count);
        Assert.Equal(new HashSet<DeliveryTarget> { A, Q, DeliveryTarget.RetainedStore }, sent.Select(s => s.Target).ToHashSet());
        var id = Assert.Single(sent.Select(s => s.Id).Distinct());
        Assert.Empty(window.Targets);
        Assert.Equal(0, window.Unprobed);
        Assert.Equal(1, window.Outstanding);

        Assert.Equal(0, window.Answer(id));
        Assert.Equal(0, window.Answer(id));
        Assert.Equal(1200, window.Answer(id));
        Assert.Equal(0, window.Outstanding);
        Assert.Equal(0, window.Answer(id)); // a late or repeated answer releases nothing more
    }

    [Fact]
    public void Messages_that_reached_no_target_are_released_at_once()
    {
        var window = new FlowWindow(100, 10_000);
        window.Hold(150);

        var sent = Probe(window, 0, out var released);

        Assert.Empty(sent);
        Assert.Equal(150, released);
        Assert.Equal(0, window.Outstanding);
    }

    [Fact]
    public void Each_probe_covers_only_what_was_held_since_the_one_before()
    {
        var window = new FlowWindow(100, 10_000);
        window.Targets.Add(A);
        window.Hold(100);
        var first = Probe(window, 0, out _).Single().Id;
        window.Targets.Add(Q);
        window.Hold(300);
        var second = Probe(window, 0, out _);

        Assert.Equal(Q, second.Single().Target);
        Assert.NotEqual(first, second.Single().Id);
        Assert.Equal(300, window.Answer(second.Single().Id));
        Assert.Equal(100, window.Answer(first));
    }

    [Fact]
    public void Probes_unanswered_for_the_timeout_are_given_up_and_release_their_weight()
    {
        var window = new FlowWindow(100, timeoutMs: 10_000);
        window.Targets.Add(A);
        window.Hold(100);
        var old = Probe(window, 1_000, out _).Single().Id;
        window.Targets.Add(A);
        window.Hold(200);
        var recent = Probe(window, 5_000, out _).Single().Id;

        Assert.Equal((0L, 0), window.Expire(10_999));
        Assert.Equal((100L, 1), window.Expire(11_000));
        Assert.Equal(1, window.Outstanding);
        Assert.Equal(0, window.Answer(old));
        Assert.Equal(200, window.Answer(recent));
    }
}
