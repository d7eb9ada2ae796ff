using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Azure.Tests.Webhooks;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// What one run of the hourly usage sweep (<see cref="UsageAutoClose"/>) costs on real Azurite tables: every table
/// request it sends, by kind, and the rows they return. Its own Azurite (the shared one holds other tests' tenants,
/// which the sweep lists too). Three months of studies (January closed, February the previous month, March the current
/// one) across four tenants: mostly screened, some failed after ingest, some rejected, a few still running or completed
/// with their scoring write lost. By default 300 studies; <c>COVIDFN_MEASURE_USAGE_SWEEP=2000</c> seeds that many and
/// prints the table docs/benchmarks.md ("Hourly usage sweep") quotes.
/// </summary>
public sealed class UsageSweepCostTests(ITestOutputHelper output)
{
    private const int Tenants = 4;
    private static readonly string[] Months = ["2032-01", "2032-02", "2032-03"];
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task One_sweep_reads_each_unscreened_study_once_and_the_tenants_once()
    {
        var total = int.TryParse(Environment.GetEnvironmentVariable("COVIDFN_MEASURE_USAGE_SWEEP"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 300;
        using var data = TestData.CreateTempDirectory();
        await using var azurite = await AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = data.Path, Ports = AzuriteServer.FreePorts() }, null, None);
        var seeding = PipelineStorage.FromConnectionString(azurite.ConnectionString);
        await seeding.EnsureCreatedAsync(None);

        var seedWatch = Stopwatch.StartNew();
        var seeded = await SeedAsync(seeding, total);
        output.WriteLine($"seeded {total} studies ({Tenants} tenants x {Months.Length} months) in {seedWatch.Elapsed.TotalSeconds:0.0} s: {seeded.Screened} screened, {seeded.Failed} failed, {seeded.Rejected} rejected, {seeded.Running} running, {seeded.Unbilled} completed without their scoring record");

        var counter = new TableRequestCounter();
        var options = new TableClientOptions();
        options.AddPolicy(counter, HttpPipelinePosition.PerRetry);
        var tables = new TableServiceClient(azurite.ConnectionString, options);
        var usage = new TableUsageStore(tables.GetTableClient(PipelineNames.UsageTable));
        var studies = new TableStudyStore(tables.GetTableClient(PipelineNames.StudiesTable));
        var clock = new ManualClock(default);
        var sweep = new UsageAutoClose(usage, studies, new MeteringOptions { CloseAfterDays = 3, CloseMaxWaitDays = 10 }, clock, NullLogger<UsageAutoClose>.Instance);

        output.WriteLine("| run | at (UTC) | requests | Studies point reads | Studies queries | Usage point reads | Usage queries | writes | rows read | recorded | closed | s |");
        output.WriteLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        var runs = new (string Name, DateTimeOffset At)[]
        {
            ("not due, records February's and March's unbilled", new DateTimeOffset(2032, 3, 2, 1, 30, 0, TimeSpan.Zero)),
            ("not due, nothing left to record", new DateTimeOffset(2032, 3, 2, 2, 30, 0, TimeSpan.Zero)),
            ("due: February closes", new DateTimeOffset(2032, 3, 4, 0, 30, 0, TimeSpan.Zero)),
            ("February closed (rest of March)", new DateTimeOffset(2032, 3, 20, 0, 30, 0, TimeSpan.Zero)),
        };
        var costs = new List<TableRequestCounter.Counts>();
        foreach (var (name, at) in runs)
        {
            clock.Now = at;
            counter.Reset();
            var watch = Stopwatch.StartNew();
            var outcome = await sweep.RunAsync(None);
            var cost = counter.Snapshot();
            costs.Add(cost);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {at:yyyy-MM-dd HH:mm} | {cost.Requests} | {cost.StudiesPointReads} | {cost.StudiesQueries} | {cost.UsagePointReads} | {cost.UsageQueries} | {cost.Writes} | {cost.RowsRead} | {outcome.Recorded.Count} | {outcome.Closed.Count} | {watch.Elapsed.TotalSeconds:0.00} |"));
            if (at.Day == 4)
            {
                Assert.Equal(Tenants, outcome.Closed.Count);
            }
        }

        // The first run records the unbilled completed studies of February and March, once.
        var billed = 0;
        for (var t = 0; t < Tenants; t++)
        {
            foreach (var month in Months[1..])
            {
                billed += (await new UsageQueries(usage, studies).MonthlyTotalsAsync(TenantOf(t), month, None)).Studies;
            }
        }

        Assert.Equal(seeded.ScreenedAfterSweep, billed);

        // The first run reads each study it must look at (records, no scoring record: failed, running or unbilled, in
        // February and March) once, not once per step, and writes the months' open-study index from their records.
        Assert.Equal(seeded.UnscreenedFebruary + seeded.UnscreenedMarch + seeded.Unbilled, costs[0].StudiesPointReads);

        // Later runs read the index: only the studies still running (the failed ones were dropped from it), and not
        // the months' records. Before, every run read every record of both months (about two rows per study) and
        // point-read every failed study again; the due run read February's twice (billing, then the close's count).
        Assert.Equal(seeded.Running, costs[1].StudiesPointReads);

        // The run that closes February also reads its records once before the close, and settles the studies the
        // index no longer lists (February's failed ones, read once more) so the close does not rest on the index alone.
        Assert.Equal(seeded.Running + seeded.UnscreenedFebruary, costs[2].StudiesPointReads);
        Assert.Equal(seeded.Running, costs[3].StudiesPointReads);
        // Rows: a few per tenant-month (tenant lists, index marker) and two per running study (its index row and its
        // Studies row), whatever the number of studies screened or failed.
        Assert.True(costs[1].RowsRead <= 3 * Tenants * Months.Length + 2 * seeded.Running, $"a run after the index exists read {costs[1].RowsRead} rows");

        // No run spends a delete on an index row already gone: a study the sweep bills loses its row when its scoring
        // record is filed, and the sweep does not drop it again (before, one delete answered 404 per study it billed).
        Assert.All(costs, c => Assert.Equal(0, c.DeletesOfNothing));

        // The tenants of the Studies table are listed once per run (one $top=1 query per tenant and per index gap),
        // not once per month.
        Assert.Equal(Tenants + 3, costs[1].StudiesQueries);

        // The index names exactly the March studies still running: a new study's ingest adds it, its scoring removes it.
        var usageOnly = new TableUsageStore(seeding.Tables.GetTableClient(PipelineNames.UsageTable));
        Assert.Equal(seeded.Running, (await Task.WhenAll(Enumerable.Range(0, Tenants).Select(t => usageOnly.GetOpenStudiesAsync(TenantOf(t), "2032-03", None)))).Sum(o => o.Count));
        var fresh = new UsageRecord(TenantOf(0), "s-new", "ingest", new DateTimeOffset(2032, 3, 20, 9, 0, 0, TimeSpan.Zero), 10, 1, 0, 100);
        Assert.True(await usageOnly.TryRecordAsync(fresh, None));
        Assert.Contains(await usageOnly.GetOpenStudiesAsync(TenantOf(0), "2032-03", None), o => o.StudyId == "s-new");
        Assert.True(await usageOnly.TryRecordAsync(fresh with { Stage = StudyOrchestration.UsageStage, Slices = 10, CpuSeconds = 0, GpuSeconds = 2, BytesStored = 0 }, None));
        Assert.DoesNotContain(await usageOnly.GetOpenStudiesAsync(TenantOf(0), "2032-03", None), o => o.StudyId == "s-new");

        // A late retry of its ingest record (refused: already filed) leaves a stale row behind; the read finds the
        // scoring record, drops the row and does not list it.
        Assert.False(await usageOnly.TryRecordAsync(fresh, None));
        Assert.DoesNotContain(await usageOnly.GetOpenStudiesAsync(TenantOf(0), "2032-03", None), o => o.StudyId == "s-new");
    }

