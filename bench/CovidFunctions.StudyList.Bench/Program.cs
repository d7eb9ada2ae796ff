// Studies list benchmark: GET /api/studies (ResultsApi.ListStudiesAsync, what the Function app and covidfn up serve) on a
// pinned Azurite started here, over the real TableStudyStore. Seeds one tenant per size in `sizes` (studies created
// through the store, a minute apart, so every write path the pipeline uses writes what it writes), then lists, for each
// tenant, page 1 and page `laterPage` (reached by following the continuation tokens; only that request is measured),
// with a key bound to the tenant, the same two pages with an all-tenant key (every tenant's studies), and with the
// tenant's key and ?status=completed (half of them), ?status=failed and ?status=processing (a sixth each): each status
// case twice, through the status index ("status ...") and the way every status filter was read before it ("scan
// status ...": the same store behind a wrapper without its list, so IStudyStore.ListAsync's default scan). Then
// covidfn up's progress rounds (StudyProgressWatch) on a Studies table of its own holding `oldSettled` studies settled
// before the run and a run of 3 studies: the rounds before (every study read, as every round did) and after. Each
// measurement is the median of `runs`; rows read counts every entity the Table service returned (a query's `value`
// array, 1 per point read), requests every HTTP request the store sent. Run from the repository root (Azurite is found
// in infra/azurite):
// `indexes=after` (the default) runs the index completion after seeding, as on a table older than the indexes, and
// prints its time; `indexes=before` completes them on the empty table first (markers only: every study is then indexed
// by its create; the same rows in the end, without the completion's scans). A later page a list does not reach (a
// status with fewer studies) is reported as its last page.
//   dotnet run -c Release --project bench/CovidFunctions.StudyList.Bench -- [sizes=2000,20000] [pageSize=50] [laterPage=10] [runs=5] [oldSettled=5000] [indexes=after]
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

var sizes = (args.Length > 0 ? args[0] : "2000,20000").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToList();
var pageSize = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 50;
var laterPage = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 10;
var runs = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 5;
var oldSettled = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 5000;
var indexesBefore = args.Length > 5 && args[5] == "indexes=before";
var none = CancellationToken.None;

var data = Directory.CreateTempSubdirectory("covidfn-list-bench-");
await using var azurite = await AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = data.FullName, Ports = AzuriteServer.FreePorts() }, null, none);
var storage = PipelineStorage.FromConnectionString(azurite.ConnectionString);
await storage.EnsureCreatedAsync(none);
var counter = new TableRequestCounter();
var studies = new TableStudyStore(counter.Client(azurite.ConnectionString, PipelineNames.StudiesTable));

if (indexesBefore && studies is IStudyIdIndex)
{
    Console.WriteLine($"indexes completed on the empty table: {await new StudyIdIndexCompletion(studies, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<StudyIdIndexCompletion>.Instance).RunAsync(TimeSpan.Zero, none)} rows written");
}

var seedWatch = Stopwatch.StartNew();
var t0 = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
var statuses = new[] { StudyStatus.Completed, StudyStatus.Completed, StudyStatus.Completed, StudyStatus.Failed, StudyStatus.Rejected, StudyStatus.Processing };
foreach (var size in sizes)
{
    var tenant = TenantOf(size);
    await Parallel.ForEachAsync(Enumerable.Range(0, size), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, token) =>
    {
        var status = statuses[i % statuses.Length];
        await storage.Studies.TryCreateAsync(new StudyRecord
        {
            Tenant = tenant,
            StudyId = "s" + i.ToString("x24", CultureInfo.InvariantCulture),
            Status = status,
            CreatedAt = t0.AddMinutes(i),
            CompletedAt = status == StudyStatus.Completed ? t0.AddMinutes(i + 3) : null,
            Label = status == StudyStatus.Completed ? "covid" : null,
            ProbabilityCovid = status == StudyStatus.Completed ? 0.8 : null,
            ProbabilityCap = status == StudyStatus.Completed ? 0.15 : null,
            ProbabilityNormal = status == StudyStatus.Completed ? 0.05 : null,
            SliceCount = 64,
            UploadPath = $"{tenant}/upload-{i}.zip",
            TimingsJson = "{\"ingest\":1.25,\"scoring\":7.5,\"total\":9.9}",
            SeriesJson = "{\"selected\":{\"seriesInstanceUid\":\"2.25.1\",\"slices\":64}}",
        }, token);
    });
}

Console.WriteLine($"seeded {sizes.Sum()} studies ({string.Join(", ", sizes.Select(s => $"{TenantOf(s)}: {s}"))}) in {seedWatch.Elapsed.TotalSeconds:0} s");
if (!indexesBefore && studies is IStudyIdIndex)
{
    // What the Function app and covidfn up run in the background at start-up (the id index, then from 2e1bb2c the list
    // index); the list is measured afterwards.
    var completionWatch = Stopwatch.StartNew();
    var written = await new StudyIdIndexCompletion(studies, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<StudyIdIndexCompletion>.Instance).RunAsync(TimeSpan.Zero, none);
    Console.WriteLine($"index completion: {written} rows written in {completionWatch.Elapsed.TotalSeconds:0.0} s");
}

