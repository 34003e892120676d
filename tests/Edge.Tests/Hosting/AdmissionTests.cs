using System.Net;
using Broker.Edge.Hosting;

namespace Broker.Edge.Tests.Hosting;

public class AdmissionTests
{
    private static readonly IPAddress A = IPAddress.Parse("10.0.0.1");
    private static readonly IPAddress B = IPAddress.Parse("10.0.0.2");
    private static readonly IPAddress C = IPAddress.Parse("10.0.0.3");

    [Fact]
    public void The_node_and_each_listener_hold_at_most_their_limit_until_connections_end()
    {
        var admission = new Admission(new ConnectionLimits { MaxConnections = 3, MaxConnectionsPerListener = 2 });
        int mqtt = 0, amqp = 0;

        Assert.Equal(Refusal.None, admission.TryAdmit(A, ref mqtt));
        Assert.Equal(Refusal.None, admission.TryAdmit(A, ref mqtt));
        Assert.Equal(Refusal.ListenerFull, admission.TryAdmit(A, ref mqtt));
        Assert.Equal(Refusal.None, admission.TryAdmit(A, ref amqp));
        Assert.Equal(Refusal.NodeFull, admission.TryAdmit(A, ref amqp));
        Assert.Equal((3, 2, 1), (admission.Connections, mqtt, amqp));

        admission.Release(ref mqtt);
        Assert.Equal(Refusal.None, admission.TryAdmit(B, ref amqp));
        Assert.Equal((3, 1, 2), (admission.Connections, mqtt, amqp));
    }

    [Fact]
    public void Connects_per_address_follow_a_token_bucket()
    {
        var now = 0L;
        var admission = new Admission(new ConnectionLimits { ConnectRatePerIp = 2, ConnectBurstPerIp = 3 }, () => now);
        var count = 0;

        Assert.All(Enumerable.Range(0, 3), _ => Assert.Equal(Refusal.None, admission.TryAdmit(A, ref count)));
        Assert.Equal(Refusal.ConnectRate, admission.TryAdmit(A, ref count));
        Assert.Equal(Refusal.None, admission.TryAdmit(B, ref count));   // another address has its own bucket
        now += 500;                                                      // 2/s: one more after half a second
        Assert.Equal(Refusal.None, admission.TryAdmit(A, ref count));
        Assert.Equal(Refusal.ConnectRate, admission.TryAdmit(A, ref count));
        Assert.Equal(5, count);                                          // refused connects are not counted
    }

    [Fact]
    public void Failed_logins_per_address_close_it_until_they_refill()
    {
        var now = 0L;
        var admission = new Admission(new ConnectionLimits { FailedLoginsPerIp = 2, FailedLoginRefill = TimeSpan.FromSeconds(10) }, () => now);
        var count = 0;

        admission.LoginFailed(A);
        Assert.Equal(Refusal.None, admission.TryAdmit(A, ref count));
        admission.LoginFailed(A);
        Assert.Equal(Refusal.FailedLogins, admission.TryAdmit(A, ref count));
        Assert.Equal(Refusal.None, admission.TryAdmit(B, ref count));
        now += 10_000;
        Assert.Equal(Refusal.None, admission.TryAdmit(A, ref count));
        admission.LoginFailed(A);
        Assert.Equal(Refusal.FailedLogins, admission.TryAdmit(A, ref count));
    }

    [Fact]
    public void Address_buckets_stay_within_their_capacity()
    {
        var now = 0L;
        var buckets = new AddressBuckets(capacity: 2);

        Assert.True(buckets.TryTake(A, now, 1, 1));
        Assert.True(buckets.TryTake(B, now, 1, 1));
        // Full of buckets still in use: a third address passes untracked rather than growing the table.
        Assert.True(buckets.TryTake(C, now, 1, 1));
        Assert.True(buckets.TryTake(C, now, 1, 1));
        Assert.Equal(2, buckets.Count);
        Assert.False(buckets.TryTake(A, now, 1, 1));
        // Once refilled (quiet for a while), the old addresses make room.
        now += 5_000;
        Assert.True(buckets.TryTake(C, now, 1, 1));
        Assert.False(buckets.TryTake(C, now, 1, 1));
        Assert.True(buckets.Count <= 2);
    }
}
