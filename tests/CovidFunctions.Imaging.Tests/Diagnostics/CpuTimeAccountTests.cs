using CovidFunctions.Imaging.Diagnostics;

namespace CovidFunctions.Imaging.Tests.Diagnostics;

public sealed class CpuTimeAccountTests
{
    private static readonly TimeSpan Spin = TimeSpan.FromMilliseconds(150);

    [Fact]
    public void ThreadCpuTime_IsSupportedOnLinux()
    {
        Assert.Equal(OperatingSystem.IsLinux() || OperatingSystem.IsWindows(), ThreadCpuTime.IsSupported);
    }

    [Fact]
    public async Task Measure_CountsItsOwnWork_NotWorkOnOtherThreadsAtTheSameTime()
    {
        // Both sides burn a fixed amount of their own thread's CPU time (not wall time), so the assertions hold however
        // busy the machine is: the measured side is counted, the unmeasured one is in the process total only.
        var account = new CpuTimeAccount();
        var processBefore = Environment.CpuUsage.TotalTime;
        var unmeasured = Task.Factory.StartNew(() => BurnOwnCpu(Spin), TaskCreationOptions.LongRunning);
        var measured = Task.Factory.StartNew(() => account.Measure(() => BurnOwnCpu(Spin)), TaskCreationOptions.LongRunning);
        await Task.WhenAll(unmeasured, measured);
        var processDelta = Environment.CpuUsage.TotalTime - processBefore;

        Assert.True(account.Total >= Spin, $"measured {account.Total.TotalMilliseconds:0} ms, burned at least {Spin.TotalMilliseconds:0} ms");
        Assert.True(processDelta >= account.Total + Spin, $"process {processDelta.TotalMilliseconds:0} ms, measured {account.Total.TotalMilliseconds:0} ms");
    }

    [Fact]
    public void Measure_AddsAcrossCalls_AndReturnsTheValue_EvenWhenTheWorkThrows()
    {
        var account = new CpuTimeAccount();
        Assert.Equal(42, account.Measure(() => { BurnOwnCpu(TimeSpan.FromMilliseconds(20)); return 42; }));
        var afterOne = account.Total;
        Assert.Throws<InvalidOperationException>(() => account.Measure<int>(() =>
        {
            BurnOwnCpu(TimeSpan.FromMilliseconds(20));
            throw new InvalidOperationException("work failed");
        }));

        Assert.True(afterOne >= TimeSpan.FromMilliseconds(20));
        Assert.True(account.Total >= afterOne + TimeSpan.FromMilliseconds(20));
    }

    private static int BurnOwnCpu(TimeSpan amount)
    {
        var start = ThreadCpuTime.Current();
        var x = 0;
        while (ThreadCpuTime.Current() - start < amount)
        {
            for (var i = 0; i < 10_000; i++)
            {
                x = unchecked((x * 31) + i);
            }
        }

        return x;
    }
}
