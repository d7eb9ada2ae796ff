using Azure;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Azure.Storage;

/// <summary>
/// <see cref="IUsageStore"/> on the <c>Usage</c> table. Three kinds of row, each written insert-only (no row is ever
/// read, changed and written back, so concurrent writers cannot lose an update):
/// <list type="bullet">
/// <item>the study's billing-month claim: PartitionKey <c>{tenant}|study</c>, RowKey <c>{studyId}</c>, property
/// <c>Month</c> = the UTC month of the study's first record. A later record of the study (another stage, or a retry
/// with a later time, even in the next month) reads it and is filed under that month;</item>
/// <item>the record: PartitionKey <c>{tenant}|{yyyy-MM}</c> (billing month), RowKey <c>{studyId}|{stage}</c>. A
/// second record for the same study and stage gets 409 from the service and is reported as already recorded;</item>
/// <item>the month's tenant index: PartitionKey <c>_month|{yyyy-MM}</c>, RowKey <c>{tenant}</c> (tenants have no
/// '_', so it never meets a tenant's partition), read by the all-tenant usage view.</item>
/// </list>
/// A writer that dies between the rows leaves nothing a retry cannot finish: the claim alone bills nothing, and the
/// retry files the record under the claimed month.
/// <para>Closed months (<see cref="UsageClosing"/>), two more insert-only rows:</para>
/// <list type="bullet">
/// <item>the close fence: RowKey <c>_closing</c> in the month's record partition <c>{tenant}|{yyyy-MM}</c>, property
/// <c>ClosingAt</c>. The month's bill is the records whose service <c>Timestamp</c> is not after the fence's. The fence
/// shares the records' partition so that both timestamps come from the one server that orders that partition's writes:
/// a writer that inserts a record and then finds a fence older than its row knows the closer may not have counted it,
/// and a closer counts exactly the rows older than its fence, so each record is in one bill whichever wins;</item>
/// <item>the snapshot: PartitionKey <c>{tenant}|closed</c>, RowKey the month, the bill's figures and <c>ClosedAt</c>.</item>
/// </list>
/// <para>The hourly usage sweep's index (<see cref="GetOpenStudiesAsync"/>): PartitionKey <c>{tenant}|open|{yyyy-MM}</c>,
/// RowKey the study id, one row per study filed under the month without a scoring record. Every filing of a record
/// that is not the scoring one upserts it before the record row (so no filed study lacks it); filing the scoring
/// record deletes it after the record row. A row left behind (a writer that died in between, a late retry of an
/// ingest record) is found stale by the read, which checks the scoring record, and deleted there. The sweep deletes
/// the row of a study it finds failed or rejected, only while the row is the version it listed (a re-ingest upserts it
/// again, with a new version); an unbillable one (completed, nothing to bill) stays until its month closes. The partition's insert-only marker row <c>_complete</c> says that
/// the index holds every study of the month: the first read of a month without it reads the month's records once,
/// upserts a row for each open study, then writes the marker. Records filed by a writer older than the index after
/// that backfill (a deployment still swapping instances) are missing from it: the hourly runs do not see such a study,
/// and the run that closes the month finds it in the month's records, which it reads before the close
/// (<see cref="UsageAutoClose"/>). A month that is closing (a fence) is read from its records, fence-aware.</para>
/// A record whose billing month is closed (its fence is there before the record, or older than the record's row) is
/// carried into the first month after it without a fence, with <c>LateFrom</c> = the billing month, together with
/// copies of the study's earlier records when the closed bills on the way did not bill the study. A writer that dies
/// after its row landed behind a fence finishes the carry on its retry (the row is found newer than the fence).
/// </summary>
public sealed class TableUsageStore(TableClient table) : IUsageStore
{
    private const string MonthIndexPrefix = "_month|";

    /// <summary>RowKey of a month's close fence in its record partition (study ids never start with '_').</summary>
    public const string FenceRowKey = "_closing";

    /// <summary>RowKey of the marker that a tenant-month's open-study index is complete (study ids never start with '_').</summary>
    public const string OpenIndexCompleteRowKey = "_complete";

    public TableClient Table { get; } = table;

