using System.Text.Json.Nodes;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Testing;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The minute sweep ingests the units it finds one after another in one invocation, on Azurite: it starts a unit only
/// while the time spent plus one attempt's <see cref="PipelineOptions.IngestTimeLimit"/> stays inside the invocation's
/// budget (host.json's functionTimeout); the rest wait for the next sweep.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class SweepBudgetTests(AzuriteFixture azurite)
{
    [Fact]
    public void The_sweeps_invocation_budget_is_host_jsons_function_timeout()
    {
        var host = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "src", "CovidFunctions.FunctionApp", "host.json")))!;
        Assert.Equal(IngestFunctions.InvocationBudget, TimeSpan.Parse((string)host["functionTimeout"]!, System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(new PipelineOptions().IngestTimeLimit < IngestFunctions.InvocationBudget, "an attempt at its limit must end (and record itself) inside the invocation");
    }

    [Fact]
    public async Task A_unit_whose_attempt_could_run_past_the_invocation_is_left_for_the_next_sweep()
    {
        await using var durable = await DurableTaskTestHost.StartAsync(_ => { });
        var tenant = $"budget-{Guid.NewGuid():N}"[..20];
        var key = DeidKey.Generate();
        var studyIdKey = StudyIdKey.From(key);
        var uploads = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.UploadsContainer);
        await IngestFunctionsBuilder.UploadClosedJunkFoldersAsync(uploads, tenant, "a-first", "b-second");

        // The first folder's ingest takes 11 minutes (the clock moves on at its first Studies write): with the default
        // 50-min limit, another attempt started then could end at 61 min, past the 60-min invocation.
        var first = StudyIds.ForUpload(studyIdKey, tenant, $"{tenant}/a-first/");
        var second = StudyIds.ForUpload(studyIdKey, tenant, $"{tenant}/b-second/");
        var clock = new MovableClock();
        var studies = new ClockMovesAtFirstWrite(azurite.Storage.Studies, first, clock, TimeSpan.FromMinutes(11));
        var functions = IngestFunctionsBuilder.Create(azurite, key, studies: studies, onlyTenant: tenant, clock: clock);

        await functions.SweepFolderUploads(new TimerInfo(), durable.Client, CancellationToken.None);

        // Before, the sweep went on to the second folder whatever the time: two large folders closed in the same minute
        // added up past functionTimeout, and the host's cut was not counted.
        Assert.Equal(StudyStatus.Rejected, (await azurite.Storage.Studies.GetAsync(tenant, first, CancellationToken.None))?.Status);
        Assert.Null(await azurite.Storage.Studies.GetAsync(tenant, second, CancellationToken.None));
        Assert.True(await uploads.GetBlobClient($"{tenant}/b-second/notes.txt").ExistsAsync());

        // The next minute's sweep, with its own budget, ingests it.
        await functions.SweepFolderUploads(new TimerInfo(), durable.Client, CancellationToken.None);
        Assert.Equal(StudyStatus.Rejected, (await azurite.Storage.Studies.GetAsync(tenant, second, CancellationToken.None))?.Status);
        Assert.False(await uploads.GetBlobClient($"{tenant}/b-second/notes.txt").ExistsAsync());
    }

    [Fact]
    public async Task Units_whose_attempts_fit_the_budget_are_all_swept_in_one_invocation()
    {
        await using var durable = await DurableTaskTestHost.StartAsync(_ => { });
        var tenant = $"budget-{Guid.NewGuid():N}"[..20];
        var key = DeidKey.Generate();
        var studyIdKey = StudyIdKey.From(key);
        var uploads = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.UploadsContainer);
        await IngestFunctionsBuilder.UploadClosedJunkFoldersAsync(uploads, tenant, "a-first", "b-second");

        // 9 minutes spent + 50 min limit: still inside the 60-min invocation.
        var first = StudyIds.ForUpload(studyIdKey, tenant, $"{tenant}/a-first/");
        var second = StudyIds.ForUpload(studyIdKey, tenant, $"{tenant}/b-second/");
        var clock = new MovableClock();
        var studies = new ClockMovesAtFirstWrite(azurite.Storage.Studies, first, clock, TimeSpan.FromMinutes(9));
        var functions = IngestFunctionsBuilder.Create(azurite, key, studies: studies, onlyTenant: tenant, clock: clock);

        await functions.SweepFolderUploads(new TimerInfo(), durable.Client, CancellationToken.None);

        Assert.Equal(StudyStatus.Rejected, (await azurite.Storage.Studies.GetAsync(tenant, first, CancellationToken.None))?.Status);
        Assert.Equal(StudyStatus.Rejected, (await azurite.Storage.Studies.GetAsync(tenant, second, CancellationToken.None))?.Status);
    }

    /// <summary>The system clock, moved ahead by the test.</summary>
    private sealed class MovableClock : TimeProvider
    {
        private long _aheadTicks;

        public void MoveOn(TimeSpan by) => Interlocked.Add(ref _aheadTicks, by.Ticks);

        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + TimeSpan.FromTicks(Interlocked.Read(ref _aheadTicks));
    }

    /// <summary>Azurite's Studies table; the clock moves on once, at the first write of one study (its ingest takes that long).</summary>
    private sealed class ClockMovesAtFirstWrite(IStudyStore inner, string studyId, MovableClock clock, TimeSpan by) : IStudyStore
    {
        private int _moved;

        public Task<StudyRecord?> GetAsync(string tenant, string id, CancellationToken cancellationToken) => inner.GetAsync(tenant, id, cancellationToken);

        public Task<bool> TryCreateAsync(StudyRecord record, CancellationToken cancellationToken)
        {
            MoveFor(record.StudyId);
            return inner.TryCreateAsync(record, cancellationToken);
        }

        public Task<StudyRecord> UpdateAsync(string tenant, string id, Func<StudyRecord?, StudyRecord> update, CancellationToken cancellationToken)
        {
            MoveFor(id);
            return inner.UpdateAsync(tenant, id, update, cancellationToken);
        }

        public IAsyncEnumerable<StudyRecord> QueryAsync(string? tenant, string? status, DateTimeOffset? from, DateTimeOffset? to, CancellationToken cancellationToken) =>
            inner.QueryAsync(tenant, status, from, to, cancellationToken);

        private void MoveFor(string id)
        {
            if (id == studyId && Interlocked.Exchange(ref _moved, 1) == 0)
            {
                clock.MoveOn(by);
            }
        }
    }
}
