using CovidFunctions.Pipeline.Metering;
using Microsoft.Azure.Functions.Worker;

namespace CovidFunctions.FunctionApp.Functions;

/// <summary>
/// Closes the previous UTC month's bills once <c>Metering:CloseAfterDays</c> have passed and no study billed in them
/// is still running (at the latest after <c>Metering:CloseMaxWaitDays</c>): <see cref="UsageAutoClose"/>, the handler
/// <c>covidfn up</c> runs in its sweep loop too. Hourly, so a tenant waiting for a study is closed soon after it
/// settles; each run first bills the completed studies whose scoring write was lost (from their Studies row) and reads
/// only the studies filed without a scoring record (the Usage table's index of them), not every record of the month.
/// A step that fails (a tenant's read, a study's recording, a close) is logged and the rest of the run goes on; the
/// invocation then fails (<see cref="UsageSweepException"/>) so the host records it, and the next run retries.
/// </summary>
public sealed class MeteringFunctions(UsageAutoClose autoClose)
{
    public const string CloseUsageMonthName = "CloseUsageMonth";

    [Function(CloseUsageMonthName)]
    public Task CloseUsageMonth([TimerTrigger("0 30 * * * *")] TimerInfo timer, CancellationToken cancellationToken) =>
        autoClose.RunAsync(cancellationToken);
}
