using Broker.Edge.Hosting;

namespace Broker.Edge.Tests.Hosting;

public sealed class OpenFileLimitTests
{
    [Fact]
    public void A_soft_limit_below_the_hard_one_is_raised_to_it()
    {
        Assert.True(OperatingSystem.IsLinux(), "the broker runs on Linux");
        var (soft, hard) = OpenFileLimit.Current()!.Value;
        // Lowered only as far as this process already uses, so nothing else in it runs out meanwhile.
        var lowered = Math.Min(hard, Math.Max(soft / 2, (ulong)Directory.GetFiles("/proc/self/fd").Length + 512));
        Assert.True(OpenFileLimit.SetSoft(lowered));
        try
        {
            var raised = OpenFileLimit.Raise();
            Assert.Equal((lowered, hard), raised);
            Assert.Equal((hard, hard), OpenFileLimit.Current());
        }
        finally
        {
            OpenFileLimit.SetSoft(soft);
        }
    }
}
