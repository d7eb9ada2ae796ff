using CovidFunctions.Cli.Commands;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn up --demo</c> writes its synthetic phantom (DICOM with planted fake PHI) to <c>{data-dir}/demo/phantom-…/</c>
/// and submits it; that folder stayed for good, one more per run (64 slices of 512², 33 MB each), fake PHI that a PHI
/// review of the data folder has to tell from real. Once submitted, the upload in <c>ct-uploads</c> is the study's
/// original (kept until its results are stored, quarantined if it fails, as any upload), so the local folder is deleted
/// then; a folder that was not submitted is kept. On a real Azurite.
/// </summary>
public sealed class DemoPhantomCleanupTests : IAsyncLifetime
{
    private TempDirectory? _data;
    private AzuriteServer? _server;
    private PipelineStorage? _storage;

    public async Task InitializeAsync()
    {
        _data = TestData.CreateTempDirectory();
        _server = await AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = Path.Combine(_data.Path, "azurite"), Ports = AzuriteServer.FreePorts() }, null, CancellationToken.None);
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
    public async Task The_demo_phantom_is_deleted_from_the_data_folder_once_it_is_in_ct_uploads()
    {
        var dataDir = Path.Combine(_data!.Path, "covidfn");
        using var output = new StringWriter();

        var id = await UpCommand.SubmitDemoAsync(_storage!.BlobContainers, _storage.Studies, StudyIdKey.From(DeidKey.Generate()), dataDir, 8, CliConsole.For(output), CancellationToken.None);

        var uploaded = await _storage.BlobContainers.Get(PipelineNames.UploadsContainer).ListAsync(PipelineNames.DefaultTenant + "/", CancellationToken.None).ToListAsync();
        Assert.Equal(9, uploaded.Count); // 8 slices and the .complete marker
        Assert.Equal(StudyStatus.Queued, (await _storage.Studies.GetAsync(PipelineNames.DefaultTenant, id, CancellationToken.None))!.Status);
        Assert.False(Directory.Exists(Path.Combine(dataDir, "demo")), string.Join(", ", Directory.Exists(Path.Combine(dataDir, "demo")) ? Directory.GetFileSystemEntries(Path.Combine(dataDir, "demo"), "*", SearchOption.AllDirectories) : []));
        Assert.Contains("local copy deleted", output.ToString(), StringComparison.Ordinal);
    }
}
