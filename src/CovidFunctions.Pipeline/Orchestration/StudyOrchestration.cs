using CovidFunctions.Pipeline.Orchestration.Activities;
using Microsoft.DurableTask;

namespace CovidFunctions.Pipeline.Orchestration;

/// <summary>
/// The study orchestration's names and registration, shared by every host (the local Durable worker, the Function
/// app, the tests) so they all register the same orchestrator and activities under the same names.
/// </summary>
public static class StudyOrchestration
{
    public const string MarkStudyProcessing = "MarkStudyProcessing";
    public const string DispatchChunk = "DispatchChunk";
    public const string AggregateStudy = "AggregateStudy";
    public const string RecordUsage = "RecordUsage";
    public const string NotifyStudy = "NotifyStudy";
    public const string FailStudy = "FailStudy";

    /// <summary>The usage stage the orchestration records.</summary>
    public const string UsageStage = "scoring";

    /// <summary>Activity names and their classes (constructor-injected from the host's services).</summary>
    public static IReadOnlyList<(string Name, Type Type)> Activities { get; } =
    [
        (MarkStudyProcessing, typeof(MarkStudyProcessingActivity)),
        (DispatchChunk, typeof(DispatchChunkActivity)),
        (AggregateStudy, typeof(AggregateStudyActivity)),
        (RecordUsage, typeof(RecordUsageActivity)),
        (NotifyStudy, typeof(NotifyStudyActivity)),
        (FailStudy, typeof(FailStudyActivity)),
    ];

    /// <summary>
    /// Registers <see cref="StudyOrchestrator"/> as <see cref="DurableStudyOrchestrationClient.OrchestratorName"/> and
    /// every activity of <see cref="Activities"/>. The host's services must provide IBlobContainers, IStudyStore,
    /// IUsageStore, IMessageSender, IStudyNotifier, UploadReadKey and IOptions&lt;PipelineOptions&gt;.
    /// </summary>
    public static DurableTaskRegistry AddStudyOrchestration(this DurableTaskRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        registry.AddOrchestrator(DurableStudyOrchestrationClient.OrchestratorName, typeof(StudyOrchestrator));
        foreach (var (name, type) in Activities)
        {
            registry.AddActivity(name, type);
        }

        return registry;
    }
}
