using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Hosting;

namespace CovidFunctions.FunctionApp;

/// <summary>
/// Completes the Studies table's id index in the background when the app starts (<see cref="StudyIdIndexCompletion"/>),
/// so that no request runs that scan of the whole table: before, the first all-tenant lookup that missed the index ran
/// it inside the request (on a large table, a request that could time out). Until it has finished, lookups of an id
/// without an index row read the id in each tenant; afterwards they are point reads. It starts
/// <see cref="StartDelay"/> after the app, so that instances of an older version still running during a deployment
/// (before 0be263b, writers of study rows without index rows) have stopped before the index is declared complete.
/// Once complete it costs one point read per start. The same run then completes the studies list index
/// (<see cref="IStudyListIndex"/>: a second scan; until it has finished, <c>GET /api/studies</c> reads every matching
/// study, as before the index), behind the same delay for the same reason; two point reads per start once both are done.
/// </summary>
public sealed class StudyIdIndexStartup(StudyIdIndexCompletion completion) : BackgroundService
{
    /// <summary>Wait after start-up before the completion begins (a code constant).</summary>
    public static readonly TimeSpan StartDelay = TimeSpan.FromMinutes(5);

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => completion.RunAsync(StartDelay, stoppingToken);
}
