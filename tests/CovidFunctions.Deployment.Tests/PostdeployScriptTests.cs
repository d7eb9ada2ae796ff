using System.Text.Json.Nodes;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Deployment.Tests;

/// <summary>
/// infra/scripts/postdeploy.sh: linted with shellcheck, then run against a stub `az` on PATH that records every
/// call, so the hook's requests and its handling of keys are checked without an Azure subscription.
/// </summary>
public sealed class PostdeployScriptTests
{
    private const string BlobKey = "fake-blobs-extension-key-0123456789";
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(1);
    private static readonly string Script = Path.Combine(TestData.RepoRoot, "infra", "scripts", "postdeploy.sh");

    // The stub answers the few az commands the hook uses and fails loudly on anything else.
    private const string StubAz = """
        #!/bin/sh
        printf '%s\n' "$*" >>"$STUB_DIR/argv.log"
        case "$1 $2 $3" in
          "keyvault secret show")
            [ "${STUB_SECRETS_EXIST:-0}" = 1 ] && { echo "https://vault/secrets/x"; exit 0; }
            exit 3 ;;
          "keyvault secret set")
            name=""; file=""
            while [ $# -gt 0 ]; do
              case "$1" in --name) name="$2" ;; --file) file="$2" ;; esac
              shift
            done
            cp "$file" "$STUB_DIR/secret-$name"
            exit 0 ;;
          "functionapp keys list")
            [ "${STUB_NO_KEY:-0}" = 1 ] && exit 0
            printf '%s\n' "$STUB_BLOB_KEY"; exit 0 ;;
          "functionapp restart "*|"functionapp restart --resource-group") exit 0 ;;
          "cloud show --query") printf 'https://management.azure.com/\n'; exit 0 ;;
          "rest --method put")
            while [ $# -gt 0 ]; do
              case "$1" in --body) cp "${2#@}" "$STUB_DIR/body.json"; printf '%s\n' "${2#@}" >"$STUB_DIR/body.path" ;; esac
              shift
            done
            exit 0 ;;
        esac
        echo "stub az: unexpected: $*" >&2
        exit 2
        """;

    [Fact]
    public async Task Shellcheck_PostdeployScript_ReportsNothing()
    {
        var shellcheck = new[] { "/usr/bin/shellcheck", "/usr/local/bin/shellcheck" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("shellcheck is not installed: run infra/scripts/prepare.sh");

        var result = await ProcessRunner.RunAsync(shellcheck, ["--shell=sh", "--severity=style", Script], TestData.RepoRoot, Timeout);

        Assert.True(result.ExitCode == 0, result.Combined);
    }

    [Fact]
    public async Task Run_FreshDeployment_CreatesTheDeidKeyAndSubscriptionWithoutExposingKeys()
    {
        using var dir = TestData.CreateTempDirectory();

        var result = await RunAsync(dir.Path);

        Assert.True(result.ExitCode == 0, result.Combined);
        var argv = File.ReadAllText(Path.Combine(dir.Path, "argv.log"));
        // The one secret the app reads (Deidentification__HmacKey's Key Vault reference); webhooks are signed with
        // per-subscription secrets the app writes itself, so the hook creates nothing else.
        var written = Assert.Single(Directory.GetFiles(dir.Path, "secret-*"));
        Assert.Equal(Path.Combine(dir.Path, "secret-deid-hmac-key"), written);
        var deidKey = File.ReadAllText(written);
        Assert.Equal(64, Convert.FromBase64String(deidKey).Length);
        // Neither the generated key nor the function key ever appears on a command line or in the hook's output.
        foreach (var secret in new[] { deidKey, BlobKey })
        {
            Assert.DoesNotContain(secret, argv, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, result.Combined, StringComparison.Ordinal);
        }

        Assert.Contains("functionapp restart --resource-group rg-test --name func-test", argv, StringComparison.Ordinal);
        Assert.Contains(
            "rest --method put --url https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.EventGrid/systemTopics/evgt-test/eventSubscriptions/ct-uploads-blob-created?api-version=2025-02-15",
            argv,
            StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_FreshDeployment_SubscribesTheIngestWebhookToBlobCreatedOnUploads()
    {
        using var dir = TestData.CreateTempDirectory();

        var result = await RunAsync(dir.Path);

        Assert.True(result.ExitCode == 0, result.Combined);
        var body = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "body.json")))!["properties"]!;
        Assert.Equal(
            $"https://func-test.azurewebsites.net/runtime/webhooks/blobs?functionName=Host.Functions.IngestUpload&code={BlobKey}",
            (string?)body["destination"]!["properties"]!["endpointUrl"]);
        Assert.Equal("WebHook", (string?)body["destination"]!["endpointType"]);
        Assert.Equal(["Microsoft.Storage.BlobCreated"], body["filter"]!["includedEventTypes"]!.AsArray().Select(v => (string)v!));
        Assert.Equal("/blobServices/default/containers/ct-uploads/", (string?)body["filter"]!["subjectBeginsWith"]);
        var deadLetter = body["deadLetterWithResourceIdentity"]!["deadLetterDestination"]!["properties"]!;
        Assert.Equal("eventgrid-deadletter", (string?)deadLetter["blobContainerName"]);
        Assert.EndsWith("/providers/Microsoft.Storage/storageAccounts/sttest", (string?)deadLetter["resourceId"], StringComparison.Ordinal);
        // The body file held the key: it is gone once the hook ends.
        Assert.False(File.Exists(File.ReadAllText(Path.Combine(dir.Path, "body.path")).Trim()));
    }

