using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Reports;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Api;

/// <summary>The query of <c>GET /api/studies</c>.</summary>
public sealed record StudyListQuery(
    string? Tenant = null,
    string? Status = null,
    DateTimeOffset? From = null,
    DateTimeOffset? To = null,
    string? Continuation = null,
    int? PageSize = null);

/// <summary>The body of <c>POST /api/webhooks</c>.</summary>
public sealed record CreateWebhookRequest(string? Url, string? Tenant, IReadOnlyList<string>? Events, string? Secret);

/// <summary>
/// The (optional) body of <c>POST /api/webhooks/{id}/rotate-secret</c>: how many hours the old secret keeps signing
/// (default <c>Webhooks:SecretRotationOverlap</c>, 24; 0-168) and the new secret (default: generated, shown once).
/// </summary>
public sealed record RotateWebhookSecretRequest(double? OverlapHours, string? Secret);

/// <summary>
/// The results API as framework-neutral handlers: each takes the caller and the request values and returns an
/// <see cref="ApiResponse"/>. <see cref="ResultsApiEndpoints"/> maps them onto ASP.NET Core (covidfn up); the Function
/// app's HTTP functions call the same methods. A caller sees only its tenants: another tenant's study or
/// subscription answers 404, exactly like one that does not exist. The webhook test endpoint is rate-limited per tenant
/// (<c>webhookTests</c>; without one, a per-process limiter with the default limits). <c>time</c> is the clock that
/// says which month is current (usage defaults, which months may be closed; the system clock without one).
/// </summary>
public sealed class ResultsApi(
    IStudyStore studies,
    IBlobContainers containers,
    UsageQueries usage,
    WebhookManager webhooks,
    ResultsApiOptions options,
    WebhookTestRateLimiter? webhookTests = null,
    TimeProvider? time = null,
    ILogger<ResultsApi>? logger = null)
{
    // The report renderer logs an image path it refuses (one outside the study's own results); without a logger that
    // refusal would only show as a note on the page.
    private readonly ILogger _logger = logger ?? (ILogger)NullLogger.Instance;

    private readonly WebhookTestRateLimiter _webhookTests = webhookTests ?? WebhookTestRateLimiter.InMemory(new WebhookOptions());

    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public const int DefaultPageSize = 50;
    public const int MaxPageSize = 500;

    /// <summary>
    /// The most webhook subscriptions one tenant may hold through the API (<c>POST /api/webhooks</c> answers 409 beyond
    /// it). Each study event of the tenant is sent to every subscription that wants it, each one an outbound request
    /// made at once by the notify activity, and each subscription keeps a secret in Key Vault: without a bound a tenant
    /// multiplies both at will. The operator's <c>covidfn webhooks add</c> is not bound by it.
    /// </summary>
    public const int MaxWebhooksPerTenant = 25;

    /// <summary>
    /// How many subscriptions one tenant may create through the API per window of the webhook test limit
    /// (<c>Webhooks:TestRateWindow</c>, one minute by default; 429 beyond it). <see cref="MaxWebhooksPerTenant"/> bounds
    /// what a tenant holds, not how fast it deletes and re-creates: each create and delete writes a secret to the Key
    /// Vault every tenant's deliveries read theirs from (a vault has one throttling budget), and each create resolves a
    /// host name the tenant chose.
    /// </summary>
    public const int MaxWebhookCreatesPerWindow = 10;

    /// <summary>
    /// How many secret rotations one tenant may make through the API per window of the webhook test limit (429 beyond):
    /// each writes a secret to the Key Vault every tenant's deliveries read theirs from.
    /// </summary>
    public const int MaxSecretRotationsPerWindow = 10;

    public async Task<ApiResponse> ListStudiesAsync(ApiCaller caller, StudyListQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(query);
        if (query.Tenant is not null && !StudyIds.IsValidTenant(query.Tenant))
        {
            return ApiResponse.Error(400, $"tenant '{query.Tenant}' is not valid");
        }

        if (query.Tenant is not null && !caller.CanSee(query.Tenant))
        {
            return ApiResponse.Error(403, $"this key may not read tenant '{query.Tenant}'");
        }

        if (query.Status is not null && query.Status is not (StudyStatus.Queued or StudyStatus.Processing or StudyStatus.Completed or StudyStatus.Failed or StudyStatus.Rejected))
        {
            return ApiResponse.Error(400, $"status '{query.Status}' is not one of queued, processing, completed, failed, rejected");
        }

        var pageSize = query.PageSize ?? DefaultPageSize;
        if (pageSize is < 1 or > MaxPageSize)
        {
            return ApiResponse.Error(400, $"pageSize must be 1-{MaxPageSize} (got {pageSize})");
        }

        // A range that ends before it starts can hold no study: an empty page would hide the swapped values.
        if (query.From is { } rangeStart && query.To is { } rangeEnd && rangeStart > rangeEnd)
        {
            return ApiResponse.Error(400, $"from ({IsoUtc(rangeStart)}) is after to ({IsoUtc(rangeEnd)})");
        }

        // In tenant order: among studies at the same place the merge lists the first tenant's first.
        var tenants = ListedTenants(caller, query.Tenant);
        var scope = tenants is null ? "*" : string.Join(',', tenants);
        StudyListPosition? after = null;
        if (query.Continuation is not null)
        {
            switch (ReadContinuation(query.Continuation, scope, out after))
            {
                case ContinuationRead.NotAToken:
                    return ApiResponse.Error(400, "continuation is not a token this list returned (pass the last page's \"continuation\" back unchanged)");
                case ContinuationRead.OtherList:
                    return ApiResponse.Error(400, "continuation belongs to a list of other tenants (another tenant or key): list again without it");
            }
        }

        // Keyset paging: the token is the last item's place in the list order (StudyListPosition: newest first, then
        // study id), not a count of items to skip, so a study created or changing status between two pages neither
        // repeats an item nor hides one. The store reads from that place on (the table store about one page of its
        // list index; docs/api.md says what each filter costs).
        var listed = studies.ListAsync(new StudyListRequest(tenants, query.Status, query.From, query.To, after, pageSize), cancellationToken);
        var items = new List<StudySummary>(pageSize);
        var more = false;
        await foreach (var study in listed.ConfigureAwait(false))
        {
            // The store lists only the tenants asked for; this is the second guard.
            if (!caller.CanSee(study.Tenant))
            {
                continue;
            }

            if (items.Count == pageSize)
            {
                more = true;
                break;
            }

            items.Add(Summary(study));
        }

        return ApiResponse.Json(new StudyPage(items, more ? EncodeContinuation(items[^1], scope) : null));
    }

    public async Task<ApiResponse> GetStudyAsync(ApiCaller caller, string studyId, string? tenant, CancellationToken cancellationToken)
    {
        var study = await FindAsync(caller, studyId, tenant, cancellationToken).ConfigureAwait(false);
        return study is null ? ApiResponse.NotFound($"study {studyId}") : ApiResponse.Json(Detail(study));
    }

    public async Task<ApiResponse> GetReportAsync(ApiCaller caller, string studyId, string? tenant, CancellationToken cancellationToken)
    {
        var study = await FindAsync(caller, studyId, tenant, cancellationToken).ConfigureAwait(false);
        if (study is null)
        {
            return ApiResponse.NotFound($"study {studyId}");
        }

        var html = await StudyReportRenderer.RenderAsync(study, containers.Get(PipelineNames.ResultsContainer), options.PublicBaseUrl, _logger, cancellationToken).ConfigureAwait(false);
        return ApiResponse.Text(ApiResponse.HtmlContentType, html);
    }

    public async Task<ApiResponse> GetFhirAsync(ApiCaller caller, string studyId, string? tenant, CancellationToken cancellationToken)
    {
        var study = await FindAsync(caller, studyId, tenant, cancellationToken).ConfigureAwait(false);
        if (study is null)
        {
            return ApiResponse.NotFound($"study {studyId}");
        }

        var report = FhirDiagnosticReportBuilder.Build(study, options.PublicBaseUrl);
        return ApiResponse.Text(ApiResponse.FhirJsonContentType, FhirDiagnosticReportBuilder.ToJson(report));
    }

    /// <summary>A result file of the study (overlay or montage PNG, chunk JSON) by its path below <c>{tenant}/{studyId}/</c>.</summary>
    public async Task<ApiResponse> GetFileAsync(ApiCaller caller, string studyId, string path, string? tenant, CancellationToken cancellationToken)
    {
        var study = await FindAsync(caller, studyId, tenant, cancellationToken).ConfigureAwait(false);
        if (study is null)
        {
            return ApiResponse.NotFound($"study {studyId}");
        }

        if (!StudyViews.IsPlainRelativePath(path))
        {
            return ApiResponse.Error(400, "file path must be '/'-separated names below the study's folder (no empty, '.' or '..' segment, no '\\')");
        }

        var full = $"{study.Tenant}/{study.StudyId}/{path}";
        var results = containers.Get(PipelineNames.ResultsContainer);
        if (!await results.ExistsAsync(full, cancellationToken).ConfigureAwait(false))
        {
            return ApiResponse.NotFound($"file {path}");
        }

        using var buffer = new MemoryStream();
        await using (var stream = await results.OpenReadAsync(full, cancellationToken).ConfigureAwait(false))
        {
            await stream.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
        }

        return new ApiResponse(200, ContentTypeOf(full), buffer.ToArray());
    }

    public async Task<ApiResponse> GetUsageAsync(ApiCaller caller, string? tenant, string? month, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        month ??= UsageQueries.MonthOf(_time.GetUtcNow());
        if (!UsageQueries.IsValidMonth(month))
        {
            return ApiResponse.Error(400, $"month '{month}' is not yyyy-MM");
        }

        if (tenant is null)
        {
            if (caller.Tenants is { Count: 1 } single)
            {
                tenant = single.First();
            }
            else if (caller.SeesAllTenants)
            {
                return ApiResponse.Json(await usage.MonthlyTotalsForAllAsync(month, cancellationToken).ConfigureAwait(false));
            }
            else
            {
                // Each of the key's tenants (at most ApiKeys:MaxTenantsPerKey), up to UsageQueries.TenantConcurrency at once.
                var totals = await UsageQueries.ForEachTenantAsync(
                    [.. caller.Tenants!.Order(StringComparer.Ordinal)],
                    UsageQueries.TenantConcurrency,
                    (t, token) => usage.MonthlyTotalsAsync(t, month, token),
                    cancellationToken).ConfigureAwait(false);
                return ApiResponse.Json(totals);
            }
        }

        if (!StudyIds.IsValidTenant(tenant))
        {
            return ApiResponse.Error(400, $"tenant '{tenant}' is not valid");
        }

        return caller.CanSee(tenant)
            ? ApiResponse.Json(await usage.MonthlyTotalsAsync(tenant, month, cancellationToken).ConfigureAwait(false))
            : ApiResponse.Error(403, $"this key may not read tenant '{tenant}'");
    }

    /// <summary>
    /// <c>POST /api/usage/{month}/close[?tenant=]</c>: closes a past month's bills (<see cref="UsageClosing"/>), the
    /// operator's way to close a month the hourly timer missed without pointing <c>covidfn usage close</c> at the
    /// storage account. Only an all-tenant key may (403 otherwise: a tenant does not finalise its own bill). With a
    /// tenant, that tenant's snapshot; without, every tenant known to the storage is closed and the snapshots of those
    /// with records that month are answered (an array, as <c>covidfn usage close</c> prints). Idempotent: a closed month
    /// answers its stored snapshot, 200 each time. 400 for a month that is not <c>yyyy-MM</c> or an invalid tenant;
    /// 409 for the current or a later UTC month (not over yet), nothing written.
    /// </summary>
    public async Task<ApiResponse> CloseUsageMonthAsync(ApiCaller caller, string? month, string? tenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (!caller.SeesAllTenants)
        {
            return ApiResponse.Error(403, "closing a month's bills needs an all-tenant key (tenants [\"*\"])");
        }

        if (!UsageQueries.IsValidMonth(month))
        {
            return ApiResponse.Error(400, $"month '{month}' is not yyyy-MM");
        }

        if (tenant is not null && !StudyIds.IsValidTenant(tenant))
        {
            return ApiResponse.Error(400, $"tenant '{tenant}' is not valid");
        }

        if (UsageClosing.WhyNotClosable(month, _time.GetUtcNow()) is { } why)
        {
            return ApiResponse.Error(409, why);
        }

        var closing = usage.Closing(_time);
        return tenant is null
            ? ApiResponse.Json(await closing.CloseAllAsync(month!, cancellationToken).ConfigureAwait(false))
            : ApiResponse.Json(await closing.CloseAsync(tenant, month!, cancellationToken).ConfigureAwait(false));
    }

    public async Task<ApiResponse> CreateWebhookAsync(ApiCaller caller, CreateWebhookRequest? request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (request?.Url is not { Length: > 0 } url)
        {
            return ApiResponse.Error(400, "url is required");
        }

        var tenant = request.Tenant ?? (caller.Tenants is { Count: 1 } single ? single.First() : PipelineNames.DefaultTenant);
        if (!StudyIds.IsValidTenant(tenant))
        {
            return ApiResponse.Error(400, $"tenant '{tenant}' is not valid");
        }

        if (!caller.CanSee(tenant))
        {
            return ApiResponse.Error(403, $"this key may not manage tenant '{tenant}'");
        }

        // A cheap first look, before the create spends the rate limit and a host lookup; the bound itself is held by the
        // insert (AddAsync with maxPerTenant), which creates racing each other cannot pass together.
        if ((await webhooks.ListAsync(tenant, cancellationToken).ConfigureAwait(false)).Count >= MaxWebhooksPerTenant)
        {
            return ApiResponse.Error(409, $"tenant '{tenant}' already has {MaxWebhooksPerTenant} webhook subscriptions (the most a tenant may have): remove one first (DELETE /api/webhooks/{{id}})");
        }

        // Counted per tenant across instances (the test limit's store), whether the create then succeeds or not: a refused
        // target costs a host lookup too.
        var decision = await _webhookTests.TryAcquireAsync(tenant, WebhookTestRateLimiter.CreateScope, MaxWebhookCreatesPerWindow, cancellationToken).ConfigureAwait(false);
        if (!decision.Allowed)
        {
            return ApiResponse.Error(429, $"at most {MaxWebhookCreatesPerWindow} webhook subscriptions created per {_webhookTests.Window.TotalSeconds:0} s per tenant; retry after {decision.RetryAfter.TotalSeconds:0} s") with { RetryAfter = decision.RetryAfter };
        }

        try
        {
            var created = await webhooks.AddAsync(tenant, url, request.Events, request.Secret, MaxWebhooksPerTenant, cancellationToken).ConfigureAwait(false);
            return ApiResponse.Json(new CreatedWebhookResponse(WebhookView.Of(created.Subscription), created.SecretGenerated ? created.Secret : null), 201);
        }
        catch (WebhookTargetRefusedException ex)
        {
            return ApiResponse.Error(422, "webhook target refused: " + ex.Message);
        }
        catch (ArgumentException ex)
        {
            return ApiResponse.Error(400, ex.Message);
        }
        catch (Exception ex) when (ex is WebhookLimitException or WebhookConflictException)
        {
            return ApiResponse.Error(409, ex.Message);
        }
    }

    public async Task<ApiResponse> ListWebhooksAsync(ApiCaller caller, string? tenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (tenant is not null && !StudyIds.IsValidTenant(tenant))
        {
            return ApiResponse.Error(400, $"tenant '{tenant}' is not valid");
        }

        if (tenant is not null && !caller.CanSee(tenant))
        {
            return ApiResponse.Error(403, $"this key may not read tenant '{tenant}'");
        }

        // A key bound to several tenants lists each of its tenants (before: every tenant's subscriptions, then filtered).
        var all = new List<WebhookSubscription>();
        foreach (var listed in ListedTenants(caller, tenant) is { } tenants ? tenants.Select(t => (string?)t) : [null])
        {
            all.AddRange(await webhooks.ListAsync(listed, cancellationToken).ConfigureAwait(false));
        }

        return ApiResponse.Json(all.Where(s => caller.CanSee(s.Tenant)).Select(WebhookView.Of).ToList());
    }

    public async Task<ApiResponse> DeleteWebhookAsync(ApiCaller caller, string id, string? tenant, CancellationToken cancellationToken)
    {
        var subscription = await FindWebhookAsync(caller, id, tenant, cancellationToken).ConfigureAwait(false);
        if (subscription is null)
        {
            return ApiResponse.NotFound($"webhook {id}");
        }

        await webhooks.RemoveAsync(subscription.Tenant, subscription.Id, cancellationToken).ConfigureAwait(false);
        return ApiResponse.NoContent;
    }

    /// <summary>
    /// <c>POST /api/webhooks/{id}/rotate-secret</c>: a new signing secret for the subscription, the old one still signing
    /// (beside it) for the overlap asked for (<see cref="WebhookManager.RotateSecretAsync"/>). 200 with the subscription
    /// and, when generated, the new secret (shown once); 404 for an unknown id or another tenant's; 400 for an overlap
    /// outside 0-168 hours or a secret of the wrong length; 409 when another request changed the subscription meanwhile;
    /// 429 over <see cref="MaxSecretRotationsPerWindow"/> rotations of the tenant in the window.
    /// </summary>
    public async Task<ApiResponse> RotateWebhookSecretAsync(ApiCaller caller, string id, string? tenant, RotateWebhookSecretRequest? request, CancellationToken cancellationToken)
    {
        var subscription = await FindWebhookAsync(caller, id, tenant, cancellationToken).ConfigureAwait(false);
        if (subscription is null)
        {
            return ApiResponse.NotFound($"webhook {id}");
        }

        TimeSpan? overlap = null;
        if (request?.OverlapHours is { } hours)
        {
            if (!double.IsFinite(hours) || hours < 0 || hours > WebhookOptions.MaxSecretRotationOverlap.TotalHours)
            {
                return ApiResponse.Error(400, string.Create(CultureInfo.InvariantCulture, $"overlapHours must be 0-{WebhookOptions.MaxSecretRotationOverlap.TotalHours:0} (got {hours})"));
            }

            overlap = TimeSpan.FromHours(hours);
        }

        var decision = await _webhookTests.TryAcquireAsync(subscription.Tenant, WebhookTestRateLimiter.RotateScope, MaxSecretRotationsPerWindow, cancellationToken).ConfigureAwait(false);
        if (!decision.Allowed)
        {
            return ApiResponse.Error(429, $"at most {MaxSecretRotationsPerWindow} webhook secret rotations per {_webhookTests.Window.TotalSeconds:0} s per tenant; retry after {decision.RetryAfter.TotalSeconds:0} s") with { RetryAfter = decision.RetryAfter };
        }

        try
        {
            var rotated = await webhooks.RotateSecretAsync(subscription.Tenant, subscription.Id, request?.Secret, overlap, cancellationToken).ConfigureAwait(false);
            return ApiResponse.Json(new RotatedWebhookSecretResponse(WebhookView.Of(rotated.Subscription), rotated.SecretGenerated ? rotated.Secret : null, rotated.PreviousSecretExpiresAt));
        }
        catch (KeyNotFoundException)
        {
            return ApiResponse.NotFound($"webhook {id}");
        }
        catch (WebhookConflictException ex)
        {
            return ApiResponse.Error(409, ex.Message);
        }
        catch (ArgumentException ex)
        {
            return ApiResponse.Error(400, ex.ParamName is { } parameter ? ex.Message.Replace($" (Parameter '{parameter}')", "", StringComparison.Ordinal) : ex.Message);
        }
    }

    public async Task<ApiResponse> TestWebhookAsync(ApiCaller caller, string id, string? tenant, CancellationToken cancellationToken)
    {
        var subscription = await FindWebhookAsync(caller, id, tenant, cancellationToken).ConfigureAwait(false);
        if (subscription is null)
        {
            return ApiResponse.NotFound($"webhook {id}");
        }

        // Counted after the lookup (an unknown id sends nothing) and per tenant (the subscription's, whichever key asks).
        var decision = await _webhookTests.TryAcquireAsync(subscription.Tenant, cancellationToken).ConfigureAwait(false);
        if (!decision.Allowed)
        {
            return ApiResponse.Error(429, $"at most {_webhookTests.PermitLimit} webhook tests per {_webhookTests.Window.TotalSeconds:0} s per tenant; retry after {decision.RetryAfter.TotalSeconds:0} s") with { RetryAfter = decision.RetryAfter };
        }

        var delivery = await webhooks.TestAsync(subscription, cancellationToken).ConfigureAwait(false);
        return ApiResponse.Json(new WebhookTestResponse(delivery.DeliveryId, delivery.Status, delivery.LastStatusCode, delivery.Error));
    }

    /// <summary>The study of <paramref name="studyId"/> the caller may see (null when none: not found and not allowed look the same).</summary>
    public async Task<StudyRecord?> FindAsync(ApiCaller caller, string studyId, string? tenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (!IsPlausibleStudyId(studyId))
        {
            return null;
        }

        if (tenant is not null)
        {
            return StudyIds.IsValidTenant(tenant) && caller.CanSee(tenant)
                ? await studies.GetAsync(tenant, studyId, cancellationToken).ConfigureAwait(false)
                : null;
        }

        if (caller.Tenants is { } tenants)
        {
            foreach (var t in tenants.Order(StringComparer.Ordinal))
            {
                if (await studies.GetAsync(t, studyId, cancellationToken).ConfigureAwait(false) is { } found)
                {
                    return found;
                }
            }

            return null;
        }

        // An all-tenant caller without a tenant: the study of that id in whichever tenant holds it (study ids are
        // tenant-unique hashes), through the store's id index (point reads) where it has one, else a scan.
        return await StudyRecordLookup.FindInAnyTenantAsync(studies, studyId, cancellationToken).ConfigureAwait(false);
    }

    private async Task<WebhookSubscription?> FindWebhookAsync(ApiCaller caller, string id, string? tenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (!WebhookIds.IsValidSubscriptionId(id) || (tenant is not null && (!StudyIds.IsValidTenant(tenant) || !caller.CanSee(tenant))))
        {
            return null;
        }

        if (tenant is null && caller.Tenants is { } bound)
        {
            // A key bound to tenants looks in each of them (a point read each), as a study lookup does: before, it read
            // every tenant's subscriptions (the whole table, on every guessed id) and dropped the others in memory.
            foreach (var t in bound.Order(StringComparer.Ordinal))
            {
                if (await webhooks.FindAsync(t, id, cancellationToken).ConfigureAwait(false) is { } own)
                {
                    return own;
                }
            }

            return null;
        }

        var subscription = await webhooks.FindAsync(tenant, id, cancellationToken).ConfigureAwait(false);
        return subscription is not null && caller.CanSee(subscription.Tenant) ? subscription : null;
    }

    /// <summary>
    /// The tenants a list reads: the one asked for (already checked visible), else the key's own in ordinal order, else
    /// null (an all-tenant key: every tenant). A bound key's lists query its tenants' partitions only, so other tenants'
    /// rows are never read for it (the <see cref="ApiCaller.CanSee"/> filter stays as the second guard).
    /// </summary>
    private static IReadOnlyList<string>? ListedTenants(ApiCaller caller, string? tenant) =>
        tenant is not null ? [tenant]
        : caller.Tenants is { } bound ? [.. bound.Order(StringComparer.Ordinal)]
        : null;

    /// <summary>
    /// Whether <paramref name="studyId"/> can name a study (1-64 ASCII letters, digits, '-' and '_'; real ids are
    /// <c>s</c> + 24 hex digits). Anything else is answered 404 before the store sees it: a '/' in a table key fails
    /// the point read (500), and such an id needs no storage call to be unknown.
    /// </summary>
    public static bool IsPlausibleStudyId(string? studyId) =>
        studyId is { Length: > 0 and <= 64 } && studyId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    private StudySummary Summary(StudyRecord study) => new(
        study.StudyId,
        study.Tenant,
        study.Status,
        study.Reason,
        study.CreatedAt,
        study.CompletedAt,
        StudyViews.Diagnosis(study),
        StudyViews.Links(study, options.PublicBaseUrl).Study);

    private StudyDetail Detail(StudyRecord study) => new(
        study.StudyId,
        study.Tenant,
        study.StudyPseudonym,
        study.Status,
        study.Reason,
        Stages(study),
        StudyViews.ParseColumn(study.TimingsJson),
        StudyViews.Diagnosis(study),
        study.ModelVersion,
        study.SliceCount,
        StudyViews.ParseColumn(study.SeriesJson),
        StudyViews.TopSlices(study),
        StudyViews.Links(study, options.PublicBaseUrl));

    /// <summary>
    /// The stages a study has passed, with their times (from the row's timestamps and status). A stage is
    /// <c>pending</c>, <c>running</c>, <c>done</c>, <c>failed</c> or <c>rejected</c>. Ingest marks the row processing
    /// when it starts, so a processing study without an ingest time is still in ingest (scoring has not begun), and a
    /// study that failed without one failed in ingest. A stage's <c>at</c> is when it reached its state: queued when the
    /// row was created, ingest when the study was ingested, scoring when it started (running), finished (done) or
    /// failed with the study, diagnosis when the study completed or failed; null where the row keeps no such time
    /// (a failed or rejected ingest, a rejected diagnosis, scoring on rows written before its times were kept).
    /// </summary>
    private static IReadOnlyList<StageView> Stages(StudyRecord study)
    {
        var ingested = study.IngestedAt is not null;
        var ingest = ingested ? "done" : study.Status switch
        {
            StudyStatus.Rejected => "rejected",
            StudyStatus.Failed => "failed",
            StudyStatus.Processing => "running",
            _ => "pending",
        };
        var scoring = study.Status switch
        {
            StudyStatus.Completed => "done",
            StudyStatus.Processing when ingested => "running",
            StudyStatus.Failed when ingested => "failed",
            _ => "pending",
        };
        var diagnosis = study.Status switch
        {
            StudyStatus.Completed => "done",
            StudyStatus.Failed or StudyStatus.Rejected => study.Status,
            _ => "pending",
        };
        return
        [
            new StageView("queued", "done", study.CreatedAt == default ? null : study.CreatedAt),
            new StageView("ingest", ingest, study.IngestedAt),
            new StageView("scoring", scoring, scoring switch
            {
                "done" => study.ScoringFinishedAt,
                "running" => study.ScoringStartedAt,
                "failed" => study.CompletedAt,
                _ => null,
            }),
            new StageView("diagnosis", diagnosis, study.CompletedAt),
        ];
    }

    /// <summary>A time as ISO 8601 UTC (<c>2026-11-27T08:00:00Z</c>; fractions only where there are any).</summary>
    private static string IsoUtc(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);

    private static string ContentTypeOf(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".png" => "image/png",
        ".jpg" or ".jpeg" => "image/jpeg",
        ".json" => ApiResponse.JsonContentType,
        _ => "application/octet-stream",
    };

    /// <summary>
    /// The continuation token after <paramref name="last"/>: its place in the list and a tag of the list's tenants
    /// (<paramref name="scope"/>), base64url. Opaque to clients; a token of one tenant's list is refused on another's.
    /// </summary>
    private static string EncodeContinuation(StudySummary last, string scope) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"l1:{last.CreatedAt.UtcTicks}:{last.Study}:{ScopeTag(scope)}")))
            .TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>A short hash of the listed tenants (<c>*</c>: every tenant), which binds a token to its list.</summary>
    private static string ScopeTag(string scope) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(scope)))[..16];

    private enum ContinuationRead
    {
        Read,
        NotAToken,
        OtherList,
    }

    private static ContinuationRead ReadContinuation(string token, string scope, out StudyListPosition? after)
    {
        after = null;
        try
        {
            var padded = token.Replace('-', '+').Replace('_', '/');
            padded += new string('=', (4 - (padded.Length % 4)) % 4);
            var parts = Encoding.UTF8.GetString(Convert.FromBase64String(padded)).Split(':');
            if (parts is not ["l1", var ticksText, var studyId, var tag]
                || !long.TryParse(ticksText, NumberStyles.None, CultureInfo.InvariantCulture, out var ticks)
                || ticks > DateTimeOffset.MaxValue.UtcTicks
                || !IsPlausibleStudyId(studyId))
            {
                return ContinuationRead.NotAToken;
            }

            if (!string.Equals(tag, ScopeTag(scope), StringComparison.Ordinal))
            {
                return ContinuationRead.OtherList;
            }

            after = new StudyListPosition(new DateTimeOffset(ticks, TimeSpan.Zero), studyId);
            return ContinuationRead.Read;
        }
        catch (FormatException)
        {
            return ContinuationRead.NotAToken;
        }
    }
}

