using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

[Collection(AzuriteCollection.Name)]
public sealed class TableStoreTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Study_rows_round_trip_every_field_and_create_is_insert_if_absent()
    {
        var tenant = AzuriteFixture.NewTenant();
        var created = new DateTimeOffset(2026, 11, 26, 8, 0, 0, TimeSpan.Zero);
        var record = new StudyRecord
        {
            Tenant = tenant,
            StudyId = "s1",
            Status = StudyStatus.Completed,
            Reason = null,
            UploadPath = $"{tenant}/study.zip",
            StudyPseudonym = "2.25.123",
            OrchestrationId = $"study-{tenant}-s1",
            TilesPrefix = $"{tenant}/s1/tiles/",
            SliceCount = 301,
            Label = "covid",
            ProbabilityCovid = 0.7,
            ProbabilityCap = 0.2,
            ProbabilityNormal = 0.1,
            LesionBurden = 0.125,
            ModelVersion = "dtcn-1",
            SeriesJson = "{\"series\":1}",
            TimingsJson = "{\"total\":3.5}",
            TopSlicesJson = "[1,2]",
            MontagePath = $"{tenant}/s1/montage.png",
            CreatedAt = created,
            IngestedAt = created.AddSeconds(5),
            ScoringStartedAt = created.AddSeconds(6),
            ScoringFinishedAt = created.AddSeconds(45),
            CompletedAt = created.AddSeconds(50),
        };

        Assert.True(await azurite.Storage.Studies.TryCreateAsync(record, None));
        Assert.False(await azurite.Storage.Studies.TryCreateAsync(record with { Status = StudyStatus.Failed }, None));

        var stored = await azurite.Storage.Studies.GetAsync(tenant, "s1", None);
        Assert.NotNull(stored);
        Assert.NotNull(stored.ETag);
        Assert.Equal(record with { ETag = stored.ETag }, stored);
        Assert.Null(await azurite.Storage.Studies.GetAsync(tenant, "missing", None));

        // A row written before the scoring times were kept reads with none.
        var old = TableStudyStore.ToEntity(record with { StudyId = "s-old" });
        old.Remove(nameof(StudyRecord.ScoringStartedAt));
        old.Remove(nameof(StudyRecord.ScoringFinishedAt));
        await ((TableStudyStore)azurite.Storage.Studies).Table.AddEntityAsync(old, None);
        var oldStored = await azurite.Storage.Studies.GetAsync(tenant, "s-old", None);
        Assert.Equal((null, null, record.CompletedAt), (oldStored!.ScoringStartedAt, oldStored.ScoringFinishedAt, oldStored.CompletedAt));
    }

    [Fact]
    public async Task Concurrent_updates_are_all_applied_through_etag_retries()
    {
        var tenant = AzuriteFixture.NewTenant();
        const int writers = 8;

        // Every writer starts from the same row (or none): all but one hit 409/412 at first and re-apply.
        await Task.WhenAll(Enumerable.Range(0, writers).Select(_ => Task.Run(() =>
            azurite.Storage.Studies.UpdateAsync(tenant, "s1", current => current is null
                ? new StudyRecord { Tenant = tenant, StudyId = "s1", SliceCount = 1, CreatedAt = DateTimeOffset.UtcNow }
                : current with { SliceCount = current.SliceCount + 1 }, None))));

        var stored = await azurite.Storage.Studies.GetAsync(tenant, "s1", None);
        Assert.Equal(writers, stored!.SliceCount);
    }

    [Fact]
    public async Task A_stale_etag_is_detected_and_the_update_reapplied_on_the_fresh_row()
    {
        var tenant = AzuriteFixture.NewTenant();
        await azurite.Storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = "s1", CreatedAt = DateTimeOffset.UtcNow }, None);
        var calls = 0;

        var result = await azurite.Storage.Studies.UpdateAsync(tenant, "s1", current =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                // Another writer changes the row between our read and our write.
                azurite.Storage.Studies.UpdateAsync(tenant, "s1", c => c! with { Label = "normal" }, None).GetAwaiter().GetResult();
            }

            return current! with { Status = StudyStatus.Processing };
        }, None);

        Assert.Equal(2, calls);
        Assert.Equal(StudyStatus.Processing, result.Status);
        Assert.Equal("normal", result.Label);
        var stored = await azurite.Storage.Studies.GetAsync(tenant, "s1", None);
        Assert.Equal(("normal", StudyStatus.Processing), (stored!.Label, stored.Status));
        Assert.Equal(result.ETag, stored.ETag);
    }

    [Fact]
    public async Task Query_filters_by_tenant_status_and_time_newest_first()
    {
        var tenant = AzuriteFixture.NewTenant();
        var other = AzuriteFixture.NewTenant();
        var t0 = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        foreach (var (id, status, minutes) in new[] { ("a", StudyStatus.Completed, 0), ("b", StudyStatus.Failed, 10), ("c", StudyStatus.Completed, 20), ("d", StudyStatus.Completed, 30) })
        {
            await azurite.Storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = id, Status = status, CreatedAt = t0.AddMinutes(minutes) }, None);
        }

        await azurite.Storage.Studies.TryCreateAsync(new StudyRecord { Tenant = other, StudyId = "z", Status = StudyStatus.Completed, CreatedAt = t0.AddMinutes(15) }, None);

        var all = await azurite.Storage.Studies.QueryAsync(tenant, null, null, null, None).Select(r => r.StudyId).ToListAsync();
        Assert.Equal(["d", "c", "b", "a"], all);

        var completedInWindow = await azurite.Storage.Studies.QueryAsync(tenant, StudyStatus.Completed, t0.AddMinutes(5), t0.AddMinutes(30), None).Select(r => r.StudyId).ToListAsync();
        Assert.Equal(["d", "c"], completedInWindow);

        var acrossTenants = await azurite.Storage.Studies.QueryAsync(null, StudyStatus.Completed, t0, t0.AddMinutes(30), None)
            .Where(r => r.Tenant == tenant || r.Tenant == other).Select(r => r.StudyId).ToListAsync();
        Assert.Equal(["d", "c", "z", "a"], acrossTenants);
    }

    [Fact]
    public async Task Slice_results_upsert_in_batches_and_a_redelivery_overwrites()
    {
        var tenant = AzuriteFixture.NewTenant();
        var records = Enumerable.Range(0, 250)
            .Select(i => new SliceResultRecord(tenant, "s1", i, i / 32, i / 1000f, i / 500f, i * 10L, 5000L, [0.5f, 0.25f, 0.25f], i % 2 == 0 ? $"{tenant}/s1/overlays/{i:D4}.png" : null))
            .ToList();

        await azurite.Storage.SliceResults.UpsertAsync(records, None);
        await azurite.Storage.SliceResults.UpsertAsync([records[3] with { LesionPixels = 999 }], None);

        var stored = await azurite.Storage.SliceResults.GetAsync(tenant, "s1", None);
        Assert.Equal(250, stored.Count);
        Assert.Equal(Enumerable.Range(0, 250), stored.Select(r => r.SliceIndex));
        Assert.Equal(999, stored[3].LesionPixels);
        Assert.Equal(records[10] with { ClassProbabilities = stored[10].ClassProbabilities }, stored[10]);
        Assert.Equal([0.5f, 0.25f, 0.25f], stored[10].ClassProbabilities);
        Assert.Null(stored[11].OverlayPath);
        Assert.Empty(await azurite.Storage.SliceResults.GetAsync(tenant, "other", None));
    }

    [Fact]
    public async Task Usage_is_recorded_once_under_duplicate_deliveries()
    {
        var tenant = AzuriteFixture.NewTenant();
        var at = new DateTimeOffset(2026, 11, 26, 9, 0, 0, TimeSpan.Zero);
        var record = new UsageRecord(tenant, "s1", "scoring", at, 300, 12.5, 0, 1_000_000);

        var inserted = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(() => azurite.Storage.Usage.TryRecordAsync(record, None))));
        Assert.Equal(1, inserted.Count(i => i));
        Assert.True(await azurite.Storage.Usage.TryRecordAsync(record with { Stage = "ingest" }, None));
        // The same study and stage a month later (a retry after the month turned) is the same record, not a new one.
        Assert.False(await azurite.Storage.Usage.TryRecordAsync(record with { At = at.AddMonths(1) }, None));
        Assert.True(await azurite.Storage.Usage.TryRecordAsync(record with { StudyId = "s2", At = at.AddMonths(1) }, None));

        var month = await azurite.Storage.Usage.GetMonthAsync(tenant, "2026-11", None);
        Assert.Equal(2, month.Count);
        Assert.Contains(record, month);
        Assert.Single(await azurite.Storage.Usage.GetMonthAsync(tenant, "2026-12", None));
    }
}
