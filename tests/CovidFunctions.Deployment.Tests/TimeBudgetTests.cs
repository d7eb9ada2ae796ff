using System.Globalization;
using System.Text.Json.Nodes;
using CovidFunctions.Pipeline;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Deployment.Tests;

/// <summary>
/// The Azure time budgets against the work the deployed pipeline accepts (docs/deployment.md "Time budgets"; the rates
/// are measured in docs/benchmarks.md "Ingest rate and the Function timeout"). Each budget is read from what is deployed
/// (host.json, the compiled bicep, the code default where bicep sets nothing), each cost from a measured rate or a
/// bound bicep itself sets; the constants below name their source.
/// </summary>
[Collection(CompiledTemplateCollection.Name)]
public sealed class TimeBudgetTests(CompiledTemplateFixture fixture)
{
    /// <summary>
    /// The slowest measured ingest, in MiB of upload per second of wall time: the 300-slice phantom re-encoded JPEG 2000
    /// lossless (61.5 MiB; <c>gdcmconv --j2k</c>) through <c>covidfn up</c> + <c>covidfn submit</c>, 54.3 s and 55.9 s
    /// by the handler's own timing (2026-11-28, the shared 2-core dev VM at load 15-18; de-identification decodes
    /// every frame, ~52 ms of CPU each). Native input ran at 9.3-11.2 MiB/s, JPEG lossless at 3.1 MiB/s. The slower run.
    /// A Flex Consumption instance of 2048 MB has one vCPU shared by up to four blob-triggered ingests
    /// (host.json blobs.maxDegreeOfParallelism) and the Durable activities, so the loaded VM stands in for it.
    /// </summary>
    private const double SlowestIngestMiBPerSecond = 61.5 / 55.87;

    /// <summary>Headroom over the measured rate: another machine, another load, an Azure download instead of Azurite's.</summary>
    private const double Margin = 1.5;

    /// <summary>
    /// The longest Flex Consumption lets an execution finish when its instance is scaled in (60 minutes; functionTimeout
    /// itself may be unbounded, but an ingest longer than this can be cut at any scale-in and is then retried from the start).
    /// </summary>
    private static readonly TimeSpan FlexScaleInGrace = TimeSpan.FromMinutes(60);

    /// <summary>
    /// A serverless GPU replica's allocation and the pull of the scorer image: an estimate, not a measurement (no Azure
    /// account here). The base image nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04 carries the CUDA 13 runtime libraries
    /// and cuDNN 9 (several GB unpacked), plus ONNX Runtime's CUDA provider, the .NET runtime and the 15 MB model.
    /// </summary>
    private static readonly TimeSpan GpuReplicaAndImagePull = TimeSpan.FromMinutes(5);

