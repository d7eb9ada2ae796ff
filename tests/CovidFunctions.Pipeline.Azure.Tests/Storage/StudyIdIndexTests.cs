using System.Collections.Concurrent;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// Finding a study by its id alone (an all-tenant API key, <c>covidfn status ID</c> without <c>--tenant</c>) on a real
/// Azurite, with every request the store sends recorded. A study created through the store is found by point reads
/// (its <c>~tenant-of</c> index row, then its row), with no query of the table; before, every study outside the
/// default tenant was found by a scan of the whole Studies table. A row written before the index existed is still
/// found (by the scan, once), and its index row is written then, so the next lookup is point reads too.
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
    public async Task ARowWrittenBeforeTheIndex_IsFoundByTheScanOnce_ThenByPointReads()
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

    private static string NewId() => "s" + Guid.NewGuid().ToString("N")[..24];

    /// <summary>A query of the table (a scan or a filtered list), as opposed to a point read of one row.</summary>
    private static bool IsQuery((RequestMethod Method, string Path) request) =>
        request.Method == RequestMethod.Get && request.Path.EndsWith($"/{PipelineNames.StudiesTable}()", StringComparison.Ordinal);

    private (TableStudyStore Store, ConcurrentQueue<(RequestMethod Method, string Path)> Requests) RecordingStore()
    {
        var recorder = new RecordRequestsPolicy();
        var options = new TableClientOptions();
        options.AddPolicy(recorder, HttpPipelinePosition.PerCall);
        return (new TableStudyStore(new TableClient(azurite.Server.ConnectionString, PipelineNames.StudiesTable, options)), recorder.Requests);
    }

    /// <summary>Records the method and path of every request the client sends.</summary>
    private sealed class RecordRequestsPolicy : HttpPipelineSynchronousPolicy
    {
        public ConcurrentQueue<(RequestMethod Method, string Path)> Requests { get; } = new();

        public override void OnSendingRequest(HttpMessage message) =>
            Requests.Enqueue((message.Request.Method, Uri.UnescapeDataString(message.Request.Uri.Path)));
    }
}