var webhookOptions = new WebhookOptions();
var guard = new WebhookTargetGuard(webhookOptions);
var deliveries = new InMemoryWebhookDeliveryLog();
var dispatcher = new WebhookDispatcher(guard, deliveries, webhookOptions, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<WebhookDispatcher>.Instance);
var manager = new WebhookManager(new InMemoryWebhookSubscriptionStore(), new InMemoryWebhookSecretStore(), deliveries, guard, dispatcher, webhookOptions, TimeProvider.System);
var api = new ResultsApi(studies, storage.BlobContainers, new UsageQueries(storage.Usage, studies), manager, new ResultsApiOptions());
// The same table through a store without its list: ListAsync is IStudyStore's default, the scan every status filter was before.
var scanApi = new ResultsApi(new ScanOnlyStudyStore(studies), storage.BlobContainers, new UsageQueries(storage.Usage, studies), manager, new ResultsApiOptions());

Console.WriteLine($"{Environment.ProcessorCount} cores, load average {File.ReadAllText("/proc/loadavg").Trim()}; pageSize {pageSize}, median of {runs}");
Console.WriteLine("key         tenant studies  page  items  requests  rows read  wall ms");
foreach (var size in sizes)
{
    var cases = new List<(string Name, ApiCaller Caller, string? Status, ResultsApi Api)> { ("tenant", ApiCaller.ForTenants(TenantOf(size)), null, api), ("all-tenant", ApiCaller.AllTenants, null, api) };
    foreach (var status in new[] { StudyStatus.Completed, StudyStatus.Failed, StudyStatus.Processing })
    {
        // The tenant's key with ?status= (completed: half the studies; failed, processing: a sixth each), through the
        // status index and through the scan it replaces.
        cases.Add(("scan " + status, ApiCaller.ForTenants(TenantOf(size)), status, scanApi));
        cases.Add(("status " + status, ApiCaller.ForTenants(TenantOf(size)), status, api));
    }

    foreach (var (keyName, caller, status, listApi) in cases)
    {
        var query = new StudyListQuery(Tenant: keyName == "all-tenant" ? null : TenantOf(size), Status: status, PageSize: pageSize);
        foreach (var asked in new[] { 1, laterPage })
        {
            var samples = new List<(int Items, int Requests, long Rows, double Ms)>();
            var page = asked;
            for (var run = 0; run < runs; run++)
            {
                string? continuation = null;
                for (var p = 1; p < page; p++)
                {
                    var next = Page(await listApi.ListStudiesAsync(caller, query with { Continuation = continuation }, none)).Continuation;
                    if (next is null)
                    {
                        page = p; // the list's last page
                        break;
                    }

                    continuation = next;
                }

                counter.Reset();
                var watch = Stopwatch.StartNew();
                var response = await listApi.ListStudiesAsync(caller, query with { Continuation = continuation }, none);
                var ms = watch.Elapsed.TotalMilliseconds;
                samples.Add((Page(response).Items, counter.Requests, counter.Rows, ms));
            }

            var median = samples.OrderBy(s => s.Ms).ElementAt(samples.Count / 2);
            Console.WriteLine($"{keyName,-10}  {size,14}  {page,4}  {median.Items,5}  {median.Requests,8}  {median.Rows,9}  {median.Ms,7:0.0}");
        }
    }
}

// covidfn up's progress rounds: a Studies table of its own with `oldSettled` studies settled before the run (completed,
// failed, rejected), then a run: two studies created, one progressing, all settling. Before: every round read every
// study (Studies.QueryAsync of every tenant, what WatchProgressAsync called every 2 s). After: StudyProgressWatch.
var pollTable = counter.Client(azurite.ConnectionString, "StudiesPoll");
await pollTable.CreateIfNotExistsAsync(none);
var pollStudies = new TableStudyStore(pollTable);
await pollStudies.CompleteListIndexAsync(none);
await pollStudies.CompleteStatusIndexAsync(none);
var settled = new[] { StudyStatus.Completed, StudyStatus.Failed, StudyStatus.Rejected };
seedWatch.Restart();
await Parallel.ForEachAsync(Enumerable.Range(0, oldSettled), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, token) =>
    await pollStudies.TryCreateAsync(new StudyRecord { Tenant = "default", StudyId = "s" + i.ToString("x24", CultureInfo.InvariantCulture), Status = settled[i % 3], CreatedAt = t0.AddMinutes(i), SliceCount = 64 }, token));
