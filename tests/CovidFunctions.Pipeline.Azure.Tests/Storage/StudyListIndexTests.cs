using System.Text.Json;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// The studies list (<c>GET /api/studies</c>, <see cref="IStudyStore.ListAsync"/>) on every store: the table store on
/// a real Azurite with its time-ordered list index complete ("table"), the same store before the index is complete
/// ("table-scan": the slow path, every matching study read and sorted), and the in-memory store ("memory"). Each
/// answers the same pages. Before, the table store read every matching study of the tenant and sorted it in memory
/// for every page (20,000 rows for a page of 50 of a 20,000-study tenant, docs/benchmarks.md "Studies list"); with
/// the index a page reads about one page of index keys and point-reads the studies listed. Each test has a Studies
/// table of its own (the list index marker is one per table). The status filter's tests are in
/// StudyListIndexTests.Status.cs.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed partial class StudyListIndexTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 8, 0, 0, TimeSpan.Zero);

    public static TheoryData<string> Stores => ["table", "table-scan", "memory"];

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Pages_list_newest_first_each_study_once_while_new_studies_arrive(string kind)
    {
        var (studies, recorder) = await StoreAsync(kind);
        var api = Api(studies, out var dispose);
        using var _ = dispose;
        var tenant = AzuriteFixture.NewTenant();
        var other = AzuriteFixture.NewTenant();
        // 23 studies, some created at the same instant (ordered by id then), and another tenant's interleaved.
        var seeded = new List<StudyRecord>();
        for (var i = 0; i < 23; i++)
        {
            var study = Study(tenant, i, T0.AddMinutes(i / 3));
            seeded.Add(study);
            Assert.True(await studies.TryCreateAsync(study, None));
            Assert.True(await studies.TryCreateAsync(Study(other, i, T0.AddMinutes(i / 3).AddSeconds(1)), None));
        }

        var expected = seeded.OrderByDescending(s => s.CreatedAt).ThenBy(s => s.StudyId, StringComparer.Ordinal).Select(s => s.StudyId).ToList();
        var listed = new List<string>();
        string? continuation = null;
        var pages = 0;
        do
        {
            recorder?.Reset();
            var page = await PageAsync(api, ApiCaller.ForTenants(tenant), new StudyListQuery(PageSize: 5, Continuation: continuation));
            if (kind == "table")
            {
                // About one page: the tenant's list index keys (at most 6) and a point read of each listed study.
                Assert.True(recorder!.Rows <= 12, $"page {pages + 1} read {recorder.Rows} rows");
                Assert.DoesNotContain(recorder.Queries, q => q.Contains($"PartitionKey eq '{tenant}'", StringComparison.Ordinal));
            }

            listed.AddRange(page.Items);
            continuation = page.Continuation;
            pages++;
            // A study arrives between two pages: newer than every listed one, so it is on a new first page only.
            Assert.True(await studies.TryCreateAsync(Study(tenant, 100 + pages, T0.AddDays(1).AddMinutes(pages)), None));
        }
        while (continuation is not null);

        Assert.Equal(expected, listed);
        Assert.Equal(5, pages);
        var first = await PageAsync(api, ApiCaller.ForTenants(tenant), new StudyListQuery(PageSize: 5));
        Assert.Equal(Id(100 + pages), first.Items[0]);
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Every_filter_and_key_kind_lists_what_the_scan_lists(string kind)
    {
        var (studies, _) = await StoreAsync(kind);
        IStudyStore reference = new InMemoryStudyStore();
        var tenants = new[] { AzuriteFixture.NewTenant(), AzuriteFixture.NewTenant(), AzuriteFixture.NewTenant() };
        var statuses = new[] { StudyStatus.Completed, StudyStatus.Failed, StudyStatus.Processing };
        for (var i = 0; i < 30; i++)
        {
            var study = Study(tenants[i % 3], i, T0.AddMinutes(i / 4)) with { Status = statuses[i / 3 % statuses.Length] };
            await studies.TryCreateAsync(study, None);
            await reference.TryCreateAsync(study, None);
        }

        var after = new StudyListPosition(T0.AddMinutes(5), Id(21));
        var requests = new List<StudyListRequest>
        {
            new([tenants[0]]),
            new([tenants[1], tenants[2]]),
            new([tenants[0]], After: after),
            new([tenants[0], tenants[1]], From: T0.AddMinutes(2), To: T0.AddMinutes(5)),
            new([tenants[2]], From: T0.AddMinutes(3), After: after),
            new([tenants[0], tenants[1], tenants[2]], Status: StudyStatus.Failed),
            new([tenants[0]], Status: StudyStatus.Completed, After: after),
            new([tenants[1]], To: T0.AddMinutes(1).AddTicks(-1)),
        };
        foreach (var request in requests)
        {
            var expected = await reference.ListAsync(request, None).Select(s => (s.Tenant, s.StudyId)).ToListAsync();
            Assert.NotEmpty(expected);
            Assert.Equal(expected, await studies.ListAsync(request, None).Select(s => (s.Tenant, s.StudyId)).ToListAsync());
            // Read one by one as the API reads: one page size at a time gives the same.
            Assert.Equal(expected.Take(3), await studies.ListAsync(request with { PageSize = 2 }, None).Take(3).Select(s => (s.Tenant, s.StudyId)).ToListAsync());
        }
    }

    [Fact]
    public async Task A_continuation_token_lists_only_the_list_it_came_from()
    {
        var (studies, _) = await StoreAsync("table");
        var api = Api(studies, out var dispose);
        using var _ = dispose;
        var a = AzuriteFixture.NewTenant();
        var b = AzuriteFixture.NewTenant();
        for (var i = 0; i < 4; i++)
        {
            await studies.TryCreateAsync(Study(a, i, T0.AddMinutes(i)), None);
            await studies.TryCreateAsync(Study(b, i, T0.AddMinutes(i)), None);
        }

        var ofA = (await PageAsync(api, ApiCaller.ForTenants(a), new StudyListQuery(PageSize: 2))).Continuation!;

        // Another tenant's key, an all-tenant key asking for that tenant, a key of both: refused, nothing listed.
        foreach (var (caller, tenant) in new[] { (ApiCaller.ForTenants(b), (string?)null), (ApiCaller.AllTenants, b), (ApiCaller.ForTenants(a, b), null), (ApiCaller.AllTenants, null) })
        {
            var refused = await api.ListStudiesAsync(caller, new StudyListQuery(Tenant: tenant, PageSize: 2, Continuation: ofA), None);
            Assert.Equal(400, refused.Status);
            Assert.Contains("other tenants", System.Text.Encoding.UTF8.GetString(refused.Body), StringComparison.Ordinal);
        }

        // The same list, by its own key or by an all-tenant key asking for it, goes on.
        Assert.Equal([Id(1), Id(0)], (await PageAsync(api, ApiCaller.ForTenants(a), new StudyListQuery(PageSize: 2, Continuation: ofA))).Items);
        Assert.Equal([Id(1), Id(0)], (await PageAsync(api, ApiCaller.AllTenants, new StudyListQuery(Tenant: a, PageSize: 2, Continuation: ofA))).Items);
    }

    [Fact]
    public async Task Studies_written_before_the_index_are_listed_the_slow_way_until_the_backfill_then_the_same_by_the_index()
    {
        var (store, recorder) = await StoreAsync("table-scan");
        var studies = (TableStudyStore)store;
        var api = Api(studies, out var dispose);
        using var _ = dispose;
        var tenants = new[] { AzuriteFixture.NewTenant(), AzuriteFixture.NewTenant() };
        for (var i = 0; i < 12; i++)
        {
            // Rows as the store wrote them before the list index: the study row alone (and its id index row).
            await studies.Table.AddEntityAsync(TableStudyStore.ToEntity(Study(tenants[i % 2], i, T0.AddMinutes(i / 2))), None);
        }

        // One created through the store before the backfill: its list index row is written anyway.
        await studies.TryCreateAsync(Study(tenants[0], 50, T0.AddMinutes(3)), None);
        var queries = new[]
        {
            (ApiCaller.ForTenants(tenants[0]), new StudyListQuery(PageSize: 3)),
            (ApiCaller.ForTenants(tenants[0], tenants[1]), new StudyListQuery(PageSize: 4)),
            (ApiCaller.AllTenants, new StudyListQuery(PageSize: 5)),
            (ApiCaller.AllTenants, new StudyListQuery(Tenant: tenants[1], From: T0.AddMinutes(1), PageSize: 2)),
        };

        var before = new List<List<string>>();
        foreach (var (caller, query) in queries)
        {
            before.Add(await AllPagesAsync(api, caller, query));
        }

        Assert.False(await studies.IsListIndexCompleteAsync(None));
        Assert.Equal(13, await studies.CompleteListIndexAsync(None));
        Assert.True(await studies.IsListIndexCompleteAsync(None));
        // A second run (another instance, a restart) changes nothing.
        Assert.Equal(0, await new TableStudyStore(studies.Table).CompleteListIndexAsync(None));

        for (var q = 0; q < queries.Length; q++)
        {
            recorder!.Reset();
            Assert.Equal(before[q], await AllPagesAsync(api, queries[q].Item1, queries[q].Item2));
            Assert.DoesNotContain(recorder.Queries, IsScanOfStudyRows);
        }

        Assert.Equal(13, before[2].Count);
    }

    [Fact]
    public async Task Redelivered_and_racing_writes_leave_one_list_index_row_per_study_at_its_place()
    {
        var studies = (TableStudyStore)(await StoreAsync("table")).Studies;
        var tenant = AzuriteFixture.NewTenant();
        var created = Study(tenant, 1, T0);

        // A create delivered twice; a second create of the same study at another time loses and leaves no row behind.
        Assert.True(await studies.TryCreateAsync(created, None));
        Assert.False(await studies.TryCreateAsync(created, None));
        Assert.False(await studies.TryCreateAsync(created with { CreatedAt = T0.AddMinutes(7) }, None));

        // An upsert-create (ingest) delivered twice, the second with a later time: the first stays, one row.
        await studies.UpdateAsync(tenant, Id(2), s => s ?? Study(tenant, 2, T0.AddMinutes(1)), None);
        await studies.UpdateAsync(tenant, Id(2), s => s ?? Study(tenant, 2, T0.AddMinutes(9)), None);

        // Eight writers racing to create one study, each with its own time: one wins; its place alone is indexed.
        var times = Enumerable.Range(0, 8).Select(i => T0.AddMinutes(20 + i)).ToList();
        await Task.WhenAll(times.Select(at => Task.Run(() => studies.UpdateAsync(tenant, Id(3), s => (s ?? Study(tenant, 3, at)) with { SliceCount = (s?.SliceCount ?? 0) + 1 }, None))));

        // Status changes (the pipeline's updates) write no index row.
        await studies.UpdateAsync(tenant, Id(1), s => s! with { Status = StudyStatus.Completed }, None);

        // A write that moves a study (none of the pipeline's writers does) moves its row.
        await studies.UpdateAsync(tenant, Id(2), s => s! with { CreatedAt = T0.AddMinutes(2) }, None);

        var rows = await studies.Table.QueryAsync<TableEntity>(e => e.PartitionKey == TableStudyStore.ListIndexPartition(tenant)).Select(e => e.RowKey).ToListAsync();
        var held = new List<string>();
        foreach (var id in new[] { Id(1), Id(2), Id(3) })
        {
            held.Add(TableStudyStore.ListIndexRowKey(StudyListPosition.Of((await studies.GetAsync(tenant, id, None))!)));
        }

        Assert.Equal(held.Order(StringComparer.Ordinal), rows);
        Assert.Equal(8, (await studies.GetAsync(tenant, Id(3), None))!.SliceCount);
        Assert.Equal([Id(3), Id(2), Id(1)], await studies.ListAsync(new StudyListRequest([tenant]), None).Select(s => s.StudyId).ToListAsync());
    }

    [Fact]
    public async Task An_index_row_whose_study_holds_another_place_or_none_is_skipped()
    {
        var studies = (TableStudyStore)(await StoreAsync("table")).Studies;
        var tenant = AzuriteFixture.NewTenant();
        for (var i = 0; i < 4; i++)
        {
            await studies.TryCreateAsync(Study(tenant, i, T0.AddMinutes(i)), None);
        }

        // Left behind by a writer that died between its index row and its study row, or before deleting an old place.
        await studies.Table.UpsertEntityAsync(new TableEntity(TableStudyStore.ListIndexPartition(tenant), TableStudyStore.ListIndexRowKey(new StudyListPosition(T0.AddHours(1), Id(9)))), TableUpdateMode.Replace, None);
        await studies.Table.UpsertEntityAsync(new TableEntity(TableStudyStore.ListIndexPartition(tenant), TableStudyStore.ListIndexRowKey(new StudyListPosition(T0.AddHours(2), Id(1)))), TableUpdateMode.Replace, None);

        var api = Api(studies, out var dispose);
        using var _ = dispose;
        Assert.Equal([Id(3), Id(2), Id(1), Id(0)], await AllPagesAsync(api, ApiCaller.ForTenants(tenant), new StudyListQuery(PageSize: 2)));
        // A page of 4 whose first keys are the two dangling ones: still a full page, and no continuation after the last.
        var page = await PageAsync(api, ApiCaller.ForTenants(tenant), new StudyListQuery(PageSize: 4));
        Assert.Equal([Id(3), Id(2), Id(1), Id(0)], page.Items);
        Assert.Null(page.Continuation);
    }

    [Fact]
    public void List_index_keys_sort_in_the_list_order()
    {
        var random = new Random(7);
        var ids = new[] { "s1", "s1-", "s1_", "s10", "sA", "sa", "s", "S", "a-b", "a" };
        var places = Enumerable.Range(0, 400)
            .Select(_ => new StudyListPosition(new DateTimeOffset(random.NextInt64(0, DateTimeOffset.MaxValue.UtcTicks / 1000) * (random.Next(2) == 0 ? 1 : 1000), TimeSpan.Zero), ids[random.Next(ids.Length)]))
            .Append(new StudyListPosition(DateTimeOffset.MinValue, "s0"))
            .Append(new StudyListPosition(DateTimeOffset.MaxValue, "s0"))
            .ToList();
        var byKey = places.OrderBy(TableStudyStore.ListIndexRowKey, StringComparer.Ordinal).ToList();
        for (var i = 1; i < byKey.Count; i++)
        {
            Assert.False(byKey[i].Precedes(byKey[i - 1]), $"{byKey[i - 1]} is keyed before {byKey[i]}");
        }

        Assert.All(places, p => Assert.True(TableStudyStore.TryReadListIndexRowKey(TableStudyStore.ListIndexRowKey(p), out var read) && read.IsSamePlace(p)));
    }

    private static string Id(int i) => "s" + i.ToString("x24", System.Globalization.CultureInfo.InvariantCulture);

    private static StudyRecord Study(string tenant, int i, DateTimeOffset createdAt) =>
        new() { Tenant = tenant, StudyId = Id(i), Status = StudyStatus.Completed, CreatedAt = createdAt, SliceCount = 1 };

    private static bool IsScanOfStudyRows(string query) =>
        !query.Contains("PartitionKey eq '~list|", StringComparison.Ordinal) && query.Contains("$filter", StringComparison.Ordinal) && !query.Contains("$top=1", StringComparison.Ordinal);

    /// <summary>A store of the kind on a Studies table of its own, recording the table requests (null for memory).</summary>
    private async Task<(IStudyStore Studies, TableRequestCounter? Recorder)> StoreAsync(string kind)
    {
        if (kind == "memory")
        {
            return (new InMemoryStudyStore(), null);
        }

        var recorder = new TableRequestCounter();
        var table = recorder.Client(azurite.Server.ConnectionString, "Studies" + Guid.NewGuid().ToString("N")[..16]);
        await table.CreateIfNotExistsAsync(None);
        var store = new TableStudyStore(table);
        if (kind == "table")
        {
            // An empty table: the completions only write the markers; every study is created through the store.
            Assert.Equal(0, await store.CompleteListIndexAsync(None));
            Assert.Equal(0, await store.CompleteStatusIndexAsync(None));
        }

        return (store, recorder);
    }

    private static ResultsApi Api(IStudyStore studies, out IDisposable dispose)
    {
        var options = new WebhookOptions();
        var guard = new WebhookTargetGuard(options);
        var deliveries = new InMemoryWebhookDeliveryLog();
        var dispatcher = new WebhookDispatcher(guard, deliveries, options, TimeProvider.System, NullLogger<WebhookDispatcher>.Instance);
        dispose = dispatcher;
        var manager = new WebhookManager(new InMemoryWebhookSubscriptionStore(), new InMemoryWebhookSecretStore(), deliveries, guard, dispatcher, options, TimeProvider.System);
        return new ResultsApi(studies, new FileSystemBlobContainers(Path.GetTempPath()), new UsageQueries(new InMemoryUsageStore(), studies), manager, new ResultsApiOptions());
    }

    private static async Task<(List<string> Items, string? Continuation)> PageAsync(ResultsApi api, ApiCaller caller, StudyListQuery query)
    {
        var response = await api.ListStudiesAsync(caller, query, None);
        Assert.True(response.Status == 200, System.Text.Encoding.UTF8.GetString(response.Body));
        using var json = JsonDocument.Parse(response.Body);
        var items = json.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("study").GetString()!).ToList();
        return (items, json.RootElement.TryGetProperty("continuation", out var c) ? c.GetString() : null);
    }

    private static async Task<List<string>> AllPagesAsync(ResultsApi api, ApiCaller caller, StudyListQuery query)
    {
        var all = new List<string>();
        string? continuation = null;
        do
        {
            var page = await PageAsync(api, caller, query with { Continuation = continuation });
            all.AddRange(page.Items);
            continuation = page.Continuation;
        }
        while (continuation is not null);

        Assert.Equal(all.Count, all.Distinct().Count());
        return all;
    }
}
