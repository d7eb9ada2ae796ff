using System.Collections;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// What the commands check when they start, before reading input or starting anything: the <c>Inference__*</c>
/// settings (bound, validated and refused when misspelt, as the scorer does for <c>Scorer__*</c>; flags win) and the
/// de-identification key (an unusable one named by where it came from). The process tests run <c>covidfn</c> as a
/// process with their own environment.
/// </summary>
public sealed class StartupSettingsTests
{
    /// <summary>
    /// A storage connection string that <c>up</c> would fail on: it must never be reached when a setting or the key is
    /// bad (and no Azurite is started by these tests, whatever the outcome).
    /// </summary>
    private static readonly (string, string) NoStorage = ("COVIDFN_STORAGE", "not a connection string");

    [Fact]
    public void InferenceSettings_FromTheEnvironment_AreBound_InAnyCase()
    {
        var options = InferenceSettings.Load(
            Environment(("Inference__IntraOpThreads", "3"), ("inference__cpumemarena", "false"), ("INFERENCE__MaxBatch", "4"), ("Inference__Layout", "Separate"), ("Other__X", "1")),
            modelsDirectory: null,
            intraOpThreads: null);

        Assert.Equal((3, false, 4, ModelLayout.Separate), (options.IntraOpThreads, options.CpuMemArena, options.MaxBatch, options.Layout));
    }

    [Fact]
    public void InferenceSettings_None_AreTheDefaults()
    {
        Assert.Equal(new InferenceOptions(), InferenceSettings.Load(Environment(), null, null));
    }

    [Fact]
    public void Flags_WinOverTheEnvironment()
    {
        // An out-of-range environment value that the flag replaces is not an error: the flag is what runs.
        var options = InferenceSettings.Load(
            Environment(("Inference__IntraOpThreads", "-1"), ("Inference__ModelsDirectory", "/from/env")),
            modelsDirectory: "/from/flag",
            intraOpThreads: 2);

        Assert.Equal((2, "/from/flag"), (options.IntraOpThreads, options.ModelsDirectory));
        Assert.Equal("/from/env", InferenceSettings.Load(Environment(("Inference__ModelsDirectory", "/from/env")), null, null).ModelsDirectory);
    }

