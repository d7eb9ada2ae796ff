using CovidFunctions.Pipeline.Metering;
using Microsoft.Azure.Functions.Worker;

namespace CovidFunctions.FunctionApp.Functions;

/// <summary>
/// Closes the previous UTC month's bills once <c>Metering:CloseAfterDays</c> have passed and no study billed in them
/// is still running (at the latest after <c>Metering:CloseMaxWaitDays</c>): <see cref="UsageAutoClose"/>, the handler
/// <c>covidfn up</c> runs in its sweep loop too. Hourly, so a tenant waiting for a study is closed soon after it
/// settles; a run with nothing to close reads only the month's tenant list and snapshots.
/// </summary>
public sealed class MeteringFunctions(UsageAutoClose autoClose)
{
    public const string CloseUsageMonthName = "CloseUsageMonth";

    [Function(CloseUsageMonthName)]
    public Task CloseUsageMonth([TimerTrigger("0 30 * * * *")] TimerInfo timer, CancellationToken cancellationToken) =>
        autoClose.RunAsync(cancellationToken);
}
