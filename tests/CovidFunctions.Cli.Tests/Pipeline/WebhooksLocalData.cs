using System.CommandLine;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>What a command printed.</summary>
internal sealed record WebhooksRun(int ExitCode, string Stdout, string Stderr)
{
    public List<string> Lines => [.. Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
}

/// <summary>
/// A test Azurite, a data folder as <c>covidfn up --allow-loopback-webhooks</c> leaves it (<c>keys/deid.key</c>,
/// the loopback marker) and a receiver on 127.0.0.1; every command is run with <c>--data-dir</c> and <c>--storage</c>.
/// Shared by the <c>covidfn webhooks</c> command tests (rotate-secret, remove, test, sweep).
/// </summary>
internal sealed class WebhooksLocalData : IAsyncDisposable
{
    private static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    private readonly TempDirectory _temp;
    private readonly AzuriteServer _azurite;

    private WebhooksLocalData(TempDirectory temp, AzuriteServer azurite)
    {
        _temp = temp;
        _azurite = azurite;
        DataDir = Path.Combine(temp.Path, "data");
    }

    public string DataDir { get; }

    /// <summary>The test Azurite's connection string (what <c>--storage</c> gets).</summary>
    public string ConnectionString => _azurite.ConnectionString;

    public RecordingWebhookReceiver Receiver { get; } = new();

    public static async Task<WebhooksLocalData> StartAsync()
    {
        var temp = TestData.CreateTempDirectory();
        try
        {
            var local = new WebhooksLocalData(temp, await PipelineFixture.StartAzuriteAsync(temp.Path));
            DeidKeys.ForDataDir(local.DataDir, out _, out _);
            await File.WriteAllTextAsync(Path.Combine(local.DataDir, LocalWebhooks.AllowLoopbackMarker), "set by covidfn up --allow-loopback-webhooks\n");
            return local;
        }
        catch
        {
            temp.Dispose();
            throw;
        }
    }

    /// <summary><c>covidfn webhooks {args} --data-dir D --storage S</c>, parsed and invoked as Program does.</summary>
    public async Task<WebhooksRun> CovidfnAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var root = new RootCommand();
        root.Subcommands.Add(WebhooksCommand.Create());
        var parsed = root.Parse(["webhooks", .. args, "--data-dir", DataDir, "--storage", ConnectionString]);
        var rc = await parsed.InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return new WebhooksRun(parsed.Errors.Count > 0 ? ExitCodes.BadInput : rc, output.ToString(), error.ToString());
    }

    /// <summary><c>webhooks add</c> of the receiver for <c>study.completed</c>: the id and the generated secret it printed.</summary>
    public async Task<(string Id, string Secret)> AddAsync(string tenant)
    {
        var add = await CovidfnAsync("add", Receiver.Url, "--tenant", tenant, "--events", StudyEventTypes.Completed);
        Assert.True(add.ExitCode == 0, add.Stderr);
        var secret = Assert.Single(add.Lines, l => l.StartsWith("secret: ", StringComparison.Ordinal))["secret: ".Length..];
        return (add.Lines[^1], secret);
    }

    public async Task<WebhookSubscription> SubscriptionAsync(string id)
    {
        using var webhooks = Open();
        return (await webhooks.Manager.FindAsync(null, id, CancellationToken.None))!;
    }

    /// <summary>The subscription's row is as it was, and a delivery still verifies with its old secret only.</summary>
    public async Task AssertUnchangedAsync(WebhookSubscription stored, string oldSecret)
    {
        var now = await SubscriptionAsync(stored.Id);
        Assert.Equal((stored.SecretName, stored.PreviousSecretName, stored.SecretRotatedAt, stored.ETag), (now.SecretName, now.PreviousSecretName, now.SecretRotatedAt, now.ETag));
        var test = await CovidfnAsync("test", stored.Id);
        Assert.True(test.ExitCode == 0, test.Stdout + test.Stderr);
        var delivery = Receiver.Requests.Last();
        Assert.Single(delivery.Signature!.Split(','), p => p.StartsWith("v1=", StringComparison.Ordinal));
        Assert.True(WebhookSignature.Verify(oldSecret, delivery.Signature, delivery.Body, DateTimeOffset.UtcNow, Tolerance));
    }

    /// <summary>Deletes the subscription's row and nothing else; returns the names the secret file then holds.</summary>
    public async Task<IReadOnlyList<string>> DeleteRowOnlyAsync(WebhookSubscription subscription)
    {
        using var webhooks = Open();
        Assert.True(await webhooks.Storage.Subscriptions.DeleteAsync(subscription.Tenant, subscription.Id, CancellationToken.None));
        return await webhooks.Secrets.ListNamesAsync("", CancellationToken.None);
    }

    public async Task<IReadOnlyList<string>> SecretNamesAsync()
    {
        using var webhooks = Open();
        return await webhooks.Secrets.ListNamesAsync("", CancellationToken.None);
    }

    /// <summary>The data folder's secret file, where <c>up</c> reads the secrets.</summary>
    public string SecretFile => Path.Combine(DataDir, FileWebhookSecretStore.FileName);

    /// <summary>Stores a secret under <paramref name="name"/> with no row naming it (a create between its secret and its row).</summary>
    public async Task StoreSecretAsync(string name, string value) =>
        await new FileWebhookSecretStore(DataDir).SetAsync(name, value, CancellationToken.None);

    /// <summary>
    /// Makes the named secrets <paramref name="by"/> older: their <c>~stored:</c> dates in the secret file, by which the
    /// file store tells the sweep each secret's age, moved back (as if they had been stored that long before).
    /// </summary>
    public async Task AgeSecretsAsync(TimeSpan by, params string[] names)
    {
        var secrets = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(SecretFile))!;
        foreach (var name in names)
        {
            var key = FileWebhookSecretStore.StoredAtPrefix + name;
            var storedAt = DateTimeOffset.Parse(secrets[key], System.Globalization.CultureInfo.InvariantCulture);
            secrets[key] = (storedAt - by).UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture);
        }

        await File.WriteAllTextAsync(SecretFile, System.Text.Json.JsonSerializer.Serialize(secrets));
    }

    public async ValueTask DisposeAsync()
    {
        Receiver.Dispose();
        await _azurite.DisposeAsync();
        _temp.Dispose();
    }

    private LocalWebhooks Open()
    {
        var storage = PipelineStorage.FromConnectionString(_azurite.ConnectionString);
        return new(DataDir, storage.Tables, storage.Studies, allowLoopback: true, publicBaseUrl: null);
    }
}
