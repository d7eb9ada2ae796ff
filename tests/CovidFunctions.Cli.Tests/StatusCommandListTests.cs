using System.Text.Json;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn status</c> without an id on a real Azurite: the newest 50 studies (of a tenant, or of all), newest first,
/// read through the store's list (one page of the list index once it is complete, the scan before) rather than every
/// study. The same answer before and after the index is complete.
/// </summary>
public sealed class StatusCommandListTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 11, 1, 8, 0, 0, TimeSpan.Zero);
    private TempDirectory? _data;
    private AzuriteServer? _server;
    private PipelineStorage? _storage;

    public async Task InitializeAsync()
    {
        _data = TestData.CreateTempDirectory();
        _server = await AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = _data.Path, Ports = AzuriteServer.FreePorts() }, null, CancellationToken.None);
        _storage = PipelineStorage.FromConnectionString(_server.ConnectionString);
        await _storage.EnsureCreatedAsync(CancellationToken.None);

        // 60 studies in lab-a and 10 in lab-b, interleaved in time: minute i belongs to lab-b when i % 7 == 3.
        for (var i = 0; i < 70; i++)
        {
            var tenant = i % 7 == 3 ? "lab-b" : "lab-a";
            await _storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = $"s{i:D24}", CreatedAt = Start.AddMinutes(i) }, CancellationToken.None);
        }
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
    public async Task Status_WithoutAnId_ListsTheNewest50_NewestFirst_BeforeAndAfterTheListIndexIsComplete()
    {
        var expectedAll = Enumerable.Range(0, 70).Reverse().Take(50).Select(i => $"s{i:D24}").ToList();
        var expectedLabA = Enumerable.Range(0, 70).Where(i => i % 7 != 3).Reverse().Take(50).Select(i => $"s{i:D24}").ToList();
        var expectedLabB = Enumerable.Range(0, 70).Where(i => i % 7 == 3).Reverse().Select(i => $"s{i:D24}").ToList();

        foreach (var indexComplete in new[] { false, true })
        {
            if (indexComplete)
            {
                await ((IStudyListIndex)_storage!.Studies).CompleteListIndexAsync(CancellationToken.None);
            }

            Assert.Equal(expectedAll, await ListedAsync(null));
            Assert.Equal(expectedLabA, await ListedAsync("lab-a"));
            Assert.Equal(expectedLabB, await ListedAsync("lab-b"));
        }
    }

    private async Task<List<string>> ListedAsync(string? tenant)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await StatusCommand.RunAsync(null, tenant, json: true, _server!.ConnectionString, dataDir: null, output, error, CancellationToken.None);
        Assert.True(exit == ExitCodes.Success, error.ToString());
        using var json = JsonDocument.Parse(output.ToString());
        return [.. json.RootElement.EnumerateArray().Select(e => e.GetProperty("study").GetString()!)];
    }
}
