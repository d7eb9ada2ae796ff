using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>
/// An ingest attempt whose temporary folder cannot be made (the temp disk full, missing or read-only). The temp path
/// is the process's (<c>TMPDIR</c>), so these tests run alone, in a collection of their own.
/// </summary>
[Collection(IngestTempFolderCollection.Name)]
public sealed class IngestTempFolderTests : IDisposable
{
    private readonly IngestTestHost _host = new();

    public void Dispose() => _host.Dispose();

    [Fact]
    public async Task An_attempt_whose_temporary_folder_cannot_be_made_records_its_error_and_releases_its_claim()
    {
        var path = "lab-a/scan.zip";
        await _host.UploadAsync(path, IngestTestFiles.ZipFiles(IngestTestFiles.MidChestSlices(2)));
        var unit = Assert.Single(await _host.PlanAsync());

        var tmp = Environment.GetEnvironmentVariable("TMPDIR");
        Environment.SetEnvironmentVariable("TMPDIR", _host.Scratch("no-such-folder"));
        IOException thrown;
        try
        {
            thrown = await Assert.ThrowsAnyAsync<IOException>(() => _host.Handler.IngestAsync(unit, default));
        }
        finally
        {
            Environment.SetEnvironmentVariable("TMPDIR", tmp);
        }

        // Before, the folder was made after the attempt's claim and outside its try: the exception left the attempt with
        // nothing recorded, and the claim's renewal loop ran on for the life of the process, so every later delivery
        // answered 'another attempt holds it' until the watchdog failed the study hours later.
        var row = (await _host.Studies.GetAsync(unit.Tenant, unit.StudyId, default))!;
        Assert.Equal((StudyStatus.Processing, 1, null), (row.Status, row.IngestAttempts, row.IngestClaim));
        Assert.StartsWith(thrown.GetType().Name + ": ", row.IngestError, StringComparison.Ordinal);

        // The temp disk is back: the next delivery (a trigger retry, the sweep, the watcher) ingests at once.
        var outcome = await _host.Handler.IngestAsync(unit, default);
        Assert.Equal((IngestStatus.Ingested, 2), (outcome.Status, outcome.SliceCount));
    }
}

/// <summary>Tests that change the process's temp path: run with no other test at the same time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class IngestTempFolderCollection
{
    public const string Name = "Ingest temp folder (process-wide TMPDIR)";
}
