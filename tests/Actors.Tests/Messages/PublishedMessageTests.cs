using Broker.Actors.Messages;

namespace Broker.Actors.Tests.Messages;

public sealed class PublishedMessageTests
{
    private static PublishedMessage ExpiringAt(long at) => new("t", [], 1, false, ExpiresAtUnixMs: at);

    [Fact]
    public void The_remaining_expiry_is_rounded_up_to_whole_seconds()
    {
        Assert.Equal(0u, ExpiringAt(0).RemainingExpirySeconds(1_000));
        Assert.Equal(2u, ExpiringAt(2_500).RemainingExpirySeconds(1_000));
        Assert.Equal(1u, ExpiringAt(2_000).RemainingExpirySeconds(1_000));
        // Due but not yet dropped: still a positive interval, never 0 (which would mean "never expires").
        Assert.Equal(1u, ExpiringAt(1_000).RemainingExpirySeconds(5_000));
    }

    [Fact]
    public void An_expiry_beyond_what_four_bytes_of_seconds_hold_is_capped_not_wrapped()
    {
        // An AMQP expiration may be any 63-bit number of milliseconds; MQTT's interval is a 32-bit count of seconds.
        Assert.Equal(uint.MaxValue, ExpiringAt(long.MaxValue / 2).RemainingExpirySeconds(1_000));
        Assert.Equal(uint.MaxValue, ExpiringAt(1_000 + (uint.MaxValue + 5L) * 1000).RemainingExpirySeconds(1_000));
    }
}
