using System.CommandLine;
using System.Text.Json;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Metering;
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
        Assert.Equal("lab-a 2026-11: 1 study, 300 slices screened, CPU 12 s, GPU 45 s, 4000000 bytes stored; 1 not screened (failed or running, not billed); open (may still change until the month is closed)", stdout.Trim());
    }

    [Fact]
    public async Task UsageClose_MakesAPastMonthFinal_RefusesOthersWithExit2_AndLateUsageGoesToTheNextOpenMonth()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var storage = PipelineStorage.FromConnectionString(azurite.ConnectionString);
        await storage.EnsureCreatedAsync(CancellationToken.None);
        var inMarch = new DateTimeOffset(2025, 3, 31, 23, 0, 0, TimeSpan.Zero);
        await storage.Usage.TryRecordAsync(new UsageRecord("lab-a", "s1", "ingest", inMarch, 300, 12, 0, 4_000_000), CancellationToken.None);
        await storage.Usage.TryRecordAsync(new UsageRecord("lab-a", "s1", "scoring", inMarch, 300, 0, 45, 0), CancellationToken.None);
        await storage.Usage.TryRecordAsync(new UsageRecord("lab-a", "s2", "ingest", inMarch, 120, 5, 0, 1_000_000), CancellationToken.None);
        await storage.Usage.TryRecordAsync(new UsageRecord("lab-b", "s3", "ingest", inMarch, 64, 2, 0, 500_000), CancellationToken.None);
        await storage.Usage.TryRecordAsync(new UsageRecord("lab-b", "s3", "scoring", inMarch, 64, 30, 0, 0), CancellationToken.None);
        var current = DateTimeOffset.UtcNow.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture);

        // No --month at all is a parse error now (a required option), exit 2 through Program: UsageCloseMonthRequiredTests.
        foreach (var (args, reason) in new[]
        {
            (new[] { "--month", current }, $"usage close: month {current} is not over yet"),
            (new[] { "--month", "2999-01" }, "usage close: month 2999-01 is not over yet"),
            (new[] { "--month", "2025-3" }, "usage close: month '2025-3' is not yyyy-MM"),
            (new[] { "--month", "2025-03", "--tenant", "Lab_A" }, "usage close: tenant 'Lab_A' is not valid"),
        })
        {
            var (refusedRc, _, refusedErr) = await UsageAsync(["close", "--storage", azurite.ConnectionString, .. args]);
            Assert.Equal(2, refusedRc);
            Assert.StartsWith(reason, refusedErr, StringComparison.Ordinal);
        }

        var (_, open, _) = await UsageAsync("--storage", azurite.ConnectionString, "--month", "2025-03", "--tenant", "lab-a", "--json");
        var (rc, stdout, stderr) = await UsageAsync("close", "--storage", azurite.ConnectionString, "--month", "2025-03", "--tenant", "lab-a", "--json");
        Assert.True(rc == 0, stderr);
        using (var closed = JsonDocument.Parse(stdout))
        using (var before = JsonDocument.Parse(open))
        {
            Assert.False(before.RootElement.GetProperty("closed").GetBoolean());
            Assert.True(closed.RootElement.GetProperty("closed").GetBoolean());
            Assert.True(closed.RootElement.TryGetProperty("closedAt", out _));
            foreach (var figure in new[] { "studies", "slicesScreened", "cpuSeconds", "gpuSeconds", "bytesStored", "records", "unscreenedStudies" })
            {
                Assert.Equal(before.RootElement.GetProperty(figure).GetRawText(), closed.RootElement.GetProperty(figure).GetRawText());
            }
        }

        // The study still running at the close completes: March's bill stays, April bills the study whole.
        Assert.True(await storage.Usage.TryRecordAsync(new UsageRecord("lab-a", "s2", "scoring", inMarch.AddDays(3), 120, 0, 20, 0), CancellationToken.None));
        (rc, stdout, stderr) = await UsageAsync("--storage", azurite.ConnectionString, "--month", "2025-03", "--tenant", "lab-a");
        Assert.True(rc == 0, stderr);
        Assert.Matches(@"^lab-a 2025-03: 1 study, 300 slices screened, CPU 12 s, GPU 45 s, 4000000 bytes stored; 1 not screened \(failed or running, not billed\); closed \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(final\)$", stdout.Trim());
        (rc, stdout, stderr) = await UsageAsync("--storage", azurite.ConnectionString, "--month", "2025-04", "--tenant", "lab-a");
        Assert.True(rc == 0, stderr);
        Assert.Equal("lab-a 2025-04: 1 study, 120 slices screened, CPU 5 s, GPU 20 s, 1000000 bytes stored; 2 records carried from a closed month; open (may still change until the month is closed)", stdout.Trim());

        // Closing every tenant: lab-a's snapshot is the one written before, lab-b's is new.
        (rc, stdout, stderr) = await UsageAsync("close", "--storage", azurite.ConnectionString, "--month", "2025-03");
        Assert.True(rc == 0, stderr);
        var lines = stdout.Trim().Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("lab-a 2025-03: 1 study, 300 slices screened", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("lab-b 2025-03: 1 study, 64 slices screened", lines[1], StringComparison.Ordinal);
        Assert.All(lines, l => Assert.EndsWith("UTC (final)", l, StringComparison.Ordinal));
    }

    [Fact]
    public void UsageLine_SaysOneStudySliceByteAndRecord_AndTheirPluralsOtherwise()
    {
        // Before: "1 studies, 1 slices screened, ..., 1 bytes stored; 1 records carried from a closed month".
        Assert.Equal(
            "lab-a 2026-11: 1 study, 1 slice screened, CPU 1.5 s, GPU 0 s, 1 byte stored; 1 not screened (failed or running, not billed); 1 record carried from a closed month; open (may still change until the month is closed)",
            UsageCommand.Line(new UsageTotals("lab-a", "2026-11", 1, 1, 1.5, 0, 1, 2, UnscreenedStudies: 1, LateRecords: 1)));
        Assert.Equal(
            "lab-a 2026-11: 0 studies, 0 slices screened, CPU 0 s, GPU 0 s, 0 bytes stored; open (may still change until the month is closed)",
            UsageCommand.Line(new UsageTotals("lab-a", "2026-11", 0, 0, 0, 0, 0, 0)));
        Assert.Equal(
            "lab-a 2026-11: 2 studies, 300 slices screened, CPU 12 s, GPU 45 s, 4000000 bytes stored; 3 records carried from a closed month; open (may still change until the month is closed)",
            UsageCommand.Line(new UsageTotals("lab-a", "2026-11", 2, 300, 12, 45, 4_000_000, 9, LateRecords: 3)));
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
