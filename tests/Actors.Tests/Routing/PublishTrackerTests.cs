using Broker.Actors.Routing;

namespace Broker.Actors.Tests.Routing;

public sealed class PublishTrackerTests
{
    private static Dictionary<DeliveryTarget, object> Targets(params DeliveryTarget[] targets) =>
        targets.ToDictionary(t => t, t => (object)("sent to " + t));

    [Fact]
    public void A_publish_is_done_when_its_last_target_answers()
    {
        var tracker = new PublishTracker<string>();
        tracker.Track(7, "packet 1", Targets(DeliveryTarget.Session("a"), DeliveryTarget.RetainedStore), 0);

        Assert.False(tracker.Answer(7, DeliveryTarget.Session("a"), out _));
        Assert.False(tracker.Answer(7, DeliveryTarget.Session("a"), out _));
        Assert.True(tracker.Answer(7, DeliveryTarget.RetainedStore, out var done));
        Assert.Equal("packet 1", done.Origin);
        Assert.Equal(0, tracker.Count);
    }

    [Fact]
    public void One_refusal_among_the_answers_marks_the_publish_refused()
    {
        var tracker = new PublishTracker<string>();
        tracker.Track(3, "p", Targets(DeliveryTarget.Session("a"), DeliveryTarget.RetainedStore), 0);

        Assert.False(tracker.Answer(3, DeliveryTarget.RetainedStore, out _, refused: true));
        Assert.True(tracker.Answer(3, DeliveryTarget.Session("a"), out var done));
        Assert.True(done.Refused);
    }

    [Fact]
    public void A_session_named_like_a_queue_is_a_different_target()
    {
        var tracker = new PublishTracker<string>();
        tracker.Track(1, "p", Targets(DeliveryTarget.Session("amqp:orders"), DeliveryTarget.Queue("orders"), DeliveryTarget.Session("")), 0);

        Assert.False(tracker.Answer(1, DeliveryTarget.Queue("orders"), out _));
        Assert.False(tracker.Answer(1, DeliveryTarget.RetainedStore, out _));
        Assert.False(tracker.Answer(1, DeliveryTarget.Session("amqp:orders"), out _));
        Assert.True(tracker.Answer(1, DeliveryTarget.Session(""), out _));
    }

    [Fact]
    public void Unanswered_targets_are_sent_again_with_backoff_then_given_up()
    {
        var tracker = new PublishTracker<string>();
        tracker.Track(1, "p", Targets(DeliveryTarget.Session("a"), DeliveryTarget.Queue("q")), 0);
        Assert.True(tracker.Answer(1, DeliveryTarget.Queue("q"), out _) is false);
        var resent = new List<(long At, object What)>();

        List<PublishTracker<string>.Entry>? givenUp = null;
        for (long now = 0; now <= 200_000 && givenUp is null; now += 500)
        {
            givenUp = tracker.Retry(now, sent => resent.Add((now, sent)));
        }

        // Only the target that did not answer is resent: at 3, 9, 21, 45, 75, 105 and 135 s.
        Assert.All(resent, r => Assert.Equal("sent to session a", r.What));
        Assert.Equal([3_000L, 9_000, 21_000, 45_000, 75_000, 105_000, 135_000], resent.Select(r => r.At));
        var entry = Assert.Single(givenUp!);
        Assert.Equal(PublishTracker<string>.MaxAttempts, entry.Attempts);
        Assert.Equal([DeliveryTarget.Session("a")], entry.Outstanding.Keys);
        Assert.Equal(0, tracker.Count);
    }

    [Fact]
    public void Resending_everything_after_a_member_left_does_not_count_as_an_attempt()
    {
        var tracker = new PublishTracker<string>();
        tracker.Track(1, "p", Targets(DeliveryTarget.Session("a")), 0);
        var resent = 0;

        tracker.ResendAll(_ => resent++);

        Assert.Equal(1, resent);
        Assert.True(tracker.TryGet(1, out var entry));
        Assert.Equal(1, entry.Attempts);
    }
}