    [Fact]
    public void FunctionTimeout_CoversTheSlowestIngestOfTheLargestUploadAccepted()
    {
        var timeout = FunctionTimeout();
        var maxUploadBytes = long.Parse(FunctionAppSetting("Pipeline__MaxUploadBytes") ?? new PipelineOptions().MaxUploadBytes.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        Assert.True(maxUploadBytes > 0, "Pipeline__MaxUploadBytes 0 accepts uploads of any size: no timeout covers their ingest");

        var worstIngest = TimeSpan.FromSeconds(maxUploadBytes / (1024.0 * 1024.0) / SlowestIngestMiBPerSecond);
        Assert.True(timeout >= worstIngest * Margin,
            $"host.json functionTimeout {timeout} is shorter than {Margin} x the slowest measured ingest of the largest upload accepted ({maxUploadBytes} bytes at {SlowestIngestMiBPerSecond:0.00} MiB/s: {worstIngest:hh\\:mm\\:ss}): such an ingest is cut by the timeout, the worker restarted, and the upload retried until the watchdog fails it");
        Assert.True(timeout <= FlexScaleInGrace,
            $"host.json functionTimeout {timeout} is longer than the {FlexScaleInGrace.TotalMinutes} min Flex Consumption gives an execution at scale-in: lower Pipeline__MaxUploadBytes instead");
    }

    [Fact]
    public void ChunkTimeout_CoversTheScorersColdStartFromZeroReplicas()
    {
        var chunkTimeout = TimeSpan.Parse(FunctionAppSetting("Pipeline__ChunkTimeout") ?? new PipelineOptions().ChunkTimeout.ToString("c"), CultureInfo.InvariantCulture);
        var scorer = fixture.Main.Module("containerapps").ResourcesOfType("Microsoft.App/containerApps").Single()["properties"]!["template"]!;
        var scale = scorer["scale"]!;
        var startup = scorer["containers"]!.AsArray().SelectMany(c => c!["probes"]!.AsArray()).Single(p => (string?)p!["type"] == "Startup")!;

        // From zero replicas the first chunk of a study waits for KEDA's next poll, a GPU replica and its image, then
        // for /readyz (models loaded, warm-up batch run), which the startup probe allows up to its whole window before
        // it restarts the replica. The orchestrator's round deadline (ChunkTimeout from dispatch) must outlast that,
        // or each chunk is dispatched a second time (a second attempt counted, the chunk scored twice).
        var coldStart = (int)scale["minReplicas"]! > 0
            ? TimeSpan.Zero
            : TimeSpan.FromSeconds((int)scale["pollingInterval"]!)
              + GpuReplicaAndImagePull
              + TimeSpan.FromSeconds(((int?)startup["initialDelaySeconds"] ?? 0) + ((int)startup["periodSeconds"]! * (int)startup["failureThreshold"]!));
        Assert.True(chunkTimeout >= coldStart * Margin,
            $"Pipeline__ChunkTimeout {chunkTimeout} is shorter than {Margin} x the scorer's cold start from zero replicas ({coldStart}: KEDA poll, GPU replica and image pull, startup probe window): the first dispatch of a study arriving at an idle scorer times out and is re-dispatched");

        // The watchdog's premise (PipelineOptions.StuckStudyAge): well above the longest orchestration.
        var longestOrchestration = chunkTimeout * new PipelineOptions().MaxChunkAttempts;
        Assert.True(longestOrchestration * 2 <= new PipelineOptions().StuckStudyAge,
            $"MaxChunkAttempts x ChunkTimeout ({longestOrchestration}) is not well under StuckStudyAge ({new PipelineOptions().StuckStudyAge}): the watchdog could fail running studies");
    }

    /// <summary>
    /// A healthy chunk's scoring time with room: 32 slices at 0.27 s on the 2-core CPU is about 9 s (docs/benchmarks.md);
    /// on the GPU it is well under a second. The CPU figure, the slower.
    /// </summary>
    private static readonly TimeSpan HealthyChunkScoring = TimeSpan.FromSeconds(9);

    [Fact]
    public void ChunkTimeout_OutlastsAChunkHeldBackByAHungOneAndThenScored()
    {
        // A redelivered chunk waits on its replica while another chunk runs, at most until that one is taken as hung
        // (Scorer__HungChunkAfter; DeliveryGate.DefaultHungAfter when bicep sets nothing), then is scored. The
        // orchestrator's round deadline (ChunkTimeout, from dispatch) must outlast both, or the chunk held back is
        // dispatched a second time while it is still waiting (a second attempt counted, the chunk scored twice).
        var chunkTimeout = TimeSpan.Parse(FunctionAppSetting("Pipeline__ChunkTimeout") ?? new PipelineOptions().ChunkTimeout.ToString("c"), CultureInfo.InvariantCulture);
        var scorer = fixture.Main.Module("containerapps").ResourcesOfType("Microsoft.App/containerApps").Single()["properties"]!["template"]!;
        var hungSetting = scorer["containers"]!.AsArray().SelectMany(c => c!["env"]!.AsArray()).SingleOrDefault(e => (string?)e!["name"] == "Scorer__HungChunkAfter");
        var hungAfter = hungSetting is null
            ? CovidFunctions.Pipeline.Messaging.DeliveryGate.DefaultHungAfter
            : TimeSpan.Parse((string)hungSetting["value"]!, CultureInfo.InvariantCulture);

        var heldBack = hungAfter + HealthyChunkScoring;
        Assert.True(chunkTimeout >= heldBack * Margin,
            $"Pipeline__ChunkTimeout {chunkTimeout} is shorter than {Margin} x a chunk held back until another is taken as hung (Scorer__HungChunkAfter {hungAfter}) and then scored ({HealthyChunkScoring}): the chunk held back is dispatched again while it waits");
    }

    private static TimeSpan FunctionTimeout()
    {
        var host = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "src", "CovidFunctions.FunctionApp", "host.json")))!;
        var value = (string?)host["functionTimeout"];
        Assert.False(value is null or "-1", "host.json functionTimeout must be set and bounded (a hung ingest would hold its claim until the watchdog)");
        return TimeSpan.Parse(value!, CultureInfo.InvariantCulture);
    }

    /// <summary>The literal value bicep sets for a Function app setting, or null when it leaves it to the code default.</summary>
    private string? FunctionAppSetting(string name)
    {
        var settings = fixture.Main.Module("functionapp").ResourcesOfType("Microsoft.Web/sites/config").Single()["properties"]!.AsObject();
        return settings[name] is { } value ? value.GetValue<string>() : null;
    }
}