/// <summary>Settings of the results API.</summary>
public sealed record ResultsApiOptions
{
    /// <summary>The externally visible base URL for links (null: links are relative, <c>/api/…</c>).</summary>
    public Uri? PublicBaseUrl { get; init; }
}

public sealed record StudySummary(string Study, string Tenant, string Status, string? Reason, DateTimeOffset CreatedAt, DateTimeOffset? CompletedAt, DiagnosisView? Diagnosis, string Link);

public sealed record StudyPage(IReadOnlyList<StudySummary> Items, string? Continuation);

public sealed record StageView(string Name, string State, DateTimeOffset? At);

public sealed record StudyDetail(
    string Study,
    string Tenant,
    string? StudyPseudonym,
    string Status,
    string? Reason,
    IReadOnlyList<StageView> Stages,
    JsonElement? Timings,
    DiagnosisView? Diagnosis,
    string? ModelVersion,
    int Slices,
    JsonElement? Series,
    IReadOnlyList<TopSliceView> TopSlices,
    StudyLinks Links);

/// <summary>
/// A subscription as the API and <c>covidfn webhooks list --json</c> show it (never a secret or its name):
/// <see cref="SecretRotatedAt"/> when the secret was last rotated, <see cref="PreviousSecretExpiresAt"/> until when the
/// replaced secret signs beside it (both absent when never rotated; a past time: it no longer signs).
/// </summary>
public sealed record WebhookView(string Id, string Tenant, string Url, IReadOnlyList<string> Events, bool Active, DateTimeOffset CreatedAt)
{
    public DateTimeOffset? SecretRotatedAt { get; init; }

