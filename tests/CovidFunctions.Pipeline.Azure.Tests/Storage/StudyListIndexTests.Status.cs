using System.Text.Json;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// <c>GET /api/studies?status=</c> on the table store's status index (<c>~list|{tenant}|{status}</c>): before, a list
/// filtered by status read every study of the tenant with that status for every page (the Table service scanning the
/// tenant's partition), 10,001 rows for a page of 50 of a 20,000-study tenant (docs/benchmarks.md "Studies list").
/// </summary>
public sealed partial class StudyListIndexTests
{
    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Status_pages_list_each_matching_study_once_while_statuses_change_reading_about_a_page(string kind)
    {
        var (studies, recorder) = await StoreAsync(kind);
        var api = Api(studies, out var dispose);
        using var _ = dispose;
        var tenant = AzuriteFixture.NewTenant();
        var other = AzuriteFixture.NewTenant();
        // 96 completed studies and every 8th processing (12), newest first: 95, 87, ..., 7; another tenant's interleaved.
        for (var i = 0; i < 96; i++)
        {
            var status = i % 8 == 7 ? StudyStatus.Processing : StudyStatus.Completed;
            Assert.True(await studies.TryCreateAsync(Study(tenant, i, T0.AddMinutes(i)) with { Status = status }, None));
            Assert.True(await studies.TryCreateAsync(Study(other, i, T0.AddMinutes(i)) with { Status = StudyStatus.Processing }, None));
        }

        var listed = new List<(string Study, string Tenant, string Status)>();
        string? continuation = null;
        var pages = 0;
        do
        {
            recorder?.Reset();
            var page = await StatusPageAsync(api, ApiCaller.ForTenants(tenant), new StudyListQuery(Status: StudyStatus.Processing, PageSize: 3, Continuation: continuation));
            if (kind == "table")
            {
                // About one page: at most 4 status index keys and a point read of each; the tenant's rows are not scanned.
                Assert.True(recorder!.Rows <= 8, $"page {pages + 1} read {recorder.Rows} rows");
                Assert.DoesNotContain(recorder.Queries, IsScanOfStudyRows);
            }

            listed.AddRange(page.Items);
            continuation = page.Continuation;
            pages++;
            if (pages == 1)
            {
                // Between pages 1 and 2: one not yet listed leaves the status, one joins it, a listed one leaves and comes back.
                await SetStatusAsync(studies, tenant, 63, StudyStatus.Completed);
                await SetStatusAsync(studies, tenant, 50, StudyStatus.Processing);
                await SetStatusAsync(studies, tenant, 87, StudyStatus.Completed);
                await SetStatusAsync(studies, tenant, 87, StudyStatus.Processing);
            }
        }
        while (continuation is not null);

        var expected = new[] { 95, 87, 79, 71, 55, 50, 47, 39, 31, 23, 15, 7 }.Select(Id).ToList();
        Assert.Equal(expected, listed.Select(l => l.Study).ToList());
        Assert.All(listed, l => Assert.Equal((tenant, StudyStatus.Processing), (l.Tenant, l.Status)));
        Assert.Equal(4, pages);
    }

    [Fact]
    public async Task A_status_list_holds_only_its_tenants_and_its_token_only_that_list()
    {
        var (studies, _) = await StoreAsync("table");
        var api = Api(studies, out var dispose);
        using var _ = dispose;
        var a = AzuriteFixture.NewTenant();
        var b = AzuriteFixture.NewTenant();
        for (var i = 0; i < 6; i++)
        {
            // The same ids in both tenants, all failed, b's a second later than a's (one place holds one study: the
            // token is a place, and real study ids are unique across tenants).
            await studies.TryCreateAsync(Study(a, i, T0.AddMinutes(i)) with { Status = StudyStatus.Failed }, None);
            await studies.TryCreateAsync(Study(b, i, T0.AddMinutes(i).AddSeconds(1)) with { Status = StudyStatus.Failed }, None);
        }

        var first = await StatusPageAsync(api, ApiCaller.ForTenants(a), new StudyListQuery(Status: StudyStatus.Failed, PageSize: 4));
        Assert.All(first.Items, i => Assert.Equal(a, i.Tenant));
        var rest = await StatusPageAsync(api, ApiCaller.ForTenants(a), new StudyListQuery(Status: StudyStatus.Failed, PageSize: 4, Continuation: first.Continuation));
        Assert.Equal([Id(5), Id(4), Id(3), Id(2), Id(1), Id(0)], first.Items.Concat(rest.Items).Select(i => i.Study));
        Assert.All(rest.Items, i => Assert.Equal(a, i.Tenant));
        Assert.Null(rest.Continuation);

        foreach (var (caller, tenant) in new[] { (ApiCaller.ForTenants(b), (string?)null), (ApiCaller.AllTenants, b), (ApiCaller.ForTenants(a, b), null), (ApiCaller.AllTenants, null) })
        {
            var refused = await api.ListStudiesAsync(caller, new StudyListQuery(Tenant: tenant, Status: StudyStatus.Failed, PageSize: 4, Continuation: first.Continuation), None);
            Assert.Equal(400, refused.Status);
            Assert.Contains("other tenants", System.Text.Encoding.UTF8.GetString(refused.Body), StringComparison.Ordinal);
        }

        // Both tenants' key: both lists merged in list order, each study once.
        var both = await AllStatusPagesAsync(api, ApiCaller.ForTenants(b, a), new StudyListQuery(Status: StudyStatus.Failed, PageSize: 5));
        Assert.Equal(Enumerable.Range(0, 6).Reverse().SelectMany(i => new[] { (Id(i), b), (Id(i), a) }), both.Select(i => (i.Study, i.Tenant)));
    }