    [Fact]
    public async Task Run_FreshDeployment_RestartsTheAppBeforeWaitingForItsBlobTriggerKey()
    {
        // Until deid-hmac-key exists the app refuses to start (its Key Vault reference is unresolved, DeidKeyProvider),
        // and the platform resolves the reference again only on a restart. Before, the hook restarted the app last,
        // after waiting for the blobs_extension key that only a running host with the worker's functions creates: on a
        // first azd up it could wait out its attempts and fail with the app never restarted.
        using var dir = TestData.CreateTempDirectory();

        var result = await RunAsync(dir.Path);

        Assert.True(result.ExitCode == 0, result.Combined);
        var calls = File.ReadAllLines(Path.Combine(dir.Path, "argv.log")).ToList();
        var secretSet = calls.FindIndex(c => c.StartsWith("keyvault secret set", StringComparison.Ordinal));
        var restart = calls.FindIndex(c => c.StartsWith("functionapp restart", StringComparison.Ordinal));
        var keyRead = calls.FindIndex(c => c.StartsWith("functionapp keys list", StringComparison.Ordinal));
        Assert.True(secretSet >= 0 && restart > secretSet && keyRead > restart, "expected secret set, then restart, then the key read:\n" + string.Join("\n", calls));
        Assert.Single(calls, c => c.StartsWith("functionapp restart", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Run_SecretsAlreadyExist_LeavesThemAndDoesNotRestart()
    {
        using var dir = TestData.CreateTempDirectory();

        var result = await RunAsync(dir.Path, ("STUB_SECRETS_EXIST", "1"));

        Assert.True(result.ExitCode == 0, result.Combined);
        var argv = File.ReadAllText(Path.Combine(dir.Path, "argv.log"));
        Assert.DoesNotContain("keyvault secret set", argv, StringComparison.Ordinal);
        Assert.DoesNotContain("functionapp restart", argv, StringComparison.Ordinal);
        Assert.Contains("rest --method put", argv, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_NoBlobTriggerDeployed_FailsWithAnExplanation()
    {
        using var dir = TestData.CreateTempDirectory();

        var result = await RunAsync(dir.Path, ("STUB_NO_KEY", "1"));

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("no blobs_extension key", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("rest --method put", File.ReadAllText(Path.Combine(dir.Path, "argv.log")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_OutsideAzd_RefusesWithoutTheEnvironment()
    {
        using var dir = TestData.CreateTempDirectory();

        var result = await ProcessRunner.RunAsync("/bin/sh", [Script], dir.Path, Timeout, new Dictionary<string, string> { ["AZURE_SUBSCRIPTION_ID"] = string.Empty });

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("run through azd", result.StandardError, StringComparison.Ordinal);
    }

    private static async Task<ProcessResult> RunAsync(string dir, params (string Name, string Value)[] extra)
    {
        var bin = Directory.CreateDirectory(Path.Combine(dir, "bin")).FullName;
        var az = Path.Combine(bin, "az");
        await File.WriteAllTextAsync(az, StubAz.ReplaceLineEndings("\n") + "\n");
        if (OperatingSystem.IsLinux())
        {
            File.SetUnixFileMode(az, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var tmp = Directory.CreateDirectory(Path.Combine(dir, "tmp")).FullName;
        var environment = new Dictionary<string, string>
        {
            ["PATH"] = bin + ":/usr/local/bin:/usr/bin:/bin",
            ["TMPDIR"] = tmp,
            ["STUB_DIR"] = dir,
            ["STUB_BLOB_KEY"] = BlobKey,
            ["AZURE_SUBSCRIPTION_ID"] = "00000000-0000-0000-0000-000000000000",
            ["AZURE_RESOURCE_GROUP"] = "rg-test",
            ["AZURE_FUNCTION_APP_NAME"] = "func-test",
            ["AZURE_FUNCTION_APP_HOST"] = "func-test.azurewebsites.net",
            ["AZURE_STORAGE_ACCOUNT_NAME"] = "sttest",
            ["AZURE_UPLOAD_CONTAINER"] = "ct-uploads",
            ["AZURE_EVENTGRID_SYSTEM_TOPIC"] = "evgt-test",
            ["AZURE_EVENTGRID_DEADLETTER_CONTAINER"] = "eventgrid-deadletter",
            ["AZURE_VAULT_NAME"] = "kv-test",
            ["INGEST_FUNCTION_NAME"] = "IngestUpload",
            ["POSTDEPLOY_RETRY_SECONDS"] = "0",
            ["POSTDEPLOY_RETRY_ATTEMPTS"] = "2",
        };
        foreach (var (name, value) in extra)
        {
            environment[name] = value;
        }

        var result = await ProcessRunner.RunAsync("/bin/sh", [Script], dir, Timeout, environment);
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmp)); // the hook's private work folder is removed
        return result;
    }
}
