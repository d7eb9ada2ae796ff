using System.Globalization;
using System.Text.Json;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>
/// <c>covidfn webhooks rotate-secret</c> as a user runs it: the command line parsed and invoked as
/// <c>Program</c> does (a parse error is exit 2), on a data folder <c>covidfn up --allow-loopback-webhooks</c> made
/// (its key and loopback marker), over a real Azurite and the data folder's secret file. The new secret is printed
/// once; during the overlap <c>webhooks test</c> deliveries carry a <c>v1</c> of each secret (checked with
/// <see cref="WebhookSignature.Verify"/> for the old and the new one); bad input exits 2 naming what is wrong, and
/// changes nothing.
/// </summary>
[Collection(PipelineCollection.Name)]
public sealed class WebhooksRotateSecretCommandTests
{
    private static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task Rotate_prints_the_new_secret_once_and_the_old_one_still_signs_beside_it_during_the_overlap()
    {
        await using var local = await WebhooksLocalData.StartAsync();
        var (id, oldSecret) = await local.AddAsync("lab-rot");

        var before = DateTimeOffset.UtcNow;
        var rotate = await local.CovidfnAsync("rotate-secret", id, "--overlap-hours", "2");

        Assert.True(rotate.ExitCode == 0, rotate.Stderr);
        Assert.Empty(rotate.Stderr);
        var lines = rotate.Lines;
        Assert.Equal(3, lines.Count);
        var newSecret = Assert.Single(lines, l => l.StartsWith("secret: ", StringComparison.Ordinal))["secret: ".Length..];
        Assert.Matches("^whsec_[0-9a-f]{64}$", newSecret);
        Assert.NotEqual(oldSecret, newSecret);
        Assert.StartsWith("the previous secret signs too until ", lines[1], StringComparison.Ordinal);
        var until = DateTimeOffset.Parse(lines[1]["the previous secret signs too until ".Length..], CultureInfo.InvariantCulture);
        Assert.InRange(until, before.AddHours(2).AddSeconds(-1), DateTimeOffset.UtcNow.AddHours(2).AddSeconds(1));
        Assert.Equal(id, lines[^1]);

        // Printed once: no other command shows it.
        var list = await local.CovidfnAsync("list", "--json");
        Assert.True(list.ExitCode == 0, list.Stderr);
        Assert.DoesNotContain(newSecret, list.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(oldSecret, list.Stdout, StringComparison.Ordinal);
        var view = Assert.Single(JsonDocument.Parse(list.Stdout).RootElement.EnumerateArray());
        Assert.Equal(id, view.GetProperty("id").GetString());

        // During the overlap a delivery verifies with either secret: one v1 each, the new one's first.
        var test = await local.CovidfnAsync("test", id);
        Assert.True(test.ExitCode == 0, test.Stdout + test.Stderr);
        var delivery = Assert.Single(local.Receiver.Requests);
        Assert.Equal(2, delivery.Signature!.Split(',').Count(p => p.StartsWith("v1=", StringComparison.Ordinal)));
        Assert.True(WebhookSignature.Verify(newSecret, delivery.Signature, delivery.Body, DateTimeOffset.UtcNow, Tolerance), "the new secret verifies");
        Assert.True(WebhookSignature.Verify(oldSecret, delivery.Signature, delivery.Body, DateTimeOffset.UtcNow, Tolerance), "the old secret still verifies");
        Assert.False(WebhookSignature.Verify("whsec_" + new string('0', 64), delivery.Signature, delivery.Body, DateTimeOffset.UtcNow, Tolerance));

        // Both secrets are in the data folder's secret file, where `up` reads them to sign.
        var file = await File.ReadAllTextAsync(Path.Combine(local.DataDir, "webhook-secrets.json"));
        Assert.Contains(oldSecret, file, StringComparison.Ordinal);
        Assert.Contains(newSecret, file, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rotate_with_a_chosen_secret_and_no_overlap_prints_no_secret_and_the_old_one_stops_signing()
    {
        await using var local = await WebhooksLocalData.StartAsync();
        var (id, oldSecret) = await local.AddAsync("lab-rot0");
        const string Chosen = "whsec_chosen_by_the_operator_0123";

        var rotate = await local.CovidfnAsync("rotate-secret", id, "--overlap-hours", "0", "--secret", Chosen, "--tenant", "lab-rot0");

        Assert.True(rotate.ExitCode == 0, rotate.Stderr);
        Assert.Equal(["the previous secret no longer signs", id], rotate.Lines);
        Assert.DoesNotContain(Chosen, rotate.Stdout, StringComparison.Ordinal);
        var test = await local.CovidfnAsync("test", id);
        Assert.True(test.ExitCode == 0, test.Stdout + test.Stderr);
        var delivery = Assert.Single(local.Receiver.Requests);
        Assert.True(WebhookSignature.Verify(Chosen, delivery.Signature, delivery.Body, DateTimeOffset.UtcNow, Tolerance));
        Assert.False(WebhookSignature.Verify(oldSecret, delivery.Signature, delivery.Body, DateTimeOffset.UtcNow, Tolerance), "the old secret no longer signs");
        Assert.DoesNotContain(oldSecret, await File.ReadAllTextAsync(Path.Combine(local.DataDir, "webhook-secrets.json")), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--overlap-hours", "169", "--overlap-hours must be 0-168 (got 169)")]
    [InlineData("--overlap-hours", "-1", "--overlap-hours must be 0-168 (got -1)")]
    [InlineData("--overlap-hours", "NaN", "--overlap-hours must be 0-168 (got NaN)")]
    [InlineData("--overlap-hours", "a day", "--overlap-hours")]
    [InlineData("--secret", "too-short", "--secret: a webhook secret must be at least 16 characters")]
    [InlineData("--tenant", "Not A Tenant", "tenant 'Not A Tenant' is not valid")]
    public async Task Rotate_with_a_bad_option_exits_2_naming_it_and_changes_nothing(string option, string value, string message)
    {
        await using var local = await WebhooksLocalData.StartAsync();
        var (id, oldSecret) = await local.AddAsync("lab-bad");
        var stored = await local.SubscriptionAsync(id);

        var rotate = await local.CovidfnAsync("rotate-secret", id, option, value);

        Assert.True(rotate.ExitCode == ExitCodes.BadInput, $"{rotate.ExitCode}: {rotate.Stderr}");
        Assert.Contains(message, rotate.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("secret: ", rotate.Stdout, StringComparison.Ordinal);
        await local.AssertUnchangedAsync(stored, oldSecret);
    }

    [Theory]
    [InlineData("not-a-webhook-id")]
    [InlineData("wh0123")]
    [InlineData("WH0123456789ABCDEF0123")]
    public async Task Rotate_of_an_id_that_is_no_subscription_id_exits_2_naming_the_id_and_its_form(string badId)
    {
        await using var local = await WebhooksLocalData.StartAsync();
        var (id, oldSecret) = await local.AddAsync("lab-badid");
        var stored = await local.SubscriptionAsync(id);

        var rotate = await local.CovidfnAsync("rotate-secret", badId);

        Assert.True(rotate.ExitCode == ExitCodes.BadInput, $"{rotate.ExitCode}: {rotate.Stderr}");
        Assert.Contains($"webhooks rotate-secret: '{badId}' is not a subscription id (wh and 20 hex digits, as `webhooks add` printed)", rotate.Stderr, StringComparison.Ordinal);
        await local.AssertUnchangedAsync(stored, oldSecret);
    }

    [Theory]
    [InlineData("remove")]
    [InlineData("test")]
    public async Task Remove_and_test_refuse_an_id_that_is_no_subscription_id_the_same_way(string subcommand)
    {
        await using var local = await WebhooksLocalData.StartAsync();
        var (id, oldSecret) = await local.AddAsync("lab-badid2");
        var stored = await local.SubscriptionAsync(id);

        var run = await local.CovidfnAsync(subcommand, id[..^1]);

        Assert.True(run.ExitCode == ExitCodes.BadInput, $"{run.ExitCode}: {run.Stderr}");
        Assert.Contains($"webhooks {subcommand}: '{id[..^1]}' is not a subscription id", run.Stderr, StringComparison.Ordinal);
        Assert.Empty(local.Receiver.Requests);
        await local.AssertUnchangedAsync(stored, oldSecret);
    }

    [Fact]
    public async Task Rotate_of_an_unknown_id_or_another_tenants_exits_1_as_remove_and_test_do()
    {
        await using var local = await WebhooksLocalData.StartAsync();
        var (id, oldSecret) = await local.AddAsync("lab-own");
        var stored = await local.SubscriptionAsync(id);
        var unknown = WebhookIds.NewSubscriptionId();

        var missing = await local.CovidfnAsync("rotate-secret", unknown);
        var elsewhere = await local.CovidfnAsync("rotate-secret", id, "--tenant", "lab-other");

        Assert.True(missing.ExitCode == ExitCodes.InternalError, missing.Stderr);
        Assert.Contains($"webhooks rotate-secret: no subscription '{unknown}'", missing.Stderr, StringComparison.Ordinal);
        Assert.True(elsewhere.ExitCode == ExitCodes.InternalError, elsewhere.Stderr);
        Assert.Contains($"no subscription '{id}' in tenant 'lab-other'", elsewhere.Stderr, StringComparison.Ordinal);
        await local.AssertUnchangedAsync(stored, oldSecret);
    }

    [Fact]
    public async Task Remove_run_again_after_a_removal_that_left_the_secrets_deletes_them_and_no_other_subscriptions()
    {
        await using var local = await WebhooksLocalData.StartAsync();
        var (id, _) = await local.AddAsync("lab-left");
        var (otherId, otherSecret) = await local.AddAsync("lab-left");
        Assert.True((await local.CovidfnAsync("rotate-secret", id, "--overlap-hours", "1")).ExitCode == 0);
        var stored = await local.SubscriptionAsync(id);

        // A removal that deleted the row and then failed (the secret store unavailable): both secrets are left.
        var left = await local.DeleteRowOnlyAsync(stored);
        Assert.Equal(2, left.Count(n => n.Contains(id, StringComparison.Ordinal)));

        var again = await local.CovidfnAsync("remove", id);

        Assert.True(again.ExitCode == ExitCodes.InternalError, again.Stderr);
        Assert.Contains($"webhooks remove: no subscription '{id}'", again.Stderr, StringComparison.Ordinal);
        Assert.Contains($"webhooks remove: deleted 2 secret(s) an earlier removal of '{id}' left", again.Stderr, StringComparison.Ordinal);
        var names = await local.SecretNamesAsync();
        Assert.DoesNotContain(names, n => n.Contains(id, StringComparison.Ordinal));
        await local.AssertUnchangedAsync(await local.SubscriptionAsync(otherId), otherSecret);
    }
}