    [Theory]
    [InlineData("Inference__IntraOpTheads", "2", "Inference:IntraOpTheads (Inference__IntraOpTheads)")]
    [InlineData("Inference__MaxBatch", "0", "Inference:MaxBatch must be in 1..1024")]
    [InlineData("Inference__InterOpThreads", "-2", "Inference:InterOpThreads must be >= 0")]
    [InlineData("Inference__CudaDeviceId", "-1", "Inference:CudaDeviceId must be >= 0")]
    [InlineData("Inference__PreferCuda", "maybe", "Inference:PreferCuda")]
    [InlineData("Inference__Layout", "Stacked", "Inference:Layout")]
    public void BadInferenceSetting_IsRefusedNamingIt(string name, string value, string expected)
    {
        var error = Assert.Throws<InvalidOperationException>(() => InferenceSettings.Load(Environment((name, value)), null, null));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Inference__IntraOpTheads", "2", "Inference:IntraOpTheads (Inference__IntraOpTheads)")]
    [InlineData("Inference__MaxBatch", "0", "Inference:MaxBatch must be in 1..1024")]
    public void Up_BadInferenceSetting_StopsBeforeAnythingStarts(string name, string value, string expected)
    {
        using var temp = TestData.CreateTempDirectory();
        var dataDir = Path.Combine(temp.Path, "data");

        var (rc, stderr) = Covidfn([(name, value), NoStorage], "up", "--data-dir", dataDir, "--api-port", "0", "--exit-when-done");

        Assert.True(rc == 2, stderr);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("cannot start the local pipeline", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void UpHostSettings_FromTheEnvironment_AreBound_InAnyCase()
    {
        var settings = LocalHostSettings.Load(
            Environment(("Metering__CloseAfterDays", "0"), ("metering__closemaxwaitdays", "2"), ("Pipeline__UploadRetention", "1.00:00:00"),
                ("PIPELINE__StuckStudyAge", "08:00:00"), ("Pipeline__ChunkSize", "16"), ("Pipeline__MaxDeliveryCount", "7"), ("Other__X", "1")),
            chunkSize: null);

        Assert.Equal((0, 2), (settings.Metering.CloseAfterDays, settings.Metering.CloseMaxWaitDays));
        Assert.Equal(
            new PipelineOptions { UploadRetention = TimeSpan.FromDays(1), StuckStudyAge = TimeSpan.FromHours(8), ChunkSize = 16, MaxDeliveryCount = 7, IngestTimeLimit = LocalHostSettings.LocalIngestTimeLimit(new PipelineOptions().MaxUploadBytes) },
            settings.Pipeline);
        Assert.Empty(settings.FunctionAppOnly);
    }

    [Fact]
    public void UpHostSettings_None_AreTheFunctionAppDefaults_ButTheIngestTimeLimit()
    {
        var settings = LocalHostSettings.Load(Environment(), chunkSize: null);

        // IngestTimeLimit is sized to the largest upload accepted: up has no Function timeout (LocalIngestTimeLimitTests).
        Assert.Equal(new PipelineOptions() with { IngestTimeLimit = TimeSpan.FromMinutes(94) }, settings.Pipeline);
        Assert.Equal((3, 10), (settings.Metering.CloseAfterDays, settings.Metering.CloseMaxWaitDays));
    }

    [Fact]
    public void UpHostSettings_ChunkSizeFlag_WinsOverTheEnvironment_AndFunctionAppOnlyKeysAreNamedNotRefused()
    {
        var settings = LocalHostSettings.Load(
            Environment(("Pipeline__ChunkSize", "0"), ("Pipeline__Transport", "ServiceBus"), ("Pipeline__SliceQueueName", "slice-chunks")),
            chunkSize: 8);

        Assert.Equal(8, settings.Pipeline.ChunkSize);
        Assert.Equal(["Pipeline__SliceQueueName", "Pipeline__Transport"], settings.FunctionAppOnly);
    }

    [Fact]
    public void UpHostSettings_TheSingleUploadSweepAndHistoryPurgeAges_AreNamedAsFunctionAppOnly()
    {
        // Both are Function app timers' settings (46bb245, 2a70270): up accepted them and acted on neither, silently.
        var settings = LocalHostSettings.Load(
            Environment(("Pipeline__SingleUploadSweepAge", "00:05:00"), ("Pipeline__OrchestrationHistoryRetention", "7.00:00:00")),
            chunkSize: null);

        Assert.Equal(["Pipeline__OrchestrationHistoryRetention", "Pipeline__SingleUploadSweepAge"], settings.FunctionAppOnly);
        Assert.Contains("keeps it", LocalHostSettings.WhyFunctionAppOnly("Pipeline__OrchestrationHistoryRetention"), StringComparison.Ordinal);
        Assert.Contains("at once", LocalHostSettings.WhyFunctionAppOnly("Pipeline__SingleUploadSweepAge"), StringComparison.Ordinal);
    }

    [Fact]
    public void Up_PassesTheEnvironmentsPipelineAndMeteringSettings_ToTheLocalHost()
    {
        // Before, up built its host with the default Metering options and only --chunk-size of the Pipeline ones, so
        // README's Metering__CloseAfterDays / Pipeline__* rows ("covidfn up runs the same close") changed nothing locally.
        var settings = LocalHostSettings.Load(Environment(("Metering__CloseAfterDays", "5"), ("Metering__CloseMaxWaitDays", "6"), ("Pipeline__UploadRetention", "02:00:00")), null);
        var args = new UpCommand.UpArguments("d", 10000, false, 64, false, null, null, null, null);

        var options = UpCommand.HostOptions(args, "d", null, new InferenceOptions(), settings);

        Assert.Equal((5, 6), (options.Metering.CloseAfterDays, options.Metering.CloseMaxWaitDays));
        Assert.Equal(TimeSpan.FromHours(2), options.Pipeline.UploadRetention);
    }

    [Theory]
    [InlineData("Metering__CloseAfterDays", "28", "Metering:CloseAfterDays must be 0-27")]
    [InlineData("Metering__CloseAfterDay", "3", "Metering:CloseAfterDay (Metering__CloseAfterDay)")]
    [InlineData("Pipeline__UploadRetention", "-01:00:00", "Pipeline:UploadRetention must not be negative")]
    [InlineData("Pipeline__StuckStudyAge", "six hours", "Pipeline:StuckStudyAge")]
    [InlineData("Pipeline__MaxIngestAttemps", "3", "Pipeline:MaxIngestAttemps (Pipeline__MaxIngestAttemps)")]
    [InlineData("Pipeline__StuckStudyAge", "02:00:00", "Pipeline__StuckStudyAge (02:00:00) must be longer than ingest's own bound, Pipeline__MaxIngestAttempts (3) × Pipeline__IngestTimeLimit (94 min, sized to Pipeline__MaxUploadBytes 4294967296) = 04:42:00")]
    public void Up_BadPipelineOrMeteringSetting_StopsBeforeAnythingStarts(string name, string value, string expected)
    {
        using var temp = TestData.CreateTempDirectory();
        var dataDir = Path.Combine(temp.Path, "data");

        var (rc, stderr) = Covidfn([(name, value), NoStorage], "up", "--data-dir", dataDir, "--api-port", "0", "--exit-when-done");

        Assert.True(rc == 2, stderr);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("cannot start the local pipeline", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Up_ShortKeyInTheDataFolder_StopsBeforeAnythingStarts_NamingTheFile()
    {
        using var temp = TestData.CreateTempDirectory();
        var dataDir = Path.Combine(temp.Path, "data");
        var keyPath = Path.Combine(dataDir, "keys", "deid.key");
        Directory.CreateDirectory(Path.GetDirectoryName(keyPath)!);
        File.WriteAllText(keyPath, "c2hvcnQ=\n");

        var (rc, stderr) = Covidfn([NoStorage], "up", "--data-dir", dataDir, "--api-port", "0", "--exit-when-done");

        Assert.True(rc == 2, stderr);
        Assert.Contains(keyPath, stderr, StringComparison.Ordinal);
        Assert.Contains("at least 32 bytes; got 5", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("cannot start the local pipeline", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("segment")]
    [InlineData("classify")]
    [InlineData("screen")]
    public void ModelCommands_MisspeltInferenceSetting_AreRefusedNamingIt(string command)
    {
        using var temp = TestData.CreateTempDirectory();
        string[] args = command switch
        {
            "segment" => ["segment", temp.Path, "--out-dir", Path.Combine(temp.Path, "masks")],
            "classify" => ["classify", temp.Path, "--json", Path.Combine(temp.Path, "c.json")],
            _ => ["screen", temp.Path, "--key-file", Path.Combine(temp.Path, "deid.key")],
        };

        var (rc, stderr) = Covidfn([("Inference__CpuMemArea", "false")], args);

        Assert.True(rc == 2, stderr);
        Assert.Contains("Inference:CpuMemArea (Inference__CpuMemArea)", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Screen_MalformedKeyInTheEnvironment_IsRefusedNamingTheVariable()
    {
        using var temp = TestData.CreateTempDirectory();

        var (rc, stderr) = Covidfn([("COVIDFN_DEID_KEY", "c2hvcnQ=")], "screen", temp.Path);

        Assert.True(rc == 2, stderr);
        Assert.Contains("COVIDFN_DEID_KEY: A de-identification key needs at least 32 bytes; got 5", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("c2hvcnQ=", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Deid_ShortKeyFileFromTheEnvironment_IsRefusedNamingTheVariableAndFile()
    {
        using var temp = TestData.CreateTempDirectory();
        var keyPath = Path.Combine(temp.Path, "short.key");
        File.WriteAllText(keyPath, Convert.ToBase64String(new byte[16]));

        var (rc, stderr) = Covidfn([("COVIDFN_DEID_KEY_FILE", keyPath)], "deid", temp.Path, Path.Combine(temp.Path, "out"));

        Assert.True(rc == 2, stderr);
        Assert.Contains($"COVIDFN_DEID_KEY_FILE: '{keyPath}': A de-identification key needs at least 32 bytes; got 16", stderr, StringComparison.Ordinal);
    }

    private static Hashtable Environment(params (string Name, string Value)[] variables)
    {
        var environment = new Hashtable();
        foreach (var (name, value) in variables)
        {
            environment[name] = value;
        }

        return environment;
    }

    /// <summary>Runs covidfn with <paramref name="args"/>, with no COVIDFN_* or configuration (Section__Key) variable of this process but <paramref name="variables"/>.</summary>
    internal static (int ExitCode, string Stderr) Covidfn((string Name, string Value)[] variables, params string[] args)
    {
        var (exitCode, _, stderr) = CovidfnProcess.Run(variables, args);
        return (exitCode, stderr);
    }
}
