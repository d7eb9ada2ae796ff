namespace CovidFunctions.Pipeline;

/// <summary>
/// The storage layout shared by the local host and Azure (bicep/ creates the same names). Blob paths inside a
/// container always start with the tenant: <c>{tenant}/…</c>.
/// </summary>
public static class PipelineNames
{
    /// <summary>Raw uploads: <c>{tenant}/{name}.zip|.dcm|.nii(.gz)</c> or a folder <c>{tenant}/{folder}/…</c> closed by <c>.complete</c>.</summary>
    public const string UploadsContainer = "ct-uploads";

    /// <summary>De-identified tiles: <c>{tenant}/{studyId}/tiles/manifest.json</c> and chunk files (docs/tiles.md).</summary>
    public const string SlicesContainer = "slices";

    /// <summary>Model outputs: <c>{tenant}/{studyId}/chunks/{chunk:D4}.json</c>, <c>masks/</c>, <c>overlays/{slice:D4}.png</c>, <c>montage.png</c>.</summary>
    public const string ResultsContainer = "results";

    /// <summary>Rejected uploads: the original under <c>{tenant}/{studyId}/</c> plus <c>reason.json</c>.</summary>
    public const string QuarantineContainer = "quarantine";

    /// <summary>Poison messages after the last delivery attempt, with the reason: <c>{queue}/{messageId}-{n}.json</c>.</summary>
    public const string DeadLetterContainer = "dead-letters";

    /// <summary>Chunk requests for the scorer (Storage queue locally, Service Bus queue in Azure).</summary>
    public const string SliceRequestsQueue = "slice-requests";

    /// <summary>Chunk results from the scorer, relayed to the orchestration as external events.</summary>
    public const string SliceResultsQueue = "slice-results";

    public const string StudiesTable = "Studies";
    public const string SliceResultsTable = "SliceResults";
    public const string UsageTable = "Usage";
    public const string WebhookSubscriptionsTable = "WebhookSubscriptions";
    public const string WebhookDeliveriesTable = "WebhookDeliveries";

    /// <summary>The Function app's tenant-bound results-API keys, as SHA-256 hashes only (<c>Api/ApiKeys.cs</c>).</summary>
    public const string ApiKeysTable = "ApiKeys";

    /// <summary>
    /// Fixed-window request counters shared by every instance of the Function app (the webhook test endpoint's per-tenant
    /// limit, <c>Notifications/WebhookTestRateLimiter.cs</c>): PartitionKey the tenant, RowKey the limited operation.
    /// </summary>
    public const string RateLimitsTable = "RateLimits";

    /// <summary>The external event a chunk result is raised as.</summary>
    public const string ChunkResultEvent = "chunk-result";

    /// <summary>The marker blob that closes a folder upload.</summary>
    public const string CompleteMarker = ".complete";

    /// <summary>The Durable task hub name, locally and in Azure (host.json).</summary>
    public const string TaskHubName = "covidfn";

    /// <summary>The tenant used when none is given.</summary>
    public const string DefaultTenant = "default";

    public static IReadOnlyList<string> Containers { get; } = [UploadsContainer, SlicesContainer, ResultsContainer, QuarantineContainer, DeadLetterContainer];

    public static IReadOnlyList<string> Queues { get; } = [SliceRequestsQueue, SliceResultsQueue];

    public static IReadOnlyList<string> Tables { get; } = [StudiesTable, SliceResultsTable, UsageTable, WebhookSubscriptionsTable, WebhookDeliveriesTable, ApiKeysTable, RateLimitsTable];
}
