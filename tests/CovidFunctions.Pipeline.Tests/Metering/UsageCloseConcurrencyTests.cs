using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.Pipeline.Tests.Api;
using CovidFunctions.Pipeline.Tests.Ingest;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Tests.Metering;

/// <summary>
/// Closing every tenant's month (<c>POST /api/usage/{month}/close</c> without a tenant, <c>covidfn usage close</c>, the
/// hourly <c>CloseUsageMonth</c>) and the all-tenant usage view work on up to <see cref="UsageQueries.TenantConcurrency"/>
/// tenants at once. Before, one tenant after another: a request closing 50 tenants waited for 50 closes in a row.
/// A key bound to several tenants reads their usage the same way. Counted, not timed: a store that holds each call for a moment records how many tenants were in it at once. The
/// answers are those of closing one tenant at a time, in tenant order, and byte for byte the same when closed again.
/// </summary>
public sealed class UsageCloseConcurrencyTests
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly DateTimeOffset InApril = new(2026, 4, 20, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Closing_every_tenant_runs_tenants_side_by_side_and_answers_as_one_at_a_time()
    {
        var tenants = Enumerable.Range(0, 20).Select(i => $"t{i:00}").ToList();
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 5, 10, 8, 0, 0, TimeSpan.Zero));
        var (concurrent, counting) = await SeededAsync(tenants);
        var (sequential, _) = await SeededAsync(tenants);

        using var kit = new ApiTestKit();
        var api = new ResultsApi(kit.Studies, kit.Containers, new UsageQueries(counting, kit.Studies), kit.Webhooks.Manager, new ResultsApiOptions(), time: clock);
        var closed = await api.CloseUsageMonthAsync(ApiCaller.AllTenants, "2026-04", null, None);
        Assert.Equal(200, closed.Status);
        Assert.Equal(UsageQueries.TenantConcurrency, counting.PeakInBeginClose);

        // The same snapshots as closing one tenant after another, in tenant order.
        var oneByOne = await new UsageClosing(sequential, new InMemoryStudyStore(), clock) { TenantConcurrency = 1 }.CloseAllAsync("2026-04", None);
        Assert.Equal(tenants, oneByOne.Select(s => s.Tenant));
        Assert.Equal(JsonSerializer.Serialize(oneByOne, ApiJson.Options), closed.BodyText);

        // Closed again (later): the stored snapshots, byte for byte.
        clock.Now = clock.Now.AddDays(2);
        Assert.Equal(closed.BodyText, (await api.CloseUsageMonthAsync(ApiCaller.AllTenants, "2026-04", null, None)).BodyText);
        Assert.Equal(closed.BodyText, (await api.GetUsageAsync(ApiCaller.AllTenants, null, "2026-04", None)).BodyText);
    }

    [Fact]
    public async Task The_hourly_close_and_the_all_tenant_view_run_tenants_side_by_side()
    {
        var tenants = Enumerable.Range(0, 20).Select(i => $"h{i:00}").ToList();
        var (_, counting) = await SeededAsync(tenants);
        var studies = new InMemoryStudyStore();

        var open = await new UsageQueries(counting, studies).MonthlyTotalsForAllAsync("2026-04", None);
        Assert.Equal(tenants, open.Select(t => t.Tenant));
        Assert.Equal(UsageQueries.TenantConcurrency, counting.PeakInGetFiled);

        var autoClose = new UsageAutoClose(counting, studies, new MeteringOptions(), new ManualTimeProvider(new DateTimeOffset(2026, 5, 4, 0, 30, 0, TimeSpan.Zero)), NullLogger<UsageAutoClose>.Instance);
        var outcome = await autoClose.RunAsync(None);
        Assert.Equal(tenants, outcome.Closed);
        Assert.Empty(outcome.Waiting);
        Assert.Equal(UsageQueries.TenantConcurrency, counting.PeakInBeginClose);
        foreach (var (tenant, total) in tenants.Zip(open))
        {
            Assert.Equal(total with { Closed = true, ClosedAt = new DateTimeOffset(2026, 5, 4, 0, 30, 0, TimeSpan.Zero) }, await counting.GetClosedAsync(tenant, "2026-04", None));
        }
    }

    [Fact]
    public async Task A_key_bound_to_several_tenants_reads_their_usage_side_by_side_in_tenant_order()
    {
        // Before, one tenant after another (up to ApiKeys:MaxTenantsPerKey, 25, in one request).
        var tenants = Enumerable.Range(0, 20).Select(i => $"k{i:00}").ToList();
        var (store, counting) = await SeededAsync(tenants);
        using var kit = new ApiTestKit();
        var api = new ResultsApi(kit.Studies, kit.Containers, new UsageQueries(counting, kit.Studies), kit.Webhooks.Manager, new ResultsApiOptions());

        var usage = await api.GetUsageAsync(ApiCaller.ForTenants([.. Enumerable.Reverse(tenants)]), null, "2026-04", None);
        Assert.Equal(200, usage.Status);
        Assert.Equal(UsageQueries.TenantConcurrency, counting.PeakInGetFiled);
        var oneByOne = new List<UsageTotals>();
        foreach (var tenant in tenants)
        {
            oneByOne.Add(await new UsageQueries(store, kit.Studies).MonthlyTotalsAsync(tenant, "2026-04", None));
        }

        Assert.Equal(JsonSerializer.Serialize(oneByOne, ApiJson.Options), usage.BodyText);
    }

    private static async Task<(InMemoryUsageStore Store, CountingUsageStore Counting)> SeededAsync(IReadOnlyList<string> tenants)
    {
        var usage = new InMemoryUsageStore();
        foreach (var (tenant, i) in tenants.Select((t, i) => (t, i)))
        {
            await usage.TryRecordAsync(new UsageRecord(tenant, "s1", "ingest", InApril, 10 + i, 0.5 * i, 0, 1000 * i), None);
            await usage.TryRecordAsync(new UsageRecord(tenant, "s1", StudyOrchestration.UsageStage, InApril.AddMinutes(5), 10 + i, 0, 0.25 * i, 0), None);
        }

        return (usage, new CountingUsageStore(usage));
    }

    /// <summary>
    /// The in-memory store, counting the callers in each month read and close fence at once. Until a counter first sees
    /// <see cref="UsageQueries.TenantConcurrency"/> callers inside together, each caller waits there (at most 5 s), so a
    /// bounded fan-out shows its bound however slowly a loaded machine starts the tasks (a fixed 20 ms hold let the
    /// first callers leave before the last had entered, and the peak then fell short of the bound); a sequential one
    /// shows 1 after the wait, an unbounded one more than the bound.
    /// </summary>
    private sealed class CountingUsageStore(IUsageStore inner) : IUsageStore
    {
        private readonly TaskCompletionSource _beginCloseAtBound = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _getFiledAtBound = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _inBeginClose;
        private int _inGetFiled;

        public int PeakInBeginClose { get; private set; }

        public int PeakInGetFiled { get; private set; }

        public Task<bool> TryRecordAsync(UsageRecord record, CancellationToken cancellationToken) => inner.TryRecordAsync(record, cancellationToken);

        public Task<IReadOnlyList<UsageRecord>> GetMonthAsync(string tenant, string month, CancellationToken cancellationToken) => inner.GetMonthAsync(tenant, month, cancellationToken);

        public Task<IReadOnlyList<string>> GetTenantsAsync(string month, CancellationToken cancellationToken) => inner.GetTenantsAsync(month, cancellationToken);

        public async Task<IReadOnlyList<FiledUsage>> GetFiledAsync(string tenant, string month, CancellationToken cancellationToken)
        {
            await HoldAsync(() => ref _inGetFiled, p => PeakInGetFiled = Math.Max(PeakInGetFiled, p), _getFiledAtBound);
            return await inner.GetFiledAsync(tenant, month, cancellationToken);
        }

        public Task<DateTimeOffset?> GetClosingAsync(string tenant, string month, CancellationToken cancellationToken) => inner.GetClosingAsync(tenant, month, cancellationToken);

        public async Task<DateTimeOffset> BeginCloseAsync(string tenant, string month, DateTimeOffset at, CancellationToken cancellationToken)
        {
            await HoldAsync(() => ref _inBeginClose, p => PeakInBeginClose = Math.Max(PeakInBeginClose, p), _beginCloseAtBound);
            return await inner.BeginCloseAsync(tenant, month, at, cancellationToken);
        }

        public Task<UsageTotals?> GetClosedAsync(string tenant, string month, CancellationToken cancellationToken) => inner.GetClosedAsync(tenant, month, cancellationToken);

        public Task<UsageTotals> AddClosedIfAbsentAsync(UsageTotals closed, CancellationToken cancellationToken) => inner.AddClosedIfAbsentAsync(closed, cancellationToken);

        private delegate ref int Counter();

        private readonly Lock _gate = new();

        private async Task HoldAsync(Counter counter, Action<int> peak, TaskCompletionSource atBound)
        {
            lock (_gate)
            {
                var inside = ++counter();
                peak(inside);
                if (inside >= UsageQueries.TenantConcurrency)
                {
                    atBound.TrySetResult();
                }
            }

            await Task.WhenAny(atBound.Task, Task.Delay(TimeSpan.FromSeconds(5)));
            lock (_gate)
            {
                counter()--;
            }
        }
    }
}
