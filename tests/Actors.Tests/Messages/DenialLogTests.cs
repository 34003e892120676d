using Akka.Event;
using Broker.Actors.Messages;

namespace Broker.Actors.Tests.Messages;

public class DenialLogTests
{
    private sealed class Lines : LoggingAdapterBase
    {
        public Lines() : base(DefaultLogMessageFormatter.Instance)
        {
        }

        public List<string> Written { get; } = [];

        public override bool IsDebugEnabled => true;
        public override bool IsInfoEnabled => true;
        public override bool IsWarningEnabled => true;
        public override bool IsErrorEnabled => true;

        protected override void NotifyLog(LogLevel logLevel, object message, Exception? cause = null) => Written.Add(message.ToString()!);
    }

    [Fact]
    public void A_flood_is_logged_at_a_bounded_rate_and_the_rest_summed_up()
    {
        var now = 0L;
        var denials = new DenialLog(() => now);
        var log = new Lines();

        var logged = Enumerable.Range(0, 1000).Count(i => denials.Write(log, $"denied {i}"));

        Assert.Equal(DenialLog.LinesPerWindow, logged);
        Assert.Equal(DenialLog.LinesPerWindow, log.Written.Count);
        now += DenialLog.WindowMs;
        Assert.True(denials.Write(log, "later"));
        Assert.Contains(log.Written, l => l.Contains((1000 - DenialLog.LinesPerWindow).ToString(System.Globalization.CultureInfo.InvariantCulture) + " more denials", StringComparison.Ordinal));
        Assert.Equal("later", log.Written[^1]);
    }
}
