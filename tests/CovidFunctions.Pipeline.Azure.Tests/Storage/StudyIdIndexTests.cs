using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// Finding a study by its id alone (an all-tenant API key, <c>covidfn status ID</c> without <c>--tenant</c>) on a real
/// Azurite, with every request the store sends recorded. A study created through the store is found by point reads
/// (its <c>~tenant-of</c> index row, then its row), with no query of the table; before 0be263b, every study outside the
/// default tenant was found by a scan of the whole Studies table. A row written before the index existed is found, before
/// the index is complete, by reading the id in each tenant (a one-row query and a point read per tenant, never a read of
/// every study), and its index row is written then, so the next lookup is point reads too. Completing the index (the
/// scan that writes every missing index row and the marker) runs off the request path (<see cref="StudyIdIndexCompletion"/>);
/// from then on an unknown id is answered by point reads, with no scan, also while studies are created during the
/// backfill. Each test has its own Studies table: the marker is one per table.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class StudyIdIndexTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task AStudyCreatedThroughTheStore_IsFoundByPointReads_NoQuery()
    {
        var (store, requests) = RecordingStore();
        var tenant = AzuriteFixture.NewTenant();
        var created = NewId();
        var upserted = NewId();
        Assert.True(await store.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = created, CreatedAt = DateTimeOffset.UtcNow }, None));
        await store.UpdateAsync(tenant, upserted, existing => existing ?? new StudyRecord { Tenant = tenant, StudyId = upserted, CreatedAt = DateTimeOffset.UtcNow }, None);

        foreach (var id in new[] { created, upserted })
        {
            requests.Clear();
            var found = await StudyRecordLookup.FindInAnyTenantAsync(store, id, None);

            Assert.Equal((tenant, id), (found?.Tenant, found?.StudyId));
            Assert.DoesNotContain(requests, IsQuery);
            Assert.Equal(2, requests.Count); // the index row, then the study's row
        }
    }

    [Fact]
    public async Task ARowWrittenBeforeTheIndex_IsFoundByTheTenantProbeOnce_ThenByPointReads()
    {
        var (store, requests) = RecordingStore();
        var tenant = AzuriteFixture.NewTenant();
        var id = NewId();

        // Written as the store wrote rows before the index: the row alone.
        await store.Table.AddEntityAsync(TableStudyStore.ToEntity(new StudyRecord { Tenant = tenant, StudyId = id, Status = StudyStatus.Completed, CreatedAt = DateTimeOffset.UtcNow }), None);

        requests.Clear();
        var first = await StudyRecordLookup.FindInAnyTenantAsync(store, id, None);
        Assert.NotNull(first);
        Assert.Equal((tenant, StudyStatus.Completed), (first.Tenant, first.Status));
        Assert.Contains(requests, IsQuery);
        Assert.All(requests.Where(IsQuery), r => Assert.True(IsOneRowQuery(r), $"not a one-row query: {r.Query}"));
        Assert.False(await store.IsTenantIndexCompleteAsync(None)); // the lookup did not complete the index

        requests.Clear();
        var second = await StudyRecordLookup.FindInAnyTenantAsync(store, id, None);
        Assert.Equal(first with { ETag = second?.ETag }, second);
        Assert.DoesNotContain(requests, IsQuery);
    }

    [Fact]
    public async Task AnUnknownId_IsNull_AndIndexRowsAreNeverListedAsStudies()
    {
        var (store, _) = RecordingStore();
        var tenant = AzuriteFixture.NewTenant();
        var id = NewId();
        Assert.True(await store.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = id, CreatedAt = DateTimeOffset.UtcNow }, None));

        Assert.Null(await StudyRecordLookup.FindInAnyTenantAsync(store, NewId(), None));
        Assert.Null(await StudyRecordLookup.FindInAnyTenantAsync(store, "a/b", None));

        var listed = await store.QueryAsync(null, null, null, null, None).ToListAsync();
        Assert.Single(listed, s => s.StudyId == id);
        Assert.DoesNotContain(listed, s => s.Tenant == TableStudyStore.TenantIndexPartition);

        // The index row itself: study id -> tenant, in a partition no tenant can have.
        var index = await store.Table.GetEntityAsync<TableEntity>(TableStudyStore.TenantIndexPartition, id, cancellationToken: None);
        Assert.Equal(tenant, index.Value.GetString("Tenant"));
        Assert.False(CovidFunctions.Pipeline.StudyIds.IsValidTenant(TableStudyStore.TenantIndexPartition));
    }

    [Fact]
    public async Task BeforeTheIndexIsComplete_AMissReadsOneRowPerTenant_NeverEveryStudy_AndCompletesNothing()
    {
        var (store, requests) = RecordingStore();
        var tenants = new[] { "default", "pa", "pb", "pc" };
        var preIndex = Enumerable.Range(0, 240).Select(i => (tenants[i % tenants.Length], NewId())).ToList();
        foreach (var batch in preIndex.GroupBy(p => p.Item1))
        {
            foreach (var chunk in batch.Chunk(100))
            {
                await store.Table.SubmitTransactionAsync(chunk.Select(p => new TableTransactionAction(TableTransactionActionType.Add, TableStudyStore.ToEntity(new StudyRecord { Tenant = p.Item1, StudyId = p.Item2, CreatedAt = DateTimeOffset.UtcNow }))), None);
            }
        }

        // The lookup a request makes: an index point read, the marker, then per tenant a one-row query and a point read
        // of the id, and the final one-row queries that find no further tenant (one per key range: three, around the
        // list index and the id index partitions). Not a read of the 240 study rows, and not the backfill: that is
        // StudyIdIndexCompletion's, off the request path.
        requests.Clear();
        Assert.Null(await StudyRecordLookup.FindInAnyTenantAsync(store, NewId(), None));
        Assert.All(requests.Where(IsQuery), r => Assert.True(IsOneRowQuery(r), $"not a one-row query: {r.Query}"));
        Assert.Equal(2 + (2 * tenants.Length) + 3, requests.Count);
        Assert.False(await store.IsTenantIndexCompleteAsync(None));
        Assert.False((await store.Table.GetEntityIfExistsAsync<TableEntity>(TableStudyStore.TenantIndexPartition, preIndex[0].Item2, cancellationToken: None)).HasValue);

        // Every pre-index study is still found (never a wrong null): by the probe, which writes its index row.
        foreach (var (tenant, id) in preIndex.Where((_, i) => i % 37 == 0))
        {
            Assert.Equal(tenant, (await StudyRecordLookup.FindInAnyTenantAsync(store, id, None))?.Tenant);
            requests.Clear();
            Assert.Equal(tenant, (await StudyRecordLookup.FindInAnyTenantAsync(store, id, None))?.Tenant);
            Assert.Equal(2, requests.Count);
        }
    }

    [Fact]
    public async Task AfterTheCompletion_AnUnknownIdIsAnsweredByPointReads_WithoutAScan()
    {
        var (store, requests) = RecordingStore();
        var preIndex = new[] { ("pa", NewId()), ("pa", NewId()), ("pb", NewId()) };
        foreach (var (tenant, id) in preIndex)
        {
            await store.Table.AddEntityAsync(TableStudyStore.ToEntity(new StudyRecord { Tenant = tenant, StudyId = id, CreatedAt = DateTimeOffset.UtcNow }), None);
        }

        var created = NewId();
        Assert.True(await store.TryCreateAsync(new StudyRecord { Tenant = "pc", StudyId = created, CreatedAt = DateTimeOffset.UtcNow }, None));

        // An interrupted create: the index row landed, the study row never did.
        var interrupted = NewId();
        await store.Table.AddEntityAsync(new TableEntity(TableStudyStore.TenantIndexPartition, interrupted) { ["Tenant"] = "pc" }, None);
        Assert.False(await store.IsTenantIndexCompleteAsync(None));

        // The completion (the Function app's start-up, covidfn up): one scan, an index row for each pre-index study,
        // then the marker; then the list index's scan, which writes every study's list index row (the 3 pre-index
        // ones and the one created through the store, written again unchanged) and its marker, then the status index's
        // scan, the same four rows in their status's partitions, and its marker. Running it again finds the markers and
        // writes nothing.
        var completion = new StudyIdIndexCompletion(store, TimeProvider.System, NullLogger<StudyIdIndexCompletion>.Instance);
        requests.Clear();
        Assert.Equal(preIndex.Length + (2 * (preIndex.Length + 1)), await completion.RunAsync(TimeSpan.Zero, None));
        Assert.Contains(requests, IsQuery);
        Assert.True(await store.IsTenantIndexCompleteAsync(None));
        var marker = await store.Table.GetEntityAsync<TableEntity>(TableStudyStore.TenantIndexPartition, TableStudyStore.IndexCompleteRowKey, cancellationToken: None);
        Assert.Equal(preIndex.Length, marker.Value.GetInt32("Backfilled"));
        foreach (var (tenant, id) in preIndex)
        {
            Assert.Equal(tenant, (await store.Table.GetEntityAsync<TableEntity>(TableStudyStore.TenantIndexPartition, id, cancellationToken: None)).Value.GetString("Tenant"));
        }

        var (again, againRequests) = RecordingStore(store.Table.Name);
        Assert.Equal(0, await new StudyIdIndexCompletion(again, TimeProvider.System, NullLogger<StudyIdIndexCompletion>.Instance).RunAsync(TimeSpan.Zero, None));
        Assert.Equal(3, againRequests.Count); // the markers' point reads

        // From then on: an unknown id is one point read (the index row; the marker is remembered), never a scan.
        for (var i = 0; i < 3; i++)
        {
            requests.Clear();
            Assert.Null(await StudyRecordLookup.FindInAnyTenantAsync(store, NewId(), None));
            Assert.DoesNotContain(requests, IsQuery);
            Assert.Single(requests);
        }

        // Another process (a new store on the same table) reads the marker once: two point reads, no scan.
        var (other, otherRequests) = RecordingStore(store.Table.Name);
        Assert.Null(await StudyRecordLookup.FindInAnyTenantAsync(other, NewId(), None));
        Assert.DoesNotContain(otherRequests, IsQuery);
        Assert.Equal(2, otherRequests.Count);

        // The interrupted create is not found, and without a scan; every study is found by point reads.
        otherRequests.Clear();
        Assert.Null(await StudyRecordLookup.FindInAnyTenantAsync(other, interrupted, None));
        foreach (var (tenant, id) in preIndex.Append(("pc", created)))
        {
            Assert.Equal((tenant, id), ((await StudyRecordLookup.FindInAnyTenantAsync(other, id, None))?.Tenant, id));
        }

        Assert.DoesNotContain(otherRequests, IsQuery);
    }

    [Fact]
    public async Task ListTenants_ReadsOneRowPerTenant_AndStepsOverTheIndexPartition()
    {
        var (store, requests) = RecordingStore();
        var tenants = new[] { "a-1", "b", "default", "z9" };
        foreach (var tenant in tenants)
        {
            for (var i = 0; i < 30; i++)
            {
                Assert.True(await store.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = NewId(), CreatedAt = DateTimeOffset.UtcNow }, None));
            }
        }

        // A row under a key no valid tenant has, above the index partition: listed as the table has it.
        await store.Table.AddEntityAsync(TableStudyStore.ToEntity(new StudyRecord { Tenant = "~zz", StudyId = NewId(), CreatedAt = DateTimeOffset.UtcNow }), None);

        requests.Clear();
        var listed = await ((IStudyStore)store).ListTenantsAsync(None).ToListAsync();
        Assert.Equal([.. tenants, "~zz"], listed);
        Assert.All(requests, r => Assert.True(IsOneRowQuery(r), $"not a one-row query: {r.Query}"));
        Assert.Equal(listed.Count + 3, requests.Count); // one per tenant, and one per key range (three) that finds no more

        // The usage close and the all-tenant usage view list the tenants so (they read every study row before).
        requests.Clear();
        var usageTenants = await new CovidFunctions.Pipeline.Metering.UsageQueries(new CovidFunctions.Pipeline.Storage.InMemoryUsageStore(), store).TenantsAsync("2026-10", None);
        Assert.Equal(tenants, usageTenants);
        Assert.All(requests, r => Assert.True(IsOneRowQuery(r), $"not a one-row query: {r.Query}"));
    }

    [Fact]
    public async Task StudiesCreatedWhileTheBackfillScans_AreFoundOnceTheIndexIsComplete()
    {
        var (store, requests) = RecordingStore();
        var preIndex = Enumerable.Range(0, 150).Select(i => ($"pre{i % 3}", NewId())).ToList(); // two transactions
        foreach (var (tenant, id) in preIndex)
        {
            await store.Table.AddEntityAsync(TableStudyStore.ToEntity(new StudyRecord { Tenant = tenant, StudyId = id, CreatedAt = DateTimeOffset.UtcNow }), None);
        }

        // Once the backfill has read the study rows, two studies are created by another writer (through the store's
        // create and its update-or-create), and another backfill writes one of the missing index rows first, so the
        // transaction holding it fails (409) and is written row by row.
        var (writer, _) = RecordingStore(store.Table.Name);
        var createdDuring = NewId();
        var upsertedDuring = NewId();
        var recorder = RecorderOf(store);
        recorder.AfterScan = () =>
        {
            Assert.True(writer.TryCreateAsync(new StudyRecord { Tenant = "during", StudyId = createdDuring, CreatedAt = DateTimeOffset.UtcNow }, None).GetAwaiter().GetResult());
            writer.UpdateAsync("during", upsertedDuring, r => r ?? new StudyRecord { Tenant = "during", StudyId = upsertedDuring, CreatedAt = DateTimeOffset.UtcNow }, None).GetAwaiter().GetResult();
            writer.Table.AddEntity(new TableEntity(TableStudyStore.TenantIndexPartition, preIndex[120].Item2) { ["Tenant"] = preIndex[120].Item1 });
        };

        Assert.Equal(preIndex.Count, await store.CompleteTenantIndexAsync(None));
        Assert.True(recorder.ScanSeen);
        Assert.True(await store.IsTenantIndexCompleteAsync(None));

        requests.Clear();
        foreach (var (tenant, id) in preIndex.Append(("during", createdDuring)).Append(("during", upsertedDuring)))
        {
            Assert.Equal(tenant, (await StudyRecordLookup.FindInAnyTenantAsync(store, id, None))?.Tenant);
        }

        Assert.DoesNotContain(requests, IsQuery);
        Assert.Equal(2 * (preIndex.Count + 2), requests.Count);
    }

    private static string NewId() => "s" + Guid.NewGuid().ToString("N")[..24];

    /// <summary>A query of a table (a scan or a filtered list), as opposed to a point read of one row.</summary>
    private static bool IsQuery((RequestMethod Method, string Path, string Query) request) =>
        request.Method == RequestMethod.Get && request.Path.EndsWith("()", StringComparison.Ordinal);

    /// <summary>A query that asks for one row after a partition key (<c>$top=1</c>, <c>PartitionKey gt</c> or <c>lt</c>): the tenant listing's step.</summary>
    private static bool IsOneRowQuery((RequestMethod Method, string Path, string Query) request) =>
        IsQuery(request) && request.Query.Contains("$top=1", StringComparison.Ordinal)
        && (request.Query.Contains("PartitionKey gt ", StringComparison.Ordinal) || request.Query.Contains("PartitionKey lt ", StringComparison.Ordinal));

    private static readonly ConditionalWeakTable<TableStudyStore, RecordRequestsPolicy> Recorders = new();

    private static RecordRequestsPolicy RecorderOf(TableStudyStore store) => Recorders.TryGetValue(store, out var recorder) ? recorder : throw new InvalidOperationException("not a recording store");

    /// <summary>A store on a Studies table of its own (a new one, or <paramref name="tableName"/>), recording every request.</summary>
    private (TableStudyStore Store, ConcurrentQueue<(RequestMethod Method, string Path, string Query)> Requests) RecordingStore(string? tableName = null)
    {
        var recorder = new RecordRequestsPolicy();
        var options = new TableClientOptions();
        options.AddPolicy(recorder, HttpPipelinePosition.PerCall);
        var table = new TableClient(azurite.Server.ConnectionString, tableName ?? "Studies" + Guid.NewGuid().ToString("N")[..16], options);
        if (tableName is null)
        {
            table.CreateIfNotExists();
        }

        var store = new TableStudyStore(table);
        Recorders.Add(store, recorder);
        recorder.Requests.Clear();
        return (store, recorder.Requests);
    }

    /// <summary>Records the method and path of every request the client sends; runs <see cref="AfterScan"/> once after the first scan of study rows.</summary>
    private sealed class RecordRequestsPolicy : HttpPipelineSynchronousPolicy
    {
        public ConcurrentQueue<(RequestMethod Method, string Path, string Query)> Requests { get; } = new();

        public Action? AfterScan { get; set; }

        public bool ScanSeen { get; private set; }

        public override void OnSendingRequest(HttpMessage message) =>
            Requests.Enqueue((message.Request.Method, Uri.UnescapeDataString(message.Request.Uri.Path), Uri.UnescapeDataString(message.Request.Uri.Query)));

        public override void OnReceivedResponse(HttpMessage message)
        {
            // The backfill's read of the study rows: a query of a tenant's partition (not an index's, not a one-row step).
            var query = Uri.UnescapeDataString(message.Request.Uri.Query);
            if (!ScanSeen && query.Contains("PartitionKey eq '", StringComparison.Ordinal) && !query.Contains("PartitionKey eq '~", StringComparison.Ordinal) && !query.Contains("$top=1", StringComparison.Ordinal))
            {
                ScanSeen = true;
                AfterScan?.Invoke();
            }
        }
    }
}
