using System.Diagnostics;
using System.Text;
using System.Text.Json;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>
/// <c>covidfn webhooks sweep [--dry-run]</c> as a user runs it: the command line parsed and invoked as <c>Program</c>
/// does, on a data folder <c>covidfn up --allow-loopback-webhooks</c> made, over a real Azurite and the data folder's
/// secret file. One pass of the hourly secret sweep (<see cref="WebhookSecretSweep"/>, which <c>up</c>'s loop and the
/// Function app's timer run): each secret of the naming scheme is printed with its tenant, subscription and why it was
/// deleted or kept, never its value; <c>--dry-run</c> deletes nothing.
/// </summary>
[Collection(PipelineCollection.Name)]
public sealed class WebhooksSweepCommandTests
{
    private static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task Sweep_deletes_only_the_secrets_no_subscription_signs_with_an_hour_old_naming_each_secret_and_never_a_value()
    {
        const string Tenant = "lab-sweep";
        await using var local = await WebhooksLocalData.StartAsync();

        // A subscription rotated with a 2-h overlap: its new secret and its previous one both sign.
        var (id, firstSecret) = await local.AddAsync(Tenant);
        var rotate = await local.CovidfnAsync("rotate-secret", id, "--overlap-hours", "2");
        Assert.True(rotate.ExitCode == 0, rotate.Stderr);
        var newSecret = Assert.Single(rotate.Lines, l => l.StartsWith("secret: ", StringComparison.Ordinal))["secret: ".Length..];
        var rotated = await local.SubscriptionAsync(id);

        // A removal that deleted its row and failed at the secret store: its secret is named by no row.
        var (goneId, goneSecret) = await local.AddAsync(Tenant);
        var gone = await local.SubscriptionAsync(goneId);
        await local.DeleteRowOnlyAsync(gone);

        // A create between storing its secret and writing its row: named by no row yet, and young.
        var youngId = WebhookIds.NewSubscriptionId();
        var youngName = WebhookIds.SecretName(Tenant, youngId);
        const string YoungSecret = "whsec_a_create_about_to_write_its_row";
        await local.StoreSecretAsync(youngName, YoungSecret);

        // All but the young one were stored two hours ago.
        await local.AgeSecretsAsync(TimeSpan.FromHours(2), rotated.SecretName, rotated.PreviousSecretName!, gone.SecretName);
        var file = await File.ReadAllTextAsync(local.SecretFile);

        var dry = await local.CovidfnAsync("sweep", "--dry-run");

        Assert.True(dry.ExitCode == ExitCodes.Success, dry.Stdout + dry.Stderr);
        Assert.Empty(dry.Stderr);
        Assert.Contains($"would delete  {gone.SecretName}  tenant {Tenant}  subscription {goneId}: no subscription names it, stored ", dry.Stdout, StringComparison.Ordinal);
        Assert.Contains($"kept  {rotated.SecretName}  tenant {Tenant}  subscription {id}: the current secret of {id}", dry.Stdout, StringComparison.Ordinal);
        Assert.Contains($"kept  {rotated.PreviousSecretName}  tenant {Tenant}  subscription {id}: the previous secret of {id}, its overlap ends ", dry.Stdout, StringComparison.Ordinal);
        Assert.Contains($"kept  {youngName}  tenant {Tenant}  subscription {youngId}: stored ", dry.Stdout, StringComparison.Ordinal);
        Assert.Contains("under the 1 h grace", dry.Stdout, StringComparison.Ordinal);
        Assert.Equal("4 webhook secret(s) listed: 1 would be deleted (dry run: nothing deleted), 3 kept, 0 failed", dry.Lines[^1]);
        Assert.Equal(5, dry.Lines.Count);
        Assert.Equal(file, await File.ReadAllTextAsync(local.SecretFile));

        var sweep = await local.CovidfnAsync("sweep");

        Assert.True(sweep.ExitCode == ExitCodes.Success, sweep.Stdout + sweep.Stderr);
        Assert.Empty(sweep.Stderr);
        Assert.Contains($"deleted  {gone.SecretName}  tenant {Tenant}  subscription {goneId}: no subscription names it", sweep.Stdout, StringComparison.Ordinal);
        Assert.Equal("4 webhook secret(s) listed: 1 deleted, 3 kept, 0 failed", sweep.Lines[^1]);
        Assert.Equal(
            new[] { rotated.SecretName, rotated.PreviousSecretName!, youngName }.Order(StringComparer.Ordinal),
            await local.SecretNamesAsync());

        // Names only: no value of any secret was printed, by either run.
        foreach (var value in new[] { firstSecret, newSecret, goneSecret, YoungSecret })
        {
            Assert.DoesNotContain(value, dry.Stdout + dry.Stderr + sweep.Stdout + sweep.Stderr, StringComparison.Ordinal);
        }

        // The rotated subscription still signs with both of its secrets.
        var test = await local.CovidfnAsync("test", id);
        Assert.True(test.ExitCode == 0, test.Stdout + test.Stderr);
        var delivery = Assert.Single(local.Receiver.Requests);
        Assert.True(WebhookSignature.Verify(newSecret, delivery.Signature, delivery.Body, DateTimeOffset.UtcNow, Tolerance), "the new secret verifies");
        Assert.True(WebhookSignature.Verify(firstSecret, delivery.Signature, delivery.Body, DateTimeOffset.UtcNow, Tolerance), "the previous secret still verifies");

        // Run again: nothing left to delete.
        var again = await local.CovidfnAsync("sweep");
        Assert.True(again.ExitCode == ExitCodes.Success, again.Stderr);
        Assert.Equal("3 webhook secret(s) listed: 0 deleted, 3 kept, 0 failed", again.Lines[^1]);
    }