    public DateTimeOffset? PreviousSecretExpiresAt { get; init; }

    public static WebhookView Of(WebhookSubscription s)
    {
        ArgumentNullException.ThrowIfNull(s);
        return new(s.Id, s.Tenant, s.Url.ToString(), s.EventTypes, s.Active, s.CreatedAt)
        {
            SecretRotatedAt = s.SecretRotatedAt,
            PreviousSecretExpiresAt = s.PreviousSecretName is null ? null : s.PreviousSecretExpiresAt,
        };
    }
}

/// <summary>
/// The answer to <c>POST /api/webhooks/{id}/rotate-secret</c>: <see cref="Secret"/> only when the server generated it
/// (shown once); <see cref="PreviousSecretExpiresAt"/> until when the old secret still signs (absent: no overlap).
/// </summary>
public sealed record RotatedWebhookSecretResponse(WebhookView Webhook, string? Secret, DateTimeOffset? PreviousSecretExpiresAt);

/// <summary>The answer to <c>POST /api/webhooks</c>: <see cref="Secret"/> only when the server generated it (shown once).</summary>
public sealed record CreatedWebhookResponse(WebhookView Webhook, string? Secret);

public sealed record WebhookTestResponse(string DeliveryId, string Status, int? StatusCode, string? Error);