Console.WriteLine($"up rounds: {oldSettled} settled studies seeded in {seedWatch.Elapsed.TotalSeconds:0} s");
Console.WriteLine("round                     requests  rows read  wall ms");
var runStates = new (int Study, string Status)[][]
{
    [(1, StudyStatus.Queued)],
    [(1, StudyStatus.Processing), (2, StudyStatus.Queued)],
    [(1, StudyStatus.Completed), (2, StudyStatus.Processing)],
    [(2, StudyStatus.Failed)],
    [],
};
var before = new List<(int Requests, long Rows, double Ms)>[runStates.Length];
var after = new List<(int Requests, long Rows, double Ms)>[runStates.Length];
for (var run = 0; run < runs; run++)
{
    // Each run starts a day after the last: the earlier runs' studies are old settled studies to it.
    var since = t0.AddYears(1).AddDays(run);
    var watch = new StudyProgressWatch(pollStudies, since);
    for (var r = 0; r < runStates.Length; r++)
    {
        foreach (var (study, status) in runStates[r])
        {
            var id = $"run{run}-{study}";
            await pollStudies.UpdateAsync("default", id, s => (s ?? new StudyRecord { Tenant = "default", StudyId = id, CreatedAt = since.AddMinutes(study) }) with { Status = status }, none);
        }

        counter.Reset();
        var full = Stopwatch.StartNew();
        var all = 0;
        await foreach (var _ in pollStudies.QueryAsync(null, null, null, null, none))
        {
            all++;
        }

        (before[r] ??= []).Add((counter.Requests, counter.Rows, full.Elapsed.TotalMilliseconds));
        counter.Reset();
        var round = Stopwatch.StartNew();
        await watch.PollAsync(none);
        (after[r] ??= []).Add((counter.Requests, counter.Rows, round.Elapsed.TotalMilliseconds));
    }

}

// What a write costs: a status change (read, replace; with the status index also the new row's upsert, the old row's
// version read and its conditional delete), and an update that leaves the status alone.
var writes = new List<(string Name, int Requests, double Ms)>();
for (var run = 0; run < runs; run++)
{
    var id = "s" + run.ToString("x24", CultureInfo.InvariantCulture);
    foreach (var (name, change) in new (string, Func<StudyRecord?, StudyRecord>)[]
    {
        ("status change", s => s! with { Status = s.Status == StudyStatus.Completed ? StudyStatus.Processing : StudyStatus.Completed }),
        ("other update", s => s! with { SliceCount = s.SliceCount + 1 }),
    })
    {
        counter.Reset();
        var write = Stopwatch.StartNew();
        await pollStudies.UpdateAsync("default", id, change, none);
        writes.Add((name, counter.Requests, write.Elapsed.TotalMilliseconds));
    }
}

foreach (var group in writes.GroupBy(w => w.Name))
{
    var median = group.OrderBy(w => w.Ms).ElementAt(group.Count() / 2);
    Console.WriteLine($"write: {group.Key,-14} {median.Requests,3} requests  {median.Ms,6:0.0} ms");
}

for (var r = 0; r < runStates.Length; r++)
{
    var b = before[r].OrderBy(s => s.Ms).ElementAt(runs / 2);
    var a = after[r].OrderBy(s => s.Ms).ElementAt(runs / 2);
    Console.WriteLine($"{r + 1} before (every study)    {b.Requests,8}  {b.Rows,9}  {b.Ms,7:0.0}");
    Console.WriteLine($"{r + 1} after (watch)           {a.Requests,8}  {a.Rows,9}  {a.Ms,7:0.0}");
}

data.Delete(recursive: true);

static string TenantOf(int size) => "bench-" + size.ToString(CultureInfo.InvariantCulture);

static (int Items, string? Continuation) Page(ApiResponse response)
{
    if (response.Status != 200)
    {
        throw new InvalidOperationException($"list answered {response.Status}: {System.Text.Encoding.UTF8.GetString(response.Body)}");
    }

    using var json = JsonDocument.Parse(response.Body);
    return (json.RootElement.GetProperty("items").GetArrayLength(),
        json.RootElement.TryGetProperty("continuation", out var c) ? c.GetString() : null);
}

/// <summary>The store without its list (and indexes): <see cref="IStudyStore.ListAsync"/> is the interface's scan.</summary>
internal sealed class ScanOnlyStudyStore(IStudyStore inner) : IStudyStore
{
    public Task<StudyRecord?> GetAsync(string tenant, string studyId, CancellationToken cancellationToken) => inner.GetAsync(tenant, studyId, cancellationToken);

    public Task<bool> TryCreateAsync(StudyRecord record, CancellationToken cancellationToken) => inner.TryCreateAsync(record, cancellationToken);

    public Task<StudyRecord> UpdateAsync(string tenant, string studyId, Func<StudyRecord?, StudyRecord> update, CancellationToken cancellationToken) => inner.UpdateAsync(tenant, studyId, update, cancellationToken);

    public IAsyncEnumerable<StudyRecord> QueryAsync(string? tenant, string? status, DateTimeOffset? from, DateTimeOffset? to, CancellationToken cancellationToken) => inner.QueryAsync(tenant, status, from, to, cancellationToken);

    public IAsyncEnumerable<string> ListTenantsAsync(CancellationToken cancellationToken) => inner.ListTenantsAsync(cancellationToken);
}