    [Fact]
    public async Task Studies_written_before_the_status_index_are_listed_by_status_the_slow_way_until_the_backfill_then_the_same_by_the_index()
    {
        var (store, recorder) = await StoreAsync("table-scan");
        var studies = (TableStudyStore)store;
        Assert.Equal(0, await studies.CompleteListIndexAsync(None));
        var api = Api(studies, out var dispose);
        using var _ = dispose;
        var tenants = new[] { AzuriteFixture.NewTenant(), AzuriteFixture.NewTenant() };
        var statuses = new[] { StudyStatus.Completed, StudyStatus.Failed, StudyStatus.Processing, StudyStatus.Queued, StudyStatus.Rejected };
        for (var i = 0; i < 20; i++)
        {
            // As the store wrote them before the status index: the study row and its list index row, no status row.
            var study = Study(tenants[i % 2], i, T0.AddMinutes(i / 2)) with { Status = statuses[i % statuses.Length] };
            await studies.Table.AddEntityAsync(TableStudyStore.ToEntity(study), None);
            await studies.Table.UpsertEntityAsync(new TableEntity(TableStudyStore.ListIndexPartition(study.Tenant), TableStudyStore.ListIndexRowKey(StudyListPosition.Of(study))), TableUpdateMode.Replace, None);
        }

        // One changes status through the store before the backfill: its new status's row is written anyway.
        await SetStatusAsync(studies, tenants[0], 0, StudyStatus.Failed);
        var queries = statuses.SelectMany(status => new[]
        {
            (ApiCaller.ForTenants(tenants[0]), new StudyListQuery(Status: status, PageSize: 2)),
            (ApiCaller.AllTenants, new StudyListQuery(Status: status, PageSize: 3)),
        }).ToList();
        var before = new List<List<(string, string, string)>>();
        foreach (var (caller, query) in queries)
        {
            before.Add(await AllStatusPagesAsync(api, caller, query));
        }

        Assert.Equal(20, before.Where((_, q) => q % 2 == 1).Sum(l => l.Count));
        Assert.False(await studies.IsStatusIndexCompleteAsync(None));
        Assert.Equal(20, await studies.CompleteStatusIndexAsync(None));
        Assert.True(await studies.IsStatusIndexCompleteAsync(None));
        Assert.Equal(0, await new TableStudyStore(studies.Table).CompleteStatusIndexAsync(None));
        for (var q = 0; q < queries.Count; q++)
        {
            recorder!.Reset();
            Assert.Equal(before[q], await AllStatusPagesAsync(api, queries[q].Item1, queries[q].Item2));
            Assert.DoesNotContain(recorder.Queries, IsScanOfStudyRows);
        }
    }