    [Fact]
    public async Task A_delete_the_file_system_refuses_is_named_on_stderr_and_exits_1_and_the_next_sweep_makes_it()
    {
        const string Tenant = "lab-sweep-refused";
        await using var local = await WebhooksLocalData.StartAsync();
        var (goneId, goneSecret) = await local.AddAsync(Tenant);
        var gone = await local.SubscriptionAsync(goneId);
        await local.DeleteRowOnlyAsync(gone);
        await local.AgeSecretsAsync(TimeSpan.FromHours(2), gone.SecretName);

        // Another secret in the same file, outside the naming scheme (never swept), 12 MiB: the file a delete writes
        // again is then larger than the process may write (its file size limit, 8 MiB, as a full disk or quota would
        // refuse it). Tests run as root, so a read-only folder would not stop the write.
        var secrets = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(local.SecretFile))!;
        secrets["other-deid-key"] = new string('k', 12 << 20);
        await File.WriteAllTextAsync(local.SecretFile, JsonSerializer.Serialize(secrets));
        var file = await File.ReadAllTextAsync(local.SecretFile);

        var refused = RunWithFileSizeLimit(8 << 10, "webhooks", "sweep", "--data-dir", local.DataDir, "--storage", local.ConnectionString);

        Assert.True(refused.ExitCode == ExitCodes.InternalError, $"exit {refused.ExitCode}: {refused.Stdout}{refused.Stderr}");
        // The reason as .NET reports EFBIG on the file's growth ("Specified file length was too large for the file system").
        Assert.True(refused.Stderr.StartsWith($"webhooks sweep: could not delete {gone.SecretName}  tenant {Tenant}  subscription {goneId} (", StringComparison.Ordinal), refused.Stderr);
        Assert.Contains("too large", refused.Stderr, StringComparison.Ordinal);
        Assert.EndsWith("; the next sweep tries again", refused.Stderr.TrimEnd(), StringComparison.Ordinal);
        Assert.Equal("1 webhook secret(s) listed: 0 deleted, 0 kept, 1 failed", refused.Stdout.Trim());
        Assert.Equal(file, await File.ReadAllTextAsync(local.SecretFile));
        // The refused write's temp file (8 MiB of the secrets, 0600) is not left in the data folder.
        Assert.Empty(Directory.GetFiles(local.DataDir, "*.tmp").Select(Path.GetFileName));

