using CovidFunctions.Cli.Commands;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn status</c> on a rejected study whose row was written before fce3ddb, on a real Azurite: such a row has no
/// CompletedAt property at all (ingest now keeps the rejection's time there), so the study view showed no "rejected" time
/// and the list's "took" was "-". The reject wrote its quarantine reason.json, with the rejection's time, just before the
/// row: status now takes the time from there and says so. A row whose quarantine is gone (the lifecycle rule) is still
/// shown without a time, as before.
/// </summary>
public sealed class StatusOldRejectedRowTests : IAsyncLifetime
{
    private static readonly DateTimeOffset RejectedAt = StatusRowsWithoutTimeTests.Created.AddSeconds(7);
    private TempDirectory? _data;
    private AzuriteServer? _server;
    private PipelineStorage? _storage;

    public async Task InitializeAsync()
    {
        _data = TestData.CreateTempDirectory();
        _server = await AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = _data.Path, Ports = AzuriteServer.FreePorts() }, null, CancellationToken.None);
        _storage = PipelineStorage.FromConnectionString(_server.ConnectionString);
        await _storage.EnsureCreatedAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _data?.Dispose();
    }

    [Fact]
    public async Task An_old_rejected_row_without_CompletedAt_shows_when_it_was_rejected_from_its_reason_json()
    {
        var old = StatusRowsWithoutTimeTests.Rejected("s00000000000000000000old1");
        await WriteOldRejectAsync(old, withReason: true);

        var rows = StatusRowsWithoutTimeTests.Cells(await StatusAsync(old.StudyId));

        var rejected = Assert.Single(rows, r => r.Field == "rejected");
        Assert.Equal("2026-11-28 14:00:07 UTC (from its quarantine reason.json; the row, written before rows kept it, has no time)", rejected.Value);
        var listed = await StatusAsync(null);
        Assert.Contains("7.0 s", listed.Split('\n').Single(l => l.Contains(old.StudyId, StringComparison.Ordinal)), StringComparison.Ordinal); // "took"
    }

    [Fact]
    public async Task An_old_rejected_row_whose_quarantine_is_gone_is_shown_without_a_time()
    {
        var old = StatusRowsWithoutTimeTests.Rejected("s00000000000000000000old2");
        await WriteOldRejectAsync(old, withReason: false);

        var rows = StatusRowsWithoutTimeTests.Cells(await StatusAsync(old.StudyId));

        Assert.DoesNotContain(rows, r => r.Field == "rejected");
        Assert.DoesNotContain(rows, r => r.Value == "-");
    }

    /// <summary>
    /// The row as the table held it before fce3ddb (the store writes no property for a null value, so the entity has no
    /// CompletedAt, checked), and the reject's reason.json as ingest writes it.
    /// </summary>
    private async Task WriteOldRejectAsync(StudyRecord row, bool withReason)
    {
        Assert.Null(row.CompletedAt);
        Assert.True(await _storage!.Studies.TryCreateAsync(row, CancellationToken.None));
        var entity = await _storage.Tables.GetTableClient(PipelineNames.StudiesTable).GetEntityAsync<Azure.Data.Tables.TableEntity>(row.Tenant, row.StudyId);
        Assert.False(entity.Value.ContainsKey(nameof(StudyRecord.CompletedAt)));
        if (withReason)
        {
            // What UploadArchive.WriteReasonAsync (internal to Pipeline) writes: the reason serialized with PipelineJson.Options.
            var reason = new QuarantineReason(row.Tenant, row.StudyId, $"{row.Tenant}/scan.zip", "unreadable", "scan.zip: not readable as DICOM", RejectedAt);
            using var json = new MemoryStream(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(reason, PipelineJson.Options));
            await _storage.BlobContainers.Get(PipelineNames.QuarantineContainer).WriteAsync($"{row.Tenant}/{row.StudyId}/reason.json", json, CancellationToken.None);
        }
    }

    private async Task<string> StatusAsync(string? studyId)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await StatusCommand.RunAsync(studyId, null, json: false, _server!.ConnectionString, dataDir: null, output, error, CancellationToken.None);
        Assert.True(exit == ExitCodes.Success, error.ToString());
        return output.ToString();
    }
}