    /// <summary>The billing month of a time (<see cref="UsageQueries.MonthOf"/>: the queries and both stores use one rule).</summary>
    public static string MonthOf(DateTimeOffset at) => UsageQueries.MonthOf(at);

    public static string PartitionKeyOf(string tenant, string month) => $"{tenant}|{month}";

    public static string RowKeyOf(string studyId, string stage) => $"{studyId}|{stage}";

    /// <summary>The partition of a tenant's billing-month claims (one row per study).</summary>
    public static string ClaimPartitionKeyOf(string tenant) => $"{tenant}|study";

    /// <summary>The partition that lists the tenants with records in a month.</summary>
    public static string MonthIndexPartitionKeyOf(string month) => MonthIndexPrefix + month;

    /// <summary>The partition of a tenant-month's open-study index (<see cref="GetOpenStudiesAsync"/>).</summary>
    public static string OpenPartitionKeyOf(string tenant, string month) => $"{tenant}|open|{month}";

    /// <summary>The partition of a tenant's closed-month snapshots (one row per month).</summary>
    public static string ClosedPartitionKeyOf(string tenant) => $"{tenant}|closed";

    public async Task<bool> TryRecordAsync(UsageRecord record, CancellationToken cancellationToken)
    {
        UsageRecord.Validate(record);
        var month = await ClaimBillingMonthAsync(record, cancellationToken).ConfigureAwait(false);
        return await FileAsync(record, month, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Files the record under <paramref name="month"/>'s bill, or carries it on when that month is closing.</summary>
    private async Task<bool> FileAsync(UsageRecord record, string month, string? lateFrom, CancellationToken cancellationToken)
    {
        var fence = await GetFenceAsync(record.Tenant, month, cancellationToken).ConfigureAwait(false);
        if (fence is null)
        {
            await AddIfAbsentAsync(new TableEntity(MonthIndexPartitionKeyOf(month), record.Tenant), cancellationToken).ConfigureAwait(false);
            var scoring = record.Stage == StudyOrchestration.UsageStage;
            if (!scoring)
            {
                // Before the record, so that no study filed without a scoring record lacks its index row; an upsert, so
                // that a sweep's conditional delete of a row listed before (the study then failed) misses it.
                await Table.UpsertEntityAsync(new TableEntity(OpenPartitionKeyOf(record.Tenant, month), record.StudyId), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
            }

            var inserted = await AddIfAbsentAsync(EntityOf(record, month, lateFrom), cancellationToken).ConfigureAwait(false);
            if (scoring)
            {
                await DeleteOpenAsync(record.Tenant, month, record.StudyId, ETag.All, cancellationToken).ConfigureAwait(false);
            }

            // The month may have begun closing while the row was written: the row is in its bill only if older than the fence.
            fence = await GetFenceAsync(record.Tenant, month, cancellationToken).ConfigureAwait(false);
            if (fence is null || await InBillAsync(record.Tenant, month, record.StudyId, record.Stage, fence.Value, cancellationToken).ConfigureAwait(false))
            {
                return inserted;
            }
        }
        else if (await InBillAsync(record.Tenant, month, record.StudyId, record.Stage, fence.Value, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        return await CarryAsync(record, month, lateFrom ?? month, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Files a record that missed <paramref name="from"/>'s closed bill under the first month after it without a fence,
    /// unless a closed bill on the way already holds the stage; with copies of the study's records of those closed
    /// bills when none of them billed the study (no scoring record), so the study is billed whole, once, there.
    /// </summary>
    private async Task<bool> CarryAsync(UsageRecord record, string from, string billingMonth, CancellationToken cancellationToken)
    {
        var earlier = new List<UsageRecord>();
        var to = from;
        for (var steps = 0; await GetFenceAsync(record.Tenant, to, cancellationToken).ConfigureAwait(false) is { } fence; steps++, to = UsageQueries.Next(to))
        {
            if (steps > 1200)
            {
                throw new InvalidOperationException($"usage of {record.Tenant}/{record.StudyId}: no open month within 100 years after {from}");
            }

            var bill = await StudyBillAsync(record.Tenant, to, record.StudyId, fence, cancellationToken).ConfigureAwait(false);
            if (to != from && bill.Any(r => r.Stage == record.Stage))
            {
                return false;
            }

            earlier.AddRange(bill);
        }

        if (earlier.All(r => r.Stage != StudyOrchestration.UsageStage))
        {
            foreach (var e in earlier.DistinctBy(r => r.Stage).Where(r => r.Stage != record.Stage))
            {
                await FileAsync(e, to, billingMonth, cancellationToken).ConfigureAwait(false);
            }
        }

        return await FileAsync(record, to, billingMonth, cancellationToken).ConfigureAwait(false);
    }

    private static TableEntity EntityOf(UsageRecord record, string month, string? lateFrom)
    {
        var entity = new TableEntity(PartitionKeyOf(record.Tenant, month), RowKeyOf(record.StudyId, record.Stage))
        {
            ["Tenant"] = record.Tenant,
            ["StudyId"] = record.StudyId,
            ["Stage"] = record.Stage,
            ["At"] = record.At.ToUniversalTime(),
            ["Slices"] = record.Slices,
            ["CpuSeconds"] = record.CpuSeconds,
            ["GpuSeconds"] = record.GpuSeconds,
            ["BytesStored"] = record.BytesStored,
        };
        if (lateFrom is not null)
        {
            entity["LateFrom"] = lateFrom;
        }

        return entity;
    }

    /// <summary>The service time of the month's close fence, or null while the month is open.</summary>
    private async Task<DateTimeOffset?> GetFenceAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        var fence = await Table.GetEntityIfExistsAsync<TableEntity>(PartitionKeyOf(tenant, month), FenceRowKey, ["Timestamp"], cancellationToken).ConfigureAwait(false);
        return fence.HasValue ? fence.Value!.Timestamp : null;
    }

    /// <summary>True when the record row exists and is older than the fence (not newer: equal times count as in).</summary>
    private async Task<bool> InBillAsync(string tenant, string month, string studyId, string stage, DateTimeOffset fence, CancellationToken cancellationToken)
    {
        var row = await Table.GetEntityIfExistsAsync<TableEntity>(PartitionKeyOf(tenant, month), RowKeyOf(studyId, stage), ["Timestamp"], cancellationToken).ConfigureAwait(false);
        return row.HasValue && row.Value!.Timestamp <= fence;
    }

    /// <summary>The study's records in a closing month's bill (a RowKey range: <c>{studyId}|</c> up to <c>{studyId}}</c>).</summary>
    private async Task<List<UsageRecord>> StudyBillAsync(string tenant, string month, string studyId, DateTimeOffset fence, CancellationToken cancellationToken)
    {
        var partition = PartitionKeyOf(tenant, month);
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {partition} and RowKey ge {studyId + "|"} and RowKey lt {studyId + "}"}");
        var bill = new List<UsageRecord>();
        await foreach (var entity in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            if (entity.Timestamp <= fence)
            {
                bill.Add(RecordOf(entity, tenant));
            }
        }

        return bill;
    }

    /// <summary>
    /// The month's studies without a scoring record from the open-study index (one query of the index partition, then
    /// a point read of each listed study's scoring record, which finds a row left behind and deletes it). A month
    /// without the index's marker is read from its records once and its index written; a closing month (a fence) is
    /// read from its records, fence-aware.
    /// </summary>
    public async Task<IReadOnlyList<OpenStudy>> GetOpenStudiesAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        if (await GetFenceAsync(tenant, month, cancellationToken).ConfigureAwait(false) is not null)
        {
            return OpenStudy.Of(await GetFiledAsync(tenant, month, cancellationToken).ConfigureAwait(false));
        }

        var partition = OpenPartitionKeyOf(tenant, month);
        var listed = new List<TableEntity>();
        var complete = false;
        await foreach (var row in Table.QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"PartitionKey eq {partition}"), select: ["RowKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            if (row.RowKey == OpenIndexCompleteRowKey)
            {
                complete = true;
            }
            else
            {
                listed.Add(row);
            }
        }

        if (!complete)
        {
            // Records filed before the index existed have no row: one read of the month's records writes them.
            var open = new List<OpenStudy>();
            foreach (var study in OpenStudy.Of(await GetFiledAsync(tenant, month, cancellationToken).ConfigureAwait(false)))
            {
                var written = await Table.UpsertEntityAsync(new TableEntity(partition, study.StudyId), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
                open.Add(study with { Version = written.Headers.ETag?.ToString() });
            }

            await AddIfAbsentAsync(new TableEntity(partition, OpenIndexCompleteRowKey), cancellationToken).ConfigureAwait(false);
            return open;
        }

        var studies = new List<OpenStudy>();
        foreach (var row in listed.OrderBy(r => r.RowKey, StringComparer.Ordinal))
        {
            var scoring = await Table.GetEntityIfExistsAsync<TableEntity>(PartitionKeyOf(tenant, month), RowKeyOf(row.RowKey, StudyOrchestration.UsageStage), ["RowKey"], cancellationToken).ConfigureAwait(false);
            if (scoring.HasValue)
            {
                // Left behind by a scoring writer that died before its delete, or by a late retry of an earlier stage.
                await DeleteOpenAsync(tenant, month, row.RowKey, row.ETag, cancellationToken).ConfigureAwait(false);
                continue;
            }

            studies.Add(new OpenStudy(row.RowKey, row.ETag.ToString()));
        }

        return studies;
    }

    public Task ForgetOpenStudyAsync(string tenant, string month, OpenStudy study, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(study);
        return study.Version is { Length: > 0 } version
            ? DeleteOpenAsync(tenant, month, study.StudyId, new ETag(version), cancellationToken)
            : Task.CompletedTask;
    }

    /// <summary>Deletes a study's open-index row if it is still <paramref name="version"/> (any version: <see cref="ETag.All"/>); gone or changed: nothing.</summary>
    private async Task DeleteOpenAsync(string tenant, string month, string studyId, ETag version, CancellationToken cancellationToken)
    {
        try
        {
            await Table.DeleteEntityAsync(OpenPartitionKeyOf(tenant, month), studyId, version, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status is 404 or 412)
        {
            // Gone already, or written again since it was listed (the study filed again): it stays.
        }
    }

    public async Task<IReadOnlyList<string>> GetTenantsAsync(string month, CancellationToken cancellationToken)
    {
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {MonthIndexPartitionKeyOf(month)}");
        var tenants = new List<string>();
        await foreach (var entity in Table.QueryAsync<TableEntity>(filter, select: ["RowKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            tenants.Add(entity.RowKey);
        }

        return tenants;
    }

    /// <summary>The study's billing month: this record's UTC month when it is the study's first, else the one claimed before.</summary>
    private async Task<string> ClaimBillingMonthAsync(UsageRecord record, CancellationToken cancellationToken)
    {
        var month = MonthOf(record.At);
        var claim = new TableEntity(ClaimPartitionKeyOf(record.Tenant), record.StudyId)
        {
            ["Month"] = month,
            ["Stage"] = record.Stage,
            ["At"] = record.At.ToUniversalTime(),
        };
        if (await AddIfAbsentAsync(claim, cancellationToken).ConfigureAwait(false))
        {
            return month;
        }

        var existing = await Table.GetEntityAsync<TableEntity>(claim.PartitionKey, claim.RowKey, ["Month"], cancellationToken).ConfigureAwait(false);
        return existing.Value.GetString("Month") is { Length: 7 } claimed ? claimed : month;
    }

    private async Task<bool> AddIfAbsentAsync(TableEntity entity, CancellationToken cancellationToken)
    {
        try
        {
            await Table.AddEntityAsync(entity, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            return false;
        }
    }

    public async Task<IReadOnlyList<UsageRecord>> GetMonthAsync(string tenant, string month, CancellationToken cancellationToken) =>
        [.. (await GetFiledAsync(tenant, month, cancellationToken).ConfigureAwait(false)).Select(f => f.Record)];

    public async Task<IReadOnlyList<FiledUsage>> GetFiledAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {PartitionKeyOf(tenant, month)}");
        var rows = new List<TableEntity>();
        DateTimeOffset? fence = null;
        await foreach (var entity in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            if (entity.RowKey == FenceRowKey)
            {
                fence = entity.Timestamp;
            }
            else
            {
                rows.Add(entity);
            }
        }

        // Once the month is closing, rows newer than its fence are not its bill: their writers carry them on.
        return rows
            .Where(e => fence is null || e.Timestamp <= fence)
            .Select(e => new FiledUsage(RecordOf(e, tenant), e.GetString("LateFrom")))
            .OrderBy(f => f.Record.At).ThenBy(f => f.Record.StudyId, StringComparer.Ordinal)
            .ToList();
    }

    public Task<DateTimeOffset?> GetClosingAsync(string tenant, string month, CancellationToken cancellationToken) =>
        GetClosingAtAsync(tenant, month, cancellationToken);

    public async Task<DateTimeOffset> BeginCloseAsync(string tenant, string month, DateTimeOffset at, CancellationToken cancellationToken)
    {
        StudyIds.RequireTenant(tenant);
        await AddIfAbsentAsync(new TableEntity(PartitionKeyOf(tenant, month), FenceRowKey) { ["ClosingAt"] = at.ToUniversalTime() }, cancellationToken).ConfigureAwait(false);
        return await GetClosingAtAsync(tenant, month, cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"the close fence of {tenant} {month} was written but cannot be read back");
    }

    public async Task<UsageTotals?> GetClosedAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        var row = await Table.GetEntityIfExistsAsync<TableEntity>(ClosedPartitionKeyOf(tenant), month, cancellationToken: cancellationToken).ConfigureAwait(false);
        return row.HasValue ? TotalsOf(row.Value!, tenant, month) : null;
    }

    public async Task<UsageTotals> AddClosedIfAbsentAsync(UsageTotals closed, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(closed);
        StudyIds.RequireTenant(closed.Tenant);
        var entity = new TableEntity(ClosedPartitionKeyOf(closed.Tenant), closed.Month)
        {
            ["Studies"] = closed.Studies,
            ["SlicesScreened"] = closed.SlicesScreened,
            ["CpuSeconds"] = closed.CpuSeconds,
            ["GpuSeconds"] = closed.GpuSeconds,
            ["BytesStored"] = closed.BytesStored,
            ["Records"] = closed.Records,
            ["UnscreenedStudies"] = closed.UnscreenedStudies,
            ["LateRecords"] = closed.LateRecords,
            ["ClosedAt"] = closed.ClosedAt?.ToUniversalTime(),
        };
        if (await AddIfAbsentAsync(entity, cancellationToken).ConfigureAwait(false))
        {
            return closed;
        }

        // Another closer wrote it first: its snapshot is the month's (computed from the same fence, so the same figures).
        return await GetClosedAsync(closed.Tenant, closed.Month, cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"the snapshot of {closed.Tenant} {closed.Month} exists but cannot be read back");
    }

    private async Task<DateTimeOffset?> GetClosingAtAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        var fence = await Table.GetEntityIfExistsAsync<TableEntity>(PartitionKeyOf(tenant, month), FenceRowKey, ["ClosingAt"], cancellationToken).ConfigureAwait(false);
        return fence.HasValue ? fence.Value!.GetDateTimeOffset("ClosingAt") : null;
    }

    private static UsageRecord RecordOf(TableEntity entity, string tenant) => new(
        entity.GetString("Tenant") ?? tenant,
        entity.GetString("StudyId") ?? "",
        entity.GetString("Stage") ?? "",
        entity.GetDateTimeOffset("At") ?? default,
        entity.GetInt32("Slices") ?? 0,
        entity.GetDouble("CpuSeconds") ?? 0,
        entity.GetDouble("GpuSeconds") ?? 0,
        entity.GetInt64("BytesStored") ?? 0);

    private static UsageTotals TotalsOf(TableEntity entity, string tenant, string month) => new(
        tenant,
        month,
        entity.GetInt32("Studies") ?? 0,
        entity.GetInt64("SlicesScreened") ?? 0,
        entity.GetDouble("CpuSeconds") ?? 0,
        entity.GetDouble("GpuSeconds") ?? 0,
        entity.GetInt64("BytesStored") ?? 0,
        entity.GetInt32("Records") ?? 0,
        entity.GetInt32("UnscreenedStudies") ?? 0,
        Closed: true,
        ClosedAt: entity.GetDateTimeOffset("ClosedAt"),
        LateRecords: entity.GetInt32("LateRecords") ?? 0);
}
