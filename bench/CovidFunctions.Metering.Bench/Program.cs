// Usage close benchmark: closes one past month for every tenant (UsageClosing.CloseAllAsync, what
// POST /api/usage/{month}/close without ?tenant= and covidfn usage close run) on a pinned Azurite started here, with
// the tenants closed one after another (TenantConcurrency = 1: the loop before the change) and side by side
// (UsageQueries.TenantConcurrency). Each run closes a month of its own, seeded the same way, so no run answers
// another's stored snapshots; the two settings alternate. Then the same close again (idempotent: stored snapshots,
// checked byte for byte). Run from the repository root (Azurite is found in infra/azurite):
//   dotnet run -c Release --project bench/CovidFunctions.Metering.Bench -- [tenants=50] [studiesPerTenant=10] [runs=3] [addedLatencyMs=0]
// addedLatencyMs > 0 holds every table request of the close that long before it is sent (an HttpPipelinePolicy):
// Azurite on the same machine answers in well under a millisecond, a Table service in the same region in a few.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Storage;

var tenants = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 50;
var studiesPerTenant = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10;
var runs = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 3;
var addedLatency = TimeSpan.FromMilliseconds(args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 0);
var none = CancellationToken.None;

var data = Directory.CreateTempSubdirectory("covidfn-usage-bench-");
await using var azurite = await AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = data.FullName, Ports = AzuriteServer.FreePorts() }, null, none);
var storage = PipelineStorage.FromConnectionString(azurite.ConnectionString);
await storage.EnsureCreatedAsync(none);
var latencyOptions = new TableClientOptions();
latencyOptions.AddPolicy(new AddedLatencyPolicy(addedLatency), HttpPipelinePosition.PerCall);
var closeUsage = new TableUsageStore(new TableClient(azurite.ConnectionString, CovidFunctions.Pipeline.PipelineNames.UsageTable, latencyOptions));
var closeStudies = new TableStudyStore(new TableClient(azurite.ConnectionString, CovidFunctions.Pipeline.PipelineNames.StudiesTable, latencyOptions));
var names = Enumerable.Range(0, tenants).Select(i => $"bench{i:000}").ToList();
foreach (var tenant in names)
{
    await storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = "seed", Status = StudyStatus.Completed, CreatedAt = DateTimeOffset.UtcNow }, none);
}

Console.WriteLine($"{tenants} tenants x {studiesPerTenant} screened studies (ingest + scoring records), {Environment.ProcessorCount} cores, added latency per request {addedLatency.TotalMilliseconds} ms");
Console.WriteLine("run  concurrency  month    close s  again s  snapshots");
var month = new DateTime(2001, 1, 1);
var results = new Dictionary<int, List<double>>();
for (var run = 0; run < runs; run++)
{
    foreach (var concurrency in run % 2 == 0 ? new[] { 1, UsageQueries.TenantConcurrency } : [UsageQueries.TenantConcurrency, 1])
    {
        var m = month.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        month = month.AddMonths(1);
        await Parallel.ForEachAsync(names, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (tenant, token) =>
        {
            var at = new DateTimeOffset(DateTime.ParseExact(m, "yyyy-MM", CultureInfo.InvariantCulture), TimeSpan.Zero).AddDays(3);
            for (var s = 0; s < studiesPerTenant; s++)
            {
                await storage.Usage.TryRecordAsync(new UsageRecord(tenant, $"s{m}-{s:000}", "ingest", at, 100, 1.5, 0, 4096), token);
                await storage.Usage.TryRecordAsync(new UsageRecord(tenant, $"s{m}-{s:000}", "scoring", at.AddMinutes(2), 100, 0, 2.5, 0), token);
            }
        });

        var closing = new UsageClosing(closeUsage, closeStudies, TimeProvider.System) { TenantConcurrency = concurrency };
        var watch = Stopwatch.StartNew();
        var closed = await closing.CloseAllAsync(m, none);
        var closeSeconds = watch.Elapsed.TotalSeconds;
        watch.Restart();
        var again = await closing.CloseAllAsync(m, none);
        var againSeconds = watch.Elapsed.TotalSeconds;
        if (JsonSerializer.Serialize(closed, ApiJson.Options) != JsonSerializer.Serialize(again, ApiJson.Options) || closed.Count != tenants)
        {
            var a = closed.Select(x => JsonSerializer.Serialize(x, ApiJson.Options)).ToList();
            var b = again.Select(x => JsonSerializer.Serialize(x, ApiJson.Options)).ToList();
            Console.WriteLine($"closed {closed.Count} again {again.Count}");
            foreach (var d in a.Except(b).Take(3)) Console.WriteLine("first:  " + d);
            foreach (var d in b.Except(a).Take(3)) Console.WriteLine("again:  " + d);
            throw new InvalidOperationException($"month {m}: closing again answered other snapshots, or not {tenants} of them");
        }

        (results.TryGetValue(concurrency, out var list) ? list : results[concurrency] = []).Add(closeSeconds);
        Console.WriteLine($"{run,3}  {concurrency,11}  {m}  {closeSeconds,7:0.00}  {againSeconds,7:0.00}  {closed.Count}");
    }
}

foreach (var (concurrency, seconds) in results.OrderBy(r => r.Key))
{
    Console.WriteLine($"concurrency {concurrency}: median close {seconds.Order().ElementAt(seconds.Count / 2):0.00} s over {seconds.Count} runs");
}

data.Delete(recursive: true);

/// <summary>Holds each request for a fixed time before sending it (a network round trip Azurite on loopback does not have).</summary>
internal sealed class AddedLatencyPolicy(TimeSpan latency) : HttpPipelinePolicy
{
    public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        if (latency > TimeSpan.Zero)
        {
            await Task.Delay(latency).ConfigureAwait(false);
        }

        await ProcessNextAsync(message, pipeline).ConfigureAwait(false);
    }

    public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        if (latency > TimeSpan.Zero)
        {
            Thread.Sleep(latency);
        }

        ProcessNext(message, pipeline);
    }
}
