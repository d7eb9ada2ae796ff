using Azure.Data.Tables;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The Function app completes the Studies id index, then the studies list index, in a hosted service at start-up (after
/// <see cref="StudyIdIndexStartup.StartDelay"/>), on Azurite, wired as in Azure (AddCovidFunctionsApp with the sample
/// settings). Before, the first all-tenant lookup that missed the index ran the backfill inside that request.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class StudyIdIndexStartupTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task The_hosted_service_completes_the_index_in_the_background_after_its_start_delay()
    {
        using var temp = TestData.CreateTempDirectory();
        var clock = new DelaysAsRequestedClock();
        await using var services = Build(temp.Path, clock);
        var studies = (TableStudyStore)services.GetRequiredService<IStudyStore>();
        var tenant = "ix-" + Guid.NewGuid().ToString("N")[..10];
        var preIndex = "s" + Guid.NewGuid().ToString("N")[..24];
        // A study row as written before the index (0be263b): the row alone.
        await studies.Table.AddEntityAsync(new TableEntity(tenant, preIndex) { ["Status"] = StudyStatus.Completed, ["CreatedAt"] = DateTimeOffset.UtcNow }, None);

        var startup = Assert.Single(services.GetServices<IHostedService>().OfType<StudyIdIndexStartup>());
        await startup.StartAsync(None);
        await startup.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(60));
        await startup.StopAsync(None);

        Assert.Contains(StudyIdIndexStartup.StartDelay, clock.Delays);
        Assert.True(await studies.IsTenantIndexCompleteAsync(None));
        var index = await studies.Table.GetEntityAsync<TableEntity>(TableStudyStore.TenantIndexPartition, preIndex, cancellationToken: None);
        Assert.Equal(tenant, index.Value.GetString("Tenant"));

        // Then the studies list index: the pre-index study is listed by it (its row, and the marker).
        Assert.True(await studies.IsListIndexCompleteAsync(None));
        Assert.Equal([preIndex], await studies.ListAsync(new StudyListRequest([tenant]), None).Select(s => s.StudyId).ToListAsync());
    }

    private ServiceProvider Build(string keyDirectory, TimeProvider clock) => SampleApp.Build(azurite, keyDirectory, clock);

    /// <summary>The system clock whose delays end at once, noting each delay asked for.</summary>
    private sealed class DelaysAsRequestedClock : TimeProvider
    {
        public System.Collections.Concurrent.ConcurrentBag<TimeSpan> Delays { get; } = [];

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Delays.Add(dueTime);
            return base.CreateTimer(callback, state, TimeSpan.Zero, period);
        }
    }
}
