using Broker.Edge.Hosting;

namespace Broker.Edge.Tests.Hosting;

public class PublishLimiterTests
{
    [Fact]
    public void Messages_pass_a_seconds_worth_at_once_then_at_the_rate()
    {
        var limiter = new PublishLimiter(messagesPerSecond: 4, bytesPerSecond: 0, nowMs: 0);
        Assert.All(Enumerable.Range(0, 4), _ => Assert.Equal(0, limiter.Take(10, 0)));
        Assert.Equal(250, limiter.Take(10, 0));      // the fifth waits a quarter second
        Assert.Equal(0, limiter.Take(10, 250));
        Assert.True(limiter.Take(10, 250) > 0);
    }

    [Fact]
    public void Bytes_follow_their_own_rate_and_a_large_message_passes_into_debt()
    {
        var limiter = new PublishLimiter(messagesPerSecond: 0, bytesPerSecond: 1000, nowMs: 0);
        Assert.Equal(0, limiter.Take(600, 0));
        Assert.Equal(200, limiter.Take(600, 0));     // 400 left, 600 needed: 200 ms
        Assert.Equal(0, limiter.Take(600, 200));
        // Larger than a second's worth: waits for a full bucket, then passes and leaves it in debt.
        var wait = limiter.Take(5000, 200);
        Assert.Equal(1000, wait);
        Assert.Equal(0, limiter.Take(5000, 1200));
        Assert.InRange(limiter.Take(1, 1200), 4000, 4002);   // 4,000 bytes of debt and one more byte: about 4 s
    }

    [Fact]
    public void No_rate_no_limiter() => Assert.Null(PublishLimiter.For(ConnectionLimits.None));
}