    [Fact]
    public async Task Racing_status_changes_leave_one_status_row_per_study_the_one_of_the_status_it_holds()
    {
        var studies = (TableStudyStore)(await StoreAsync("table")).Studies;
        var tenant = AzuriteFixture.NewTenant();
        var statuses = new[] { StudyStatus.Queued, StudyStatus.Processing, StudyStatus.Completed, StudyStatus.Failed, StudyStatus.Rejected };
        for (var i = 0; i < 3; i++)
        {
            await studies.TryCreateAsync(Study(tenant, i, T0.AddMinutes(i)) with { Status = StudyStatus.Queued }, None);
        }

        // Twelve writers per study, each setting a status of its own (some the same, some back to one it had left),
        // racing: re-reads, re-applies and deletes of old rows interleave.
        await Task.WhenAll(Enumerable.Range(0, 3).SelectMany(i => Enumerable.Range(0, 12).Select(w => Task.Run(() =>
            studies.UpdateAsync(tenant, Id(i), s => s! with { Status = statuses[(w + i) % statuses.Length], SliceCount = s.SliceCount + 1 }, None)))));
        // A create delivered again with another status loses, and leaves no row of that status.
        Assert.False(await studies.TryCreateAsync(Study(tenant, 0, T0) with { Status = StudyStatus.Rejected }, None));

        var rows = new List<(string Status, string RowKey)>();
        foreach (var status in statuses)
        {
            rows.AddRange(await studies.Table.QueryAsync<TableEntity>(e => e.PartitionKey == TableStudyStore.StatusIndexPartition(tenant, status)).Select(e => (status, e.RowKey)).ToListAsync());
        }

        var held = new List<(string Status, string RowKey)>();
        for (var i = 0; i < 3; i++)
        {
            var study = (await studies.GetAsync(tenant, Id(i), None))!;
            Assert.Equal(13, study.SliceCount);
            held.Add((study.Status, TableStudyStore.ListIndexRowKey(StudyListPosition.Of(study))));
        }

        Assert.Equal(held.OrderBy(h => h.Status, StringComparer.Ordinal).ThenBy(h => h.RowKey, StringComparer.Ordinal), rows.OrderBy(h => h.Status, StringComparer.Ordinal).ThenBy(h => h.RowKey, StringComparer.Ordinal));
        foreach (var status in statuses)
        {
            Assert.Equal(held.Where(h => h.Status == status).Select(h => h.RowKey).Order(StringComparer.Ordinal).ToList(),
                await studies.ListAsync(new StudyListRequest([tenant], status), None).Select(s => TableStudyStore.ListIndexRowKey(StudyListPosition.Of(s))).ToListAsync());
        }
    }

    [Fact]
    public async Task A_status_row_of_a_status_its_study_left_is_skipped()
    {
        var studies = (TableStudyStore)(await StoreAsync("table")).Studies;
        var tenant = AzuriteFixture.NewTenant();
        for (var i = 0; i < 4; i++)
        {
            await studies.TryCreateAsync(Study(tenant, i, T0.AddMinutes(i)) with { Status = StudyStatus.Failed }, None);
        }

        // Left behind by writers that died between the study row and the delete: two completed studies' failed rows.
        for (var i = 4; i < 6; i++)
        {
            await studies.TryCreateAsync(Study(tenant, i, T0.AddMinutes(i)), None);
            await studies.Table.UpsertEntityAsync(new TableEntity(TableStudyStore.StatusIndexPartition(tenant, StudyStatus.Failed), TableStudyStore.ListIndexRowKey(new StudyListPosition(T0.AddMinutes(i), Id(i)))), TableUpdateMode.Replace, None);
        }

        var api = Api(studies, out var dispose);
        using var _ = dispose;
        var page = await StatusPageAsync(api, ApiCaller.ForTenants(tenant), new StudyListQuery(Status: StudyStatus.Failed, PageSize: 4));
        Assert.Equal([Id(3), Id(2), Id(1), Id(0)], page.Items.Select(i => i.Study));
        Assert.Null(page.Continuation);
    }

    private static Task SetStatusAsync(IStudyStore studies, string tenant, int i, string status) =>
        studies.UpdateAsync(tenant, Id(i), s => s! with { Status = status }, None);

    private static async Task<(List<(string Study, string Tenant, string Status)> Items, string? Continuation)> StatusPageAsync(ResultsApi api, ApiCaller caller, StudyListQuery query)
    {
        var response = await api.ListStudiesAsync(caller, query, None);
        Assert.True(response.Status == 200, System.Text.Encoding.UTF8.GetString(response.Body));
        using var json = JsonDocument.Parse(response.Body);
        var items = json.RootElement.GetProperty("items").EnumerateArray()
            .Select(i => (i.GetProperty("study").GetString()!, i.GetProperty("tenant").GetString()!, i.GetProperty("status").GetString()!))
            .ToList();
        return (items, json.RootElement.TryGetProperty("continuation", out var c) ? c.GetString() : null);
    }

    private static async Task<List<(string Study, string Tenant, string Status)>> AllStatusPagesAsync(ResultsApi api, ApiCaller caller, StudyListQuery query)
    {
        var all = new List<(string, string, string)>();
        string? continuation = null;
        do
        {
            var page = await StatusPageAsync(api, caller, query with { Continuation = continuation });
            all.AddRange(page.Items);
            continuation = page.Continuation;
        }
        while (continuation is not null);

        Assert.Equal(all.Count, all.Distinct().Count());
        Assert.All(all, i => Assert.Equal(query.Status, i.Item3));
        return all;
    }
}
