using System.Reflection;
using System.Text.Json.Nodes;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestHelpers;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The Function app's SweepWebhookSecrets timer, wired as in Azure (AddCovidFunctionsApp over the sample settings, the
/// clock replaced; the sample names no vault, so the secrets are in the app's in-memory store, dated by the app's clock):
/// a secret no subscription row names is deleted once an hour old, the subscriptions' own secrets never.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class WebhookSecretSweepFunctionTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    private static readonly string OutputDirectory = typeof(WebhookSecretSweepFunctionTests).Assembly
        .GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "FunctionAppOutput").Value!;

    [Fact]
    public async Task The_timer_deletes_a_secret_no_row_names_once_an_hour_old_and_keeps_the_subscriptions_secrets()
    {
        using var temp = TestData.CreateTempDirectory();
        var clock = new SettableClock(DateTimeOffset.UtcNow);
        await using var services = SampleApp.Build(azurite, temp.Path, clock);
        var manager = services.GetRequiredService<WebhookManager>();
        var secrets = services.GetRequiredService<IWebhookSecretStore>();
        var tenant = "whsweep-" + Guid.NewGuid().ToString("N")[..10];
        var live = await manager.AddAsync(tenant, "https://1.1.1.1/hook", null, "whsec_live_secret_0123456789abcd", None);
        var rotated = await manager.RotateSecretAsync(tenant, live.Subscription.Id, null, TimeSpan.FromHours(24), None);

        // A rotation that died between storing its secret and replacing the row.
        var orphan = WebhookIds.RotatedSecretName(tenant, live.Subscription.Id);
        await secrets.SetAsync(orphan, "whsec_orphaned_secret_0123456789", None);
        var timer = ActivatorUtilities.CreateInstance<WebhookSecretSweepFunctions>(services);

        await timer.SweepWebhookSecrets(new TimerInfo(), None);
        Assert.NotNull(await secrets.GetAsync(orphan, None));

        clock.Now += WebhookOptions.OrphanedSecretGrace;
        await timer.SweepWebhookSecrets(new TimerInfo(), None);
        Assert.Null(await secrets.GetAsync(orphan, None));
        Assert.Equal(rotated.Secret, await secrets.GetAsync(rotated.Subscription.SecretName, None));
        Assert.Equal("whsec_live_secret_0123456789abcd", await secrets.GetAsync(live.Subscription.SecretName, None));
    }

    [Fact]
    public void Metadata_SweepWebhookSecretsIsAnHourlyTimer()
    {
        var function = JsonNode.Parse(File.ReadAllText(Path.Combine(OutputDirectory, "functions.metadata")))!.AsArray()
            .Select(f => f!.AsObject())
            .Single(f => (string?)f["name"] == WebhookSecretSweepFunctions.SweepWebhookSecretsName);
        var trigger = function["bindings"]!.AsArray().Select(b => b!.AsObject()).Single(b => (string?)b["type"] == "timerTrigger");
        Assert.Equal("0 20 * * * *", (string?)trigger["schedule"]);
    }

    private sealed class SettableClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
