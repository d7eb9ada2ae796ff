using Microsoft.DurableTask.Client;

namespace CovidFunctions.Pipeline.Orchestration;

/// <summary>What one purge did.</summary>
/// <param name="Purged">Instances whose state and history were deleted.</param>
/// <param name="IsComplete">
/// Whether every matching instance was purged: false when the call stopped at its time limit (the next run goes on),
/// null when the backend does not say.
/// </param>
/// <param name="CreatedBefore">The cut-off: only instances created before it were candidates (null: purging is off).</param>
public sealed record OrchestrationPurgeOutcome(int Purged, bool? IsComplete, DateTimeOffset? CreatedBefore);

/// <summary>
/// Deletes the Durable state and history of finished study orchestrations (completed, failed or terminated) created at
/// least <see cref="PipelineOptions.OrchestrationHistoryRetention"/> ago, through
/// <see cref="DurableTaskClient.PurgeAllInstancesAsync(PurgeInstancesFilter, CancellationToken)"/>. Without it every
/// study left its instance and history rows (about 110 for a 600-slice study) in the task hub for ever. A running,
/// pending or suspended instance is never purged, whatever its age: the status filter leaves it out.
/// </summary>
/// <remarks>
/// Nothing reads a settled study's orchestration: the Studies row holds its result, <see cref="Ingest.IngestHandler"/>
/// never restarts the orchestration of a study in a terminal state, and the watchdog treats an absent instance as not
/// running, as it treats a completed one.
/// </remarks>
public static class OrchestrationHistoryPurge
{
    /// <summary>The runtime statuses purged: the finished ones.</summary>
    public static readonly IReadOnlyList<OrchestrationRuntimeStatus> PurgedStatuses =
        [OrchestrationRuntimeStatus.Completed, OrchestrationRuntimeStatus.Failed, OrchestrationRuntimeStatus.Terminated];

    /// <summary>
    /// The lower bound of the creation-time filter. DurableTask.AzureStorage queries its Instances table with it (a
    /// non-nullable time there); Azure Table storage refuses times before 1601, so the default minimum cannot be sent.
    /// No study orchestration predates it.
    /// </summary>
    public static readonly DateTimeOffset CreatedFrom = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// Purges the finished instances created before <paramref name="now"/> − <paramref name="retention"/>; zero
    /// retention purges nothing. <paramref name="timeLimit"/> bounds the call where the backend supports it (a large
    /// backlog then continues on the next run).
    /// </summary>
    public static async Task<OrchestrationPurgeOutcome> PurgeAsync(DurableTaskClient client, DateTimeOffset now, TimeSpan retention, TimeSpan? timeLimit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        if (retention <= TimeSpan.Zero)
        {
            return new OrchestrationPurgeOutcome(0, true, null);
        }

        var createdBefore = now - retention;
        var filter = new PurgeInstancesFilter(CreatedFrom, createdBefore, PurgedStatuses) { Timeout = timeLimit };
        var result = await client.PurgeAllInstancesAsync(filter, cancellationToken).ConfigureAwait(false);
        return new OrchestrationPurgeOutcome(result.PurgedInstanceCount, result.IsComplete, createdBefore);
    }
}
