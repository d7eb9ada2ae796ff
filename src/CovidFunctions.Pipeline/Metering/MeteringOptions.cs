namespace CovidFunctions.Pipeline.Metering;

/// <summary>
/// When a month's bill is closed automatically (<see cref="UsageAutoClose"/>: the Function app's hourly timer and
/// <c>covidfn up</c>'s sweep loop). App settings <c>Metering__CloseAfterDays</c> and <c>Metering__CloseMaxWaitDays</c>.
/// </summary>
public sealed class MeteringOptions
{
    public const string SectionName = "Metering";

    /// <summary>
    /// Days after a month ends (00:00 UTC on the 1st of the next month) before its bill is closed, so that studies
    /// begun in its last hours can finish (3). A tenant's month with a study still running waits longer, up to
    /// <see cref="CloseMaxWaitDays"/>.
    /// </summary>
    public int CloseAfterDays { get; init; } = 3;

    /// <summary>
    /// Days after a month ends when its bill is closed even if a study billed in it is still running (10): that study
    /// is then billed, whole, in the first open month when it completes (docs/api.md "Metering").
    /// </summary>
    public int CloseMaxWaitDays { get; init; } = 10;

    /// <summary>
    /// Throws <see cref="InvalidOperationException"/> naming the setting when a value is out of range. Both stay below
    /// 28: the timer closes the month before the current one, so a wait past the shortest month would skip a month.
    /// </summary>
    public void Validate()
    {
        if (CloseAfterDays is < 0 or > 27)
        {
            throw new InvalidOperationException($"{SectionName}:{nameof(CloseAfterDays)} must be 0-27 (days after the month ends; got '{CloseAfterDays}').");
        }

        if (CloseMaxWaitDays < CloseAfterDays || CloseMaxWaitDays > 27)
        {
            throw new InvalidOperationException($"{SectionName}:{nameof(CloseMaxWaitDays)} must be from {nameof(CloseAfterDays)} ({CloseAfterDays}) to 27 (got '{CloseMaxWaitDays}').");
        }
    }
}
