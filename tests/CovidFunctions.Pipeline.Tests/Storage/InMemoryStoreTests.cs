using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Tests.Storage;

public sealed class InMemoryStoreTests
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task TryCreate_SecondCreate_LeavesTheFirstRow()
    {
        var store = new InMemoryStudyStore();
        Assert.True(await store.TryCreateAsync(new StudyRecord { Tenant = "t", StudyId = "s1", UploadPath = "t/a.zip" }, default));
        Assert.False(await store.TryCreateAsync(new StudyRecord { Tenant = "t", StudyId = "s1", UploadPath = "t/b.zip" }, default));

        var row = await store.GetAsync("t", "s1", default);
        Assert.NotNull(row);
        Assert.Equal("t/a.zip", row.UploadPath);
        Assert.NotNull(row.ETag);
        Assert.Null(await store.GetAsync("t", "s2", default));
    }

    [Fact]
    public async Task Update_CreatesWhenAbsent_AndChangesTheETag()
    {
        var store = new InMemoryStudyStore();
        var created = await store.UpdateAsync("t", "s1", r => r ?? new StudyRecord { Tenant = "t", StudyId = "s1", Status = StudyStatus.Processing }, default);
        var updated = await store.UpdateAsync("t", "s1", r => r! with { SliceCount = 7 }, default);

        Assert.Equal(StudyStatus.Processing, updated.Status);
        Assert.Equal(7, updated.SliceCount);
        Assert.NotEqual(created.ETag, updated.ETag);
        Assert.Equal(updated, await store.GetAsync("t", "s1", default));
    }

    [Fact]
    public async Task Update_ConcurrentWriters_NoUpdateIsLost()
    {
        var store = new InMemoryStudyStore();
        await store.TryCreateAsync(new StudyRecord { Tenant = "t", StudyId = "s1" }, default);

        // 8 writers x 50 increments of SliceCount: a lost update would leave fewer than 400.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 50; i++)
            {
                await store.UpdateAsync("t", "s1", r => r! with { SliceCount = r.SliceCount + 1 }, default);
            }
        })));

        Assert.Equal(400, (await store.GetAsync("t", "s1", default))!.SliceCount);
    }

    [Fact]
    public async Task Update_RowChangedDuringUpdate_ReappliesOnTheNewRow()
    {
        var store = new InMemoryStudyStore();
        await store.TryCreateAsync(new StudyRecord { Tenant = "t", StudyId = "s1" }, default);
        var calls = 0;

        var stored = await store.UpdateAsync("t", "s1", r =>
        {
            calls++;
            if (calls == 1)
            {
                // Another writer lands between this update's read and its write.
                store.UpdateAsync("t", "s1", o => o! with { Reason = "other" }, default).GetAwaiter().GetResult();
            }

            return r! with { SliceCount = 3 };
        }, default);

        Assert.Equal(2, calls);
        Assert.Equal("other", stored.Reason);
        Assert.Equal(3, stored.SliceCount);
    }

    [Fact]
    public async Task Query_FiltersByTenantStatusAndTime_NewestFirst()
    {
        var store = new InMemoryStudyStore();
        await store.TryCreateAsync(new StudyRecord { Tenant = "a", StudyId = "s1", Status = StudyStatus.Completed, CreatedAt = T0 }, default);
        await store.TryCreateAsync(new StudyRecord { Tenant = "a", StudyId = "s2", Status = StudyStatus.Completed, CreatedAt = T0.AddHours(1) }, default);
        await store.TryCreateAsync(new StudyRecord { Tenant = "a", StudyId = "s3", Status = StudyStatus.Rejected, CreatedAt = T0.AddHours(2) }, default);
        await store.TryCreateAsync(new StudyRecord { Tenant = "b", StudyId = "s4", Status = StudyStatus.Completed, CreatedAt = T0.AddHours(3) }, default);

        Assert.Equal(["s3", "s2", "s1"], await Ids(store.QueryAsync("a", null, null, null, default)));
        Assert.Equal(["s2", "s1"], await Ids(store.QueryAsync("a", StudyStatus.Completed, null, null, default)));
        Assert.Equal(["s4", "s2"], await Ids(store.QueryAsync(null, StudyStatus.Completed, T0.AddMinutes(30), null, default)));
        Assert.Equal(["s1"], await Ids(store.QueryAsync(null, null, null, T0.AddMinutes(30), default)));
    }

    [Fact]
    public async Task SliceResults_UpsertOverwritesBySliceIndex_OrderedBySlice()
    {
        var store = new InMemorySliceResultStore();
        await store.UpsertAsync([Slice(2, 0.2f), Slice(0, 0.0f)], default);
        await store.UpsertAsync([Slice(1, 0.1f), Slice(2, 0.9f)], default);

        var rows = await store.GetAsync("t", "s1", default);
        Assert.Equal([0, 1, 2], rows.Select(r => r.SliceIndex));
        Assert.Equal(0.9f, rows[2].LesionFraction);
        Assert.Empty(await store.GetAsync("t", "other", default));
    }

    [Fact]
    public async Task Usage_DuplicateStage_CountsOnce_AndMonthsSeparate()
    {
        var store = new InMemoryUsageStore();
        Assert.True(await store.TryRecordAsync(new UsageRecord("t", "s1", "ingest", T0, 10, 1.5, 0, 100), default));
        Assert.False(await store.TryRecordAsync(new UsageRecord("t", "s1", "ingest", T0.AddMinutes(1), 10, 1.5, 0, 100), default));
        Assert.True(await store.TryRecordAsync(new UsageRecord("t", "s1", "scoring", T0, 10, 3, 2, 0), default));
        Assert.True(await store.TryRecordAsync(new UsageRecord("t", "s2", "ingest", T0.AddMonths(1), 5, 1, 0, 50), default));
        Assert.True(await store.TryRecordAsync(new UsageRecord("u", "s3", "ingest", T0, 5, 1, 0, 50), default));

        var march = await store.GetMonthAsync("t", "2026-03", default);
        Assert.Equal(["ingest", "scoring"], march.Select(r => r.Stage));
        Assert.Single(await store.GetMonthAsync("t", "2026-04", default));
        Assert.Equal(4, store.Snapshot().Count);
    }

    private static SliceResultRecord Slice(int index, float fraction) =>
        new("t", "s1", index, 0, fraction, fraction, 10, 100, [0.2f, 0.3f, 0.5f], null);

    private static async Task<List<string>> Ids(IAsyncEnumerable<StudyRecord> records)
    {
        var ids = new List<string>();
        await foreach (var record in records)
        {
            ids.Add(record.StudyId);
        }

        return ids;
    }
}
