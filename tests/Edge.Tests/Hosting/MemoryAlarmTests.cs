using Akka.Event;
using Broker.Edge.Hosting;
using Broker.Tests.Shared;

namespace Broker.Edge.Tests.Hosting;

public sealed class MemoryAlarmTests
{
    [Fact]
    public async Task The_alarm_sets_above_the_watermark_and_clears_below_ninety_percent_of_it()
    {
        long heap = 50;
        using var alarm = new MemoryAlarm(100, NoLogger.Instance, Timeout.InfiniteTimeSpan, () => heap);
        alarm.Check();
        Assert.False(alarm.IsActive);
        Assert.True(alarm.WhenClearedAsync(CancellationToken.None).IsCompleted);

        heap = 101;
        alarm.Check();
        Assert.True(alarm.IsActive);
        var cleared = alarm.WhenClearedAsync(CancellationToken.None);

        heap = 95;
        alarm.Check();
        Assert.True(alarm.IsActive);
        Assert.False(cleared.IsCompleted);

        heap = 90;
        alarm.Check();
        Assert.False(alarm.IsActive);
        await cleared.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void A_watermark_in_bytes_wins_over_the_share_of_memory()
    {
        Assert.Equal(12345, MemoryAlarm.Watermark(0.4, 12345));
        var half = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2;
        Assert.InRange(MemoryAlarm.Watermark(0.5, 0), half - 1, half + 1);
    }

    [Fact]
    public async Task A_client_blocked_by_the_alarm_is_not_overdue_and_its_deadline_moves_by_the_time_blocked()
    {
        long heap = 200;
        using var alarm = new MemoryAlarm(100, NoLogger.Instance, Timeout.InfiniteTimeSpan, () => heap);
        alarm.Check();
        var deadline = new ClientDeadline { Ms = Environment.TickCount64 + 50 };
        var start = Environment.TickCount64;

        var blocked = deadline.WaitWhileBlockedAsync(alarm, CancellationToken.None);
        await Wait.UntilAsync(() => Environment.TickCount64 > start + 200, TimeSpan.FromSeconds(5), "the deadline to pass");
        Assert.False(deadline.TakeOverdue(Environment.TickCount64));

        heap = 10;
        alarm.Check();
        await blocked.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(deadline.Ms >= start + 250, "the deadline moved by the time spent blocked");
        Assert.True(deadline.TakeOverdue(deadline.Ms + 1));
    }
}
