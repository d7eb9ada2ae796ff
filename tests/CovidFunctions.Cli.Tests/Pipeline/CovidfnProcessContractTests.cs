using System.Diagnostics;
using System.Text.Json;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>
/// The CLI contract through the real <c>covidfn</c> process: <c>submit</c> prints the study id on its last line, and
/// <c>status STUDY --json</c> prints exactly the documented document; an unknown study exits 1 with a message. The
/// pipeline runs in-process on a test Azurite; the processes find it through <c>COVIDFN_STORAGE</c>.
/// </summary>
[Collection(PipelineCollection.Name)]
public sealed class CovidfnProcessContractTests
{
    [Fact]
    public async Task Submit_prints_the_id_last_and_status_json_follows_the_contract_to_completed()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var dataDir = Path.Combine(temp.Path, "data");
        using var loggers = PipelineFixture.Loggers(dataDir, out var log);
        using var _ = log;
        await using var host = await LocalPipelineHost.StartAsync(PipelineFixture.Options(dataDir, azurite.ConnectionString, chunkSize: 4), loggers, CancellationToken.None);
        var series = PipelineFixture.RealSubset(Path.Combine(temp.Path, "series"), 4);

        var submit = await CovidfnAsync(azurite.ConnectionString, "submit", series, "--tenant", "proc-lab", "--data-dir", dataDir);
        Assert.True(submit.ExitCode == 0, submit.Stderr);
        var studyId = submit.Stdout.TrimEnd().Split('\n')[^1].Trim();
        Assert.Matches("^s[0-9a-f]{24}$", studyId);

        JsonElement document;
        var deadline = DateTime.UtcNow + PipelineFixture.StudyTimeout;
        while (true)
        {
            var status = await CovidfnAsync(azurite.ConnectionString, "status", studyId, "--json");
            Assert.True(status.ExitCode == 0, status.Stderr);
            document = JsonDocument.Parse(status.Stdout).RootElement.Clone();
            Assert.Equal(["study", "tenant", "status", "reason", "diagnosis"], document.EnumerateObject().Select(p => p.Name));
            Assert.Equal(studyId, document.GetProperty("study").GetString());
            Assert.Equal("proc-lab", document.GetProperty("tenant").GetString());
            Assert.Contains(document.GetProperty("status").GetString(), new[] { "queued", "processing", "completed" });
            if (document.GetProperty("status").GetString() == "completed" || DateTime.UtcNow > deadline)
            {
                break;
            }

            Assert.Equal(JsonValueKind.Null, document.GetProperty("diagnosis").ValueKind);
            await Task.Delay(2000);
        }

        Assert.Equal("completed", document.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, document.GetProperty("reason").ValueKind);
        var diagnosis = document.GetProperty("diagnosis");
        Assert.Equal(["label", "probabilities", "lesionBurden", "slices"], diagnosis.EnumerateObject().Select(p => p.Name));
        Assert.Contains(diagnosis.GetProperty("label").GetString(), new[] { "covid", "cap", "normal" });
        var probabilities = diagnosis.GetProperty("probabilities");
        Assert.Equal(["covid", "cap", "normal"], probabilities.EnumerateObject().Select(p => p.Name));
        Assert.InRange(probabilities.EnumerateObject().Sum(p => p.Value.GetDouble()), 0.99, 1.01);
        Assert.InRange(diagnosis.GetProperty("lesionBurden").GetDouble(), 0, 1);
        Assert.Equal(4, diagnosis.GetProperty("slices").GetInt32());

        var readable = await CovidfnAsync(azurite.ConnectionString, "status", studyId);
        Assert.Equal(0, readable.ExitCode);
        Assert.Contains("completed", readable.Stdout, StringComparison.Ordinal);
        Assert.Contains("montage", readable.Stdout, StringComparison.Ordinal);

        var unknown = await CovidfnAsync(azurite.ConnectionString, "status", "s000000000000000000000000", "--json");
        Assert.Equal(ExitCodes.InternalError, unknown.ExitCode);
        Assert.Contains("no study", unknown.Stderr, StringComparison.Ordinal);
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> CovidfnAsync(string connection, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "covidfn.dll"), .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.Environment[LocalStorage.ConnectionVariable] = connection;
        psi.Environment["NO_COLOR"] = "1";
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout, await stderr);
    }
}
