namespace CovidFunctions.Pipeline.Notifications;

/// <summary>Event types a study emits to subscribers.</summary>
public static class StudyEventTypes
{
    public const string Completed = "study.completed";
    public const string Failed = "study.failed";
    public const string Rejected = "study.rejected";

    public static IReadOnlyList<string> All { get; } = [Completed, Failed, Rejected];
}

/// <summary>
/// Tells subscribers that a study reached a terminal state. Called from the orchestrator's notify activity (and by
/// ingest for rejects); it may run more than once for one study, so implementations deliver at most once per
/// (subscription, study attempt, event type): a study id uploaded again after it was settled unscreened and its
/// quarantine expired is a new attempt (a fresh Studies row), and its outcome is delivered again.
/// </summary>
public interface IStudyNotifier
{
    Task NotifyAsync(string tenant, string studyId, string eventType, CancellationToken cancellationToken);
}
