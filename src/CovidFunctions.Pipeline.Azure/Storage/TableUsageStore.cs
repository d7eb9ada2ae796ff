using Azure;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Metering;
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
/// </summary>
public sealed class TableUsageStore(TableClient table) : IUsageStore
{
    private const string MonthIndexPrefix = "_month|";

    public TableClient Table { get; } = table;

    /// <summary>The billing month of a time (<see cref="UsageQueries.MonthOf"/>: the queries and both stores use one rule).</summary>
    public static string MonthOf(DateTimeOffset at) => UsageQueries.MonthOf(at);

    public static string PartitionKeyOf(string tenant, string month) => $"{tenant}|{month}";

    public static string RowKeyOf(string studyId, string stage) => $"{studyId}|{stage}";

    /// <summary>The partition of a tenant's billing-month claims (one row per study).</summary>
    public static string ClaimPartitionKeyOf(string tenant) => $"{tenant}|study";

    /// <summary>The partition that lists the tenants with records in a month.</summary>
    public static string MonthIndexPartitionKeyOf(string month) => MonthIndexPrefix + month;

    public async Task<bool> TryRecordAsync(UsageRecord record, CancellationToken cancellationToken)
    {
        UsageRecord.Validate(record);
        var month = await ClaimBillingMonthAsync(record, cancellationToken).ConfigureAwait(false);
        await AddIfAbsentAsync(new TableEntity(MonthIndexPartitionKeyOf(month), record.Tenant), cancellationToken).ConfigureAwait(false);
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
        return await AddIfAbsentAsync(entity, cancellationToken).ConfigureAwait(false);
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

    public async Task<IReadOnlyList<UsageRecord>> GetMonthAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {PartitionKeyOf(tenant, month)}");
        var records = new List<UsageRecord>();
        await foreach (var entity in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            records.Add(new UsageRecord(
                entity.GetString("Tenant") ?? tenant,
                entity.GetString("StudyId") ?? "",
                entity.GetString("Stage") ?? "",
                entity.GetDateTimeOffset("At") ?? default,
                entity.GetInt32("Slices") ?? 0,
                entity.GetDouble("CpuSeconds") ?? 0,
                entity.GetDouble("GpuSeconds") ?? 0,
                entity.GetInt64("BytesStored") ?? 0));
        }

        return records.OrderBy(r => r.At).ThenBy(r => r.StudyId, StringComparer.Ordinal).ToList();
    }
}