    private sealed record Seeded(int Screened, int Failed, int Rejected, int Running, int Unbilled, int UnscreenedFebruary, int UnscreenedMarch, int ScreenedAfterSweep);

    private static string TenantOf(int t) => $"bench-{t}";

    /// <summary>
    /// The studies, spread evenly over tenants and months. Of every 25 of a tenant's month: 21 screened (ingest and
    /// scoring records), 2 failed after ingest (ingest only), 1 rejected (no record), and 1 completed with its scoring
    /// write lost (the row carries it) in February, screened in January, in March every other one still running.
    /// January is then closed.
    /// </summary>
    private static async Task<Seeded> SeedAsync(PipelineStorage storage, int total)
    {
        var screened = 0; var failed = 0; var rejected = 0; var running = 0; var unbilled = 0; var unscreenedFeb = 0; var unscreenedMar = 0; var screenedAfter = 0;
        var work = new List<(string Tenant, string StudyId, string Month, int Kind)>();
        for (var i = 0; i < total; i++)
        {
            var tenant = TenantOf(i % Tenants);
            var monthIndex = i / Tenants % Months.Length;
            var month = Months[monthIndex];
            var j = i / (Tenants * Months.Length);
            var kind = (j % 25) switch
            {
                < 21 => 0,
                < 23 => 1,
                23 => 2,
                _ => monthIndex switch { 0 => 0, 1 => 4, _ => j / 25 % 2 == 0 ? 3 : 4 },
            };
            switch (kind)
            {
                case 0: screened++; if (monthIndex > 0) { screenedAfter++; } break;
                case 1: failed++; break;
                case 2: rejected++; break;
                case 3: running++; break;
                default: unbilled++; screenedAfter++; break;
            }

            if (kind is 1 or 3 && monthIndex == 1) { unscreenedFeb++; }
            if (kind is 1 or 3 && monthIndex == 2) { unscreenedMar++; }
            work.Add((tenant, $"s{i:D5}", month, kind));
        }

        await Parallel.ForEachAsync(work, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (w, token) =>
        {
            var start = DateTimeOffset.ParseExact(w.Month + "-05", "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal)
                .AddMinutes(int.Parse(w.StudyId[1..], CultureInfo.InvariantCulture) % 20_000);
            var scoring = RecordUsageActivity.ToRecord(new RecordUsageInput(w.Tenant, w.StudyId, start.AddMinutes(4).UtcDateTime, 300, 0, 12.5));
            var status = w.Kind switch { 0 or 4 => StudyStatus.Completed, 1 => StudyStatus.Failed, 2 => StudyStatus.Rejected, _ => StudyStatus.Processing };
            await storage.Studies.TryCreateAsync(new StudyRecord
            {
                Tenant = w.Tenant,
                StudyId = w.StudyId,
                Status = status,
                CreatedAt = start,
                SliceCount = 300,
                ScoringUsageJson = status == StudyStatus.Completed ? PipelineJson.Serialize(scoring) : null,
            }, token);
            if (w.Kind != 2)
            {
                await storage.Usage.TryRecordAsync(new UsageRecord(w.Tenant, w.StudyId, "ingest", start, 300, 6.5, 0, 90_000_000), token);
            }

            if (w.Kind == 0)
            {
                await storage.Usage.TryRecordAsync(scoring, token);
            }
        });

        var closing = new UsageClosing(storage.Usage, storage.Studies, new ManualClock(new DateTimeOffset(2032, 2, 10, 0, 0, 0, TimeSpan.Zero)));
        await closing.CloseAllAsync(Months[0], None);
        return new Seeded(screened, failed, rejected, running, unbilled, unscreenedFeb, unscreenedMar, screenedAfter);
    }

    /// <summary>Counts the table requests sent (each try) by kind, and the entities their answers hold.</summary>
    private sealed class TableRequestCounter : HttpPipelinePolicy
    {
        private readonly ConcurrentDictionary<string, int> _counts = new(StringComparer.Ordinal);

        /// <param name="DeletesOfNothing">Deletes answered 404: the row was gone already (a request spent on nothing).</param>
        public sealed record Counts(int Requests, int StudiesPointReads, int StudiesQueries, int UsagePointReads, int UsageQueries, int Writes, int RowsRead, int DeletesOfNothing);

        public void Reset() => _counts.Clear();

        public Counts Snapshot() => new(
            Get("requests"), Get("Studies point"), Get("Studies query"), Get("Usage point"), Get("Usage query"), Get("writes"), Get("rows"), Get("deletes of nothing"));

        public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            await ProcessNextAsync(message, pipeline).ConfigureAwait(false);
            Count(message);
        }

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            ProcessNext(message, pipeline);
            Count(message);
        }

        private int Get(string key) => _counts.GetValueOrDefault(key);

        private void Add(string key, int by = 1) => _counts.AddOrUpdate(key, by, (_, v) => v + by);

        private void Count(HttpMessage message)
        {
            Add("requests");
            var path = Uri.UnescapeDataString(message.Request.Uri.Path);
            var table = path.Contains("/" + PipelineNames.StudiesTable, StringComparison.Ordinal) ? "Studies" : "Usage";
            if (message.Request.Method != RequestMethod.Get)
            {
                Add("writes");
                if (message.Request.Method == RequestMethod.Delete && message.HasResponse && message.Response.Status == 404)
                {
                    Add("deletes of nothing");
                }

                return;
            }

            var point = path.Contains("(PartitionKey=", StringComparison.Ordinal);
            Add(table + (point ? " point" : " query"));
            if (!message.HasResponse || message.Response.Status != 200)
            {
                return;
            }

            using var json = JsonDocument.Parse(message.Response.Content.ToMemory());
            Add("rows", json.RootElement.TryGetProperty("value", out var value) && value.ValueKind == JsonValueKind.Array ? value.GetArrayLength() : 1);
        }
    }
}
