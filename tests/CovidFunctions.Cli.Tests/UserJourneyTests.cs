using CovidFunctions.Cli.Commands;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// What a new user meets following README.md: <c>covidfn up</c>'s output in a log file, <c>up</c> run from a published
/// covidfn outside the repository, and the messages of <c>webhooks add</c>. Found by the session-13 README audit.
/// </summary>
public sealed class UserJourneyTests
{
    [Fact]
    public async Task Up_RedirectedOutput_DoesNotWrapLongLines()
    {
        // `covidfn up > up.log` (or nohup): Spectre wrapped at 80 columns when no terminal width was known, so the data
        // folder, montage URLs and rejection reasons were split across lines. The first line names the data folder
        // before anything starts; the storage string makes up stop right after it.
        using var temp = TestData.CreateTempDirectory();
        var dataDir = Path.Combine(temp.Path, new string('d', 60), new string('e', 60), "data");
        using var output = new StringWriter();
        using var error = new StringWriter();
        var args = new UpCommand.UpArguments(dataDir, 10000, false, 64, false, null, null, "not a connection string", null);

        var rc = await UpCommand.RunAsync(args, output, error, CancellationToken.None);

        Assert.Equal(ExitCodes.InternalError, rc);
        var first = output.ToString().Split('\n')[0];
        Assert.Contains($"data in {dataDir}, log in {Path.Combine(dataDir, "logs", "covidfn-up.log")}", first, StringComparison.Ordinal);
    }

    [Fact]
    public void Up_OutsideTheRepository_SaysWhatToDo_NotALibraryOption()
    {
        // A published covidfn copied out of the checkout and run elsewhere: before, up stopped with "CovidFunctions.sln
        // with infra/azurite not found ...: pass AzuriteServerOptions.RepoRoot." (a .NET option no user can pass).
        using var temp = TestData.CreateTempDirectory();
        var app = Directory.CreateDirectory(Path.Combine(temp.Path, "opt", "covidfn")).FullName;
        var work = Directory.CreateDirectory(Path.Combine(temp.Path, "work")).FullName;

        var error = Assert.Throws<InvalidOperationException>(() => PinnedAzurite.FindRepoRoot([app, work], new AzuritePorts(10400, 10401, 10402)));

        Assert.Contains("127.0.0.1:10400-10402", error.Message, StringComparison.Ordinal);
        Assert.Contains($"above {app} or {work}", error.Message, StringComparison.Ordinal);
        Assert.Contains("Run covidfn up from inside the repository checkout", error.Message, StringComparison.Ordinal);
        Assert.Contains("COVIDFN_STORAGE", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("AzuriteServerOptions", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Up_InsideTheRepository_FindsThePinnedAzurite()
    {
        Assert.Equal(
            Path.GetFullPath(TestData.RepoRoot).TrimEnd(Path.DirectorySeparatorChar),
            PinnedAzurite.FindRepoRoot([Path.Combine(TestData.RepoRoot, "src", "CovidFunctions.Cli")], AzuritePorts.Default));
    }

    [Theory]
    [InlineData("study.done", null, "--events: unknown event type(s): study.done")]
    [InlineData(null, "short", "--secret: a webhook secret must be at least 16 characters")]
    public async Task WebhooksAdd_Refusal_NamesTheOption_NotTheDotNetParameter(string? events, string? secret, string expected)
    {
        // Before: "webhooks add: unknown event type(s): study.done (known: …) (Parameter 'eventTypes')".
        // A loopback receiver, allowed as under `up --allow-loopback-webhooks`, so the guard makes no DNS lookup.
        var options = new WebhookOptions { AllowLoopbackWebhooks = true };
        var guard = new WebhookTargetGuard(options);
        var deliveries = new InMemoryWebhookDeliveryLog();
        var dispatcher = new WebhookDispatcher(guard, deliveries, options, TimeProvider.System, NullLogger<WebhookDispatcher>.Instance);
        var manager = new WebhookManager(new InMemoryWebhookSubscriptionStore(), new InMemoryWebhookSecretStore(), deliveries, guard, dispatcher, options, TimeProvider.System);

        var refusal = await Assert.ThrowsAnyAsync<ArgumentException>(() => manager.AddAsync("default", "http://127.0.0.1:9/hook", events is null ? null : [events], secret, CancellationToken.None));
        var message = WebhooksCommand.AddRefusal(refusal);

        Assert.StartsWith(expected, message, StringComparison.Ordinal);
        Assert.DoesNotContain("(Parameter", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Submit_FromAFolderNoUpHasUsed_IsRefused_NotGivenAnIdUpWillNeverUse()
    {
        // README's second terminal, opened elsewhere: `covidfn submit study.zip` without --data-dir. Before, submit
        // created a new key in ./.covidfn, uploaded to the running up's Azurite (default ports) and printed an id keyed
        // with that new key; up ingested the upload under its own key's id, so the printed id stayed "queued" forever.
        using var temp = TestData.CreateTempDirectory();
        var input = Path.Combine(temp.Path, "study.zip");
        await File.WriteAllBytesAsync(input, [0x50, 0x4B, 0x05, 0x06, .. new byte[18]]);
        var dataDir = Path.Combine(temp.Path, "elsewhere", ".covidfn");
        using var output = new StringWriter();
        using var error = new StringWriter();

        // Storage on ports nothing listens on: the refusal must come before any storage call.
        var rc = await SubmitCommand.RunAsync(input, "default", ClosedPortsStorage, dataDir, output, error, CancellationToken.None);

        Assert.True(rc == ExitCodes.BadInput, error.ToString());
        Assert.Contains(dataDir, error.ToString(), StringComparison.Ordinal);
        Assert.Contains("--data-dir", error.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dataDir, "keys", "deid.key")), "no key is created for a folder no up uses");
        Assert.Empty(output.ToString());
    }

    [Theory]
    [InlineData("add", "http://127.0.0.1:18999/hook")]
    [InlineData("list", null)]
    public async Task Webhooks_FromAFolderNoUpHasUsed_AreRefused_NoSecretWrittenThere(string subcommand, string? url)
    {
        // Before: `webhooks add` from another folder stored the subscription in up's Azurite but its secret in that
        // folder's webhook-secrets.json, where up never looks to sign deliveries (and it read that folder's loopback
        // marker, so a local receiver up allows was refused with a hint to restart up).
        using var temp = TestData.CreateTempDirectory();
        var dataDir = Path.Combine(temp.Path, "elsewhere", ".covidfn");
        using var output = new StringWriter();
        using var error = new StringWriter();
        var root = new System.CommandLine.RootCommand();
        root.Subcommands.Add(WebhooksCommand.Create());
        string[] args = url is null
            ? ["webhooks", subcommand, "--data-dir", dataDir, "--storage", ClosedPortsStorage]
            : ["webhooks", subcommand, url, "--data-dir", dataDir, "--storage", ClosedPortsStorage];

        var rc = await root.Parse(args).InvokeAsync(new System.CommandLine.InvocationConfiguration { Output = output, Error = error });

        Assert.True(rc == ExitCodes.BadInput, error.ToString());
        Assert.Contains($"webhooks {subcommand}: {dataDir} is not the data folder of a covidfn up", error.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(dataDir), "nothing is written to a folder no up uses");
    }

    private const string ClosedPortsStorage =
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
        "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;QueueEndpoint=http://127.0.0.1:2/devstoreaccount1;TableEndpoint=http://127.0.0.1:3/devstoreaccount1;";
}
