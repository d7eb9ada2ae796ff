namespace CovidFunctions.Pipeline.Ingest;

/// <summary>What ingest did with an upload unit.</summary>
public enum IngestStatus
{
    /// <summary>De-identified, tiled and the orchestration started.</summary>
    Ingested,

    /// <summary>The study had been ingested before (a re-delivery): the orchestration start was re-checked, nothing re-tiled.</summary>
    AlreadyIngested,

    /// <summary>Moved to quarantine with a reason; the study is rejected.</summary>
    Rejected,

    /// <summary>The upload vanished before it could be read (and was not quarantined): the study is failed.</summary>
    Failed,

    /// <summary>
    /// Another ingest attempt holds the study (its claim, <see cref="Storage.StudyRecord.IngestClaim"/>, is live): nothing
    /// was done or counted; that attempt records the outcome. A later delivery, sweep or poll looks again. Also (reason
    /// <see cref="IngestHandler.EventOwedReason"/>) a handler without a notifier that left the upload to a host with one,
    /// its study still owing an event that reopening it would drop.
    /// </summary>
    InProgress,
}

/// <summary>
/// The result of <see cref="IngestHandler.IngestAsync"/>. <see cref="Reason"/> is a short code for rejects
/// (<c>invalid-tenant</c>, <c>zip-refused</c>, <c>unreadable</c>, <c>no-images</c>, <c>not-ct</c>, <c>deid-refused</c>, <c>internal-error</c>,
/// the assembler's codes such as <c>no-eligible-series</c> or <c>missing-geometry</c>, ...), <see cref="Detail"/> the
/// message naming the file.
/// </summary>
public sealed record IngestOutcome(
    string Tenant,
    string StudyId,
    IngestStatus Status,
    int SliceCount,
    bool OrchestrationStarted,
    string? Reason = null,
    string? Detail = null);

/// <summary>
/// The <c>reason.json</c> written next to a quarantined upload. <see cref="Files"/> names each file kept and why, where
/// the files of one folder have different reasons (the <c>skipped/</c> folder of an ingested study: files not screened).
/// </summary>
public sealed record QuarantineReason(string Tenant, string StudyId, string UploadPath, string Reason, string Detail, DateTimeOffset At)
{
    /// <summary>Each file kept in the folder (its name in the upload) and why; null where every file has the one reason.</summary>
    public IReadOnlyList<QuarantinedFile>? Files { get; init; }
}

/// <summary>One file in a quarantine folder: its name in the upload and why it is there.</summary>
public sealed record QuarantinedFile(string Name, string Why);
