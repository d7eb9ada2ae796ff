using CovidFunctions.Pipeline.Orchestration;

namespace CovidFunctions.Pipeline.Metering;

/// <summary>
/// A study filed under a tenant's month without a scoring record, as the usage store lists it for the hourly sweep
/// (<see cref="Storage.IUsageStore.GetOpenStudiesAsync"/>). <see cref="Version"/> is the store's version of its index
/// entry (null for a store without an index): <see cref="Storage.IUsageStore.ForgetOpenStudyAsync"/> drops the entry
/// only while it is that version, so a study filed again since (a re-ingest) stays listed.
/// </summary>
public sealed record OpenStudy(string StudyId, string? Version)
{
    /// <summary>
    /// The studies of a month's filed records that have no scoring record, in study id order, without a version: the
    /// open studies as the records alone tell them (a store without an index, a month not indexed yet or closing).
    /// </summary>
    public static IReadOnlyList<OpenStudy> Of(IEnumerable<FiledUsage> filed) =>
        [.. filed
            .GroupBy(f => f.Record.StudyId, StringComparer.Ordinal)
            .Where(g => g.All(f => f.Record.Stage != StudyOrchestration.UsageStage))
            .Select(g => new OpenStudy(g.Key, null))
            .OrderBy(o => o.StudyId, StringComparer.Ordinal)];
}
