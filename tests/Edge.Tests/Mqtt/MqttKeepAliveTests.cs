using Akka.Event;
using Broker.Edge.Hosting;
using Broker.Edge.Mqtt;
using Broker.Tests.Shared;

namespace Broker.Edge.Tests.Mqtt;

public class MqttKeepAliveTests
{
    private const long Now = 1_000_000;
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);

    private static (MqttKeepAlive KeepAlive, ClientDeadline Deadline) Connected(ushort seconds, long at = Now)
    {
        var keepAlive = new MqttKeepAlive();
        var deadline = new ClientDeadline();
        keepAlive.OnConnect(deadline, at, seconds, ConnectTimeout);
        keepAlive.OnConnected(deadline);
        return (keepAlive, deadline);
    }

    [Theory]
    [InlineData(true, 30, 60, 30)]
    [InlineData(true, 0, 60, 60)]
    [InlineData(false, 30, 60, 60)]
    [InlineData(true, 30, 0, 30)]
    public void A_server_keep_alive_replaces_the_clients_only_for_MQTT_5(bool v5, ushort server, ushort requested, ushort expected) =>
        Assert.Equal(expected, MqttKeepAlive.Negotiate(v5, server, requested));

    [Fact]
    public void Until_CONNACK_the_session_has_the_connect_timeout()
    {
        var keepAlive = new MqttKeepAlive();
        var deadline = new ClientDeadline();

        keepAlive.OnConnect(deadline, Now, 60, ConnectTimeout);

        Assert.Equal(Now + 10_000, deadline.Ms);
    }

    [Fact]
    public void After_CONNACK_a_client_has_one_and_a_half_keep_alives_from_its_last_packet()
    {
        var (keepAlive, deadline) = Connected(seconds: 10);
        Assert.Equal(Now + 15_000, deadline.Ms);

        keepAlive.OnPacket(deadline, Now + 4_000, closing: false);

        Assert.Equal(Now + 19_000, deadline.Ms);
        Assert.Equal(10, keepAlive.Seconds);
    }

    [Fact]
    public void Without_keep_alive_a_connected_client_has_no_deadline()
    {
        var (keepAlive, deadline) = Connected(seconds: 0);

        keepAlive.OnPacket(deadline, Now + 1, closing: false);

        Assert.Equal(long.MaxValue, deadline.Ms);
        Assert.False(keepAlive.TimedOut(deadline, long.MaxValue - 1));
    }

    [Fact]
    public void A_packet_while_closing_leaves_the_close_grace_period_in_place()
    {
        var (keepAlive, deadline) = Connected(seconds: 10);
        MqttKeepAlive.OnClosing(deadline, Now + 1_000);

        keepAlive.OnPacket(deadline, Now + 2_000, closing: true);

        Assert.Equal(Now + 1_000 + MqttKeepAlive.CloseGraceMs, deadline.Ms);
    }

    [Fact]
    public void A_client_silent_past_its_deadline_times_out()
    {
        var (keepAlive, deadline) = Connected(seconds: 10);

        Assert.True(deadline.TakeOverdue(Now + 15_001));
        Assert.True(keepAlive.TimedOut(deadline, Now + 15_001));
    }

    [Fact]
    public void A_deadline_taken_as_a_packet_arrived_is_set_again_instead_of_timing_out()
    {
        var (keepAlive, deadline) = Connected(seconds: 10);
        Assert.True(deadline.TakeOverdue(Now + 15_001));
        keepAlive.OnPacket(deadline, Now + 15_000, closing: false);

        Assert.False(keepAlive.TimedOut(deadline, Now + 15_001));
        Assert.Equal(Now + 30_000, deadline.Ms);
    }

    [Fact]
    public async Task A_silent_client_is_not_timed_out_while_the_memory_alarm_keeps_it_unread()
    {
        long heap = 200;
        using var alarm = new MemoryAlarm(100, NoLogger.Instance, Timeout.InfiniteTimeSpan, () => heap);
        alarm.Check();
        var start = Environment.TickCount64;
        var (_, deadline) = Connected(seconds: 1, at: start - 2_000);

        var blocked = deadline.WaitWhileBlockedAsync(alarm, CancellationToken.None);
        Assert.False(deadline.TakeOverdue(Environment.TickCount64), "overdue while the alarm blocks reading");

        heap = 10;
        alarm.Check();
        await blocked.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(deadline.TakeOverdue(Environment.TickCount64 + 1_000_000), "overdue once the alarm cleared");
    }
}
