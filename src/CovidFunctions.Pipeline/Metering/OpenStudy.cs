namespace CovidFunctions.Pipeline.Metering;

/// <summary>
/// A study filed under a tenant's month without a scoring record, as the usage store lists it for the hourly sweep
/// (<see cref="Storage.IUsageStore.GetOpenStudiesAsync"/>). <see cref="Version"/> is the store's version of its index
/// entry (null for a store without an index): <see cref="Storage.IUsageStore.ForgetOpenStudyAsync"/> drops the entry
/// only while it is that version, so a study filed again since (a re-ingest) stays listed.
/// </summary>
public sealed record OpenStudy(string StudyId, string? Version);