        // The limit gone, the next sweep deletes it.
        var next = await local.CovidfnAsync("sweep");
        Assert.True(next.ExitCode == ExitCodes.Success, next.Stdout + next.Stderr);
        Assert.Equal("1 webhook secret(s) listed: 1 deleted, 0 kept, 0 failed", next.Lines[^1]);
        Assert.Equal(["other-deid-key"], await local.SecretNamesAsync());
        Assert.DoesNotContain(goneSecret, refused.Stdout + refused.Stderr + next.Stdout + next.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_truncated_secret_file_is_named_on_one_line_with_exit_1_and_left_as_it_is_by_every_webhooks_command()
    {
        const string Tenant = "lab-sweep-corrupt";
        await using var local = await WebhooksLocalData.StartAsync();
        var (id, secret) = await local.AddAsync(Tenant);

        // The file cut inside the secret's value (a copy or restore that stopped short, a disk that filled up under an
        // editor): the first characters of the value are in it.
        var full = await File.ReadAllTextAsync(local.SecretFile);
        var truncated = full[..(full.IndexOf(secret, StringComparison.Ordinal) + 12)];
        await File.WriteAllTextAsync(local.SecretFile, truncated);

        foreach (var (name, args) in new (string, string[])[]
        {
            ("webhooks sweep", ["sweep"]),
            ("webhooks sweep", ["sweep", "--dry-run"]),
            ("webhooks add", ["add", local.Receiver.Url, "--tenant", Tenant, "--events", StudyEventTypes.Completed]),
            ("webhooks test", ["test", id]),
            ("webhooks rotate-secret", ["rotate-secret", id]),
        })
        {
            var run = await local.CovidfnAsync(args);

            Assert.True(run.ExitCode == ExitCodes.InternalError, $"{string.Join(' ', args)}: exit {run.ExitCode}: {run.Stdout}{run.Stderr}");
            var line = Assert.Single(run.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            Assert.StartsWith($"{name}: the webhook secret file {local.SecretFile} does not read as a JSON object of secret names to strings at line 1, byte ", line, StringComparison.Ordinal);
            Assert.Contains("left as it is", line, StringComparison.Ordinal);
            Assert.DoesNotContain(secret[..12], run.Stdout + run.Stderr, StringComparison.Ordinal);
            Assert.Equal(truncated, await File.ReadAllTextAsync(local.SecretFile));
        }

        Assert.Single(Directory.GetFiles(local.DataDir, FileWebhookSecretStore.FileName + "*"));
    }

    [Fact]
    public async Task Sweep_of_an_empty_secret_file_says_so_and_exits_0()
    {
        await using var local = await WebhooksLocalData.StartAsync();

        var sweep = await local.CovidfnAsync("sweep");

        Assert.True(sweep.ExitCode == ExitCodes.Success, sweep.Stderr);
        Assert.Equal(["0 webhook secret(s) listed: 0 deleted, 0 kept, 0 failed"], sweep.Lines);
    }

    /// <summary>
    /// The built covidfn run as a process whose file size limit (RLIMIT_FSIZE) is <paramref name="kib"/> KiB, SIGXFSZ
    /// ignored, so a write past it fails with EFBIG (an exception of the write) instead of killing the process. The
    /// runtime's W^X double mapping sizes a memory file under the same limit, so it is off for this run.
    /// </summary>
    private static (int ExitCode, string Stdout, string Stderr) RunWithFileSizeLimit(int kib, params string[] args)
    {
        var psi = new ProcessStartInfo("bash", ["-c", $"trap '' XFSZ; ulimit -f {kib}; exec dotnet \"$@\"", "covidfn", Path.Combine(AppContext.BaseDirectory, "covidfn.dll"), .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["DOTNET_EnableWriteXorExecute"] = "0";
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("covidfn did not exit: " + stderr);
        }

        return (process.ExitCode, stdout.Result, stderr);
    }
}
