using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Orchestration.Activities;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Functions;

/// <summary>
/// The study orchestration in Durable Functions: plain function wrappers around the same
/// <see cref="StudyOrchestrator"/> and activity classes the local Durable worker registers
/// (<see cref="StudyOrchestration.AddStudyOrchestration"/>), under the same names. Plain <c>[Function]</c> wrappers
/// rather than class-based registration, because class-based orchestrators have had discovery problems in the
/// isolated worker (azure-functions-dotnet-worker #2067).
/// </summary>
public static class OrchestrationFunctions
{
    [Function(DurableStudyOrchestrationClient.OrchestratorName)]
    public static Task<StudyOutcome> RunStudyOrchestrator([OrchestrationTrigger] TaskOrchestrationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var input = context.GetInput<StudyOrchestrationInput>() ?? throw new InvalidOperationException("the study orchestration was started without input");
        return new StudyOrchestrator().RunAsync(context, input);
    }

    [Function(StudyOrchestration.MarkStudyProcessing)]
    public static Task<bool> MarkStudyProcessing([ActivityTrigger] StudyOrchestrationInput input, FunctionContext context) =>
        RunActivityAsync<MarkStudyProcessingActivity, StudyOrchestrationInput, bool>(StudyOrchestration.MarkStudyProcessing, input, context);

    [Function(StudyOrchestration.DispatchChunk)]
    public static Task<bool> DispatchChunk([ActivityTrigger] ChunkRequest input, FunctionContext context) =>
        RunActivityAsync<DispatchChunkActivity, ChunkRequest, bool>(StudyOrchestration.DispatchChunk, input, context);

    [Function(StudyOrchestration.AggregateStudy)]
    public static Task<StudyDiagnosis> AggregateStudy([ActivityTrigger] AggregateStudyInput input, FunctionContext context) =>
        RunActivityAsync<AggregateStudyActivity, AggregateStudyInput, StudyDiagnosis>(StudyOrchestration.AggregateStudy, input, context);

    [Function(StudyOrchestration.RecordUsage)]
    public static Task<bool> RecordUsage([ActivityTrigger] RecordUsageInput input, FunctionContext context) =>
        RunActivityAsync<RecordUsageActivity, RecordUsageInput, bool>(StudyOrchestration.RecordUsage, input, context);

    [Function(StudyOrchestration.NotifyStudy)]
    public static Task<bool> NotifyStudy([ActivityTrigger] NotifyStudyInput input, FunctionContext context) =>
        RunActivityAsync<NotifyStudyActivity, NotifyStudyInput, bool>(StudyOrchestration.NotifyStudy, input, context);

    [Function(StudyOrchestration.FailStudy)]
    public static Task<bool> FailStudy([ActivityTrigger] FailStudyInput input, FunctionContext context) =>
        RunActivityAsync<FailStudyActivity, FailStudyInput, bool>(StudyOrchestration.FailStudy, input, context);

    /// <summary>Creates the activity class from the function's services (as the local worker does) and runs it.</summary>
    internal static Task<TOutput> RunActivityAsync<TActivity, TInput, TOutput>(string name, TInput input, FunctionContext context)
        where TActivity : TaskActivity<TInput, TOutput>
    {
        ArgumentNullException.ThrowIfNull(context);
        var activity = ActivatorUtilities.CreateInstance<TActivity>(context.InstanceServices);
        var instanceId = context.BindingContext.BindingData.TryGetValue("instanceId", out var id) ? id?.ToString() ?? string.Empty : string.Empty;
        return activity.RunAsync(new FunctionActivityContext(new TaskName(name), instanceId), input);
    }

    /// <summary>The activity context the Durable worker would pass: the activity's name and its orchestration's instance id.</summary>
    internal sealed class FunctionActivityContext(TaskName name, string instanceId) : TaskActivityContext
    {
        public override TaskName Name { get; } = name;

        public override string InstanceId { get; } = instanceId;
    }
}
