using System.CommandLine;
using System.Text.Json;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary><c>covidfn usage</c> against a real Azurite: what a tenant is billed for a month, month edges and failures included.</summary>
public sealed class UsageCommandTests
{
    [Fact]
    public async Task Usage_BillsAStudyOnceAcrossMidnight_LeavesOutFailedStudies_AndListsTenantsWithoutStudyRows()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var storage = PipelineStorage.FromConnectionString(azurite.ConnectionString);
        await storage.EnsureCreatedAsync(CancellationToken.None);
        var beforeMidnight = new DateTimeOffset(2026, 11, 30, 23, 59, 58, TimeSpan.Zero);
        var afterMidnight = new DateTimeOffset(2026, 12, 1, 0, 0, 4, TimeSpan.Zero);
        // lab-a: one study ingested before midnight UTC and scored after it; one that failed after ingest.
        // lab-b: a screened study, and no Studies rows at all.
        await storage.Usage.TryRecordAsync(new UsageRecord("lab-a", "s1", "ingest", beforeMidnight, 300, 12, 0, 4_000_000), CancellationToken.None);
        await storage.Usage.TryRecordAsync(new UsageRecord("lab-a", "s1", "scoring", afterMidnight, 300, 0, 45, 0), CancellationToken.None);
        await storage.Usage.TryRecordAsync(new UsageRecord("lab-a", "s2", "ingest", beforeMidnight, 120, 5, 0, 1_000_000), CancellationToken.None);
        await storage.Usage.TryRecordAsync(new UsageRecord("lab-b", "s3", "ingest", beforeMidnight, 64, 2, 0, 500_000), CancellationToken.None);
        await storage.Usage.TryRecordAsync(new UsageRecord("lab-b", "s3", "scoring", beforeMidnight, 64, 30, 0, 0), CancellationToken.None);

        var (rc, stdout, stderr) = await UsageAsync("--storage", azurite.ConnectionString, "--month", "2026-11", "--json");
        Assert.True(rc == 0, stderr);
        using (var json = JsonDocument.Parse(stdout))
        {
            var tenants = json.RootElement.EnumerateArray().ToDictionary(t => t.GetProperty("tenant").GetString()!);
            Assert.Equal(["lab-a", "lab-b"], tenants.Keys.Order(StringComparer.Ordinal));
            var a = tenants["lab-a"];
            Assert.Equal((1, 300L, 12.0, 45.0, 4_000_000L, 1), (
                a.GetProperty("studies").GetInt32(), a.GetProperty("slicesScreened").GetInt64(), a.GetProperty("cpuSeconds").GetDouble(),
                a.GetProperty("gpuSeconds").GetDouble(), a.GetProperty("bytesStored").GetInt64(), a.GetProperty("unscreenedStudies").GetInt32()));
            Assert.Equal(64, tenants["lab-b"].GetProperty("slicesScreened").GetInt64());
        }

        (rc, stdout, stderr) = await UsageAsync("--storage", azurite.ConnectionString, "--month", "2026-12", "--tenant", "lab-a", "--json");
        Assert.True(rc == 0, stderr);
        using (var december = JsonDocument.Parse(stdout))
        {
            Assert.Equal(0, december.RootElement.GetProperty("studies").GetInt32());
            Assert.Equal(0, december.RootElement.GetProperty("slicesScreened").GetInt64());
        }

        (rc, stdout, stderr) = await UsageAsync("--storage", azurite.ConnectionString, "--month", "2026-11", "--tenant", "lab-a");
        Assert.True(rc == 0, stderr);
        Assert.Equal("lab-a 2026-11: 1 studies, 300 slices screened, CPU 12 s, GPU 45 s, 4000000 bytes stored; 1 not screened (failed or running, not billed)", stdout.Trim());
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> UsageAsync(params string[] args)
    {
        var root = new RootCommand { UsageCommand.Create() };
        using var output = new StringWriter();
        using var error = new StringWriter();
        var rc = await root.Parse(["usage", .. args]).InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, CancellationToken.None);
        return (rc, output.ToString(), error.ToString());
    }
}
