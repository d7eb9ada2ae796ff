using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline.Azure.Messaging;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn up</c>'s in-process scorer hides a received chunk as long as the scorer container does
/// (<c>Scorer:MessageLockDuration</c>'s default, bicep's <c>sliceLockDuration</c>): a killed local host's chunk is back
/// 20–30 s after the kill instead of 80–120 s (2 min renewed every 40 s). Safe because the Storage-queue transport renews
/// a running chunk's visibility every third of it for up to 30 min (StorageQueueRenewalTests), so a long chunk on a busy
/// machine is not handed out twice.
/// </summary>
public sealed class LocalScorerVisibilityTests
{
    [Fact]
    public void Up_s_scorer_hides_a_received_chunk_for_the_scorer_s_30_s_renewed_every_10_s()
    {
        var options = new LocalPipelineOptions { DataDirectory = Path.GetTempPath() };

        Assert.Equal(SettlementPolicy.CrashRedeliveryLock, options.ScorerVisibilityTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), options.ScorerVisibilityTimeout);
        Assert.Equal(TimeSpan.FromSeconds(10), StorageQueueTransport.RenewalInterval(options.ScorerVisibilityTimeout));
        Assert.Equal(SettlementPolicy.MaxLockRenewal, new StorageQueueTransportOptions().MaxVisibilityRenewal);
    }
}
