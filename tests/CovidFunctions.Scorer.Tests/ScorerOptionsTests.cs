using System.Text.Json.Nodes;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.Scorer.Tests;

/// <summary>The scorer's settings: the repository's local.settings.sample.json binds and validates; bad values are refused by name.</summary>
public sealed class ScorerOptionsTests
{
    private static IConfiguration SampleSettings()
    {
        var values = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "local.settings.sample.json")))!["Values"]!.AsObject();
        return new ConfigurationBuilder()
            .AddInMemoryCollection(values.Select(v => KeyValuePair.Create(v.Key.Replace("__", ":", StringComparison.Ordinal), (string?)v.Value)))
            .Build();
    }

    [Fact]
    public void SampleSettings_BindToValidScorerOptionsForAzurite()
    {
        var options = SampleSettings().GetSection(ScorerOptions.SectionName).Get<ScorerOptions>()!;

        options.Validate();
        Assert.Equal("UseDevelopmentStorage=true", options.StorageConnectionString);
        Assert.Equal(MessageTransport.StorageQueue, options.SliceTransport);
        Assert.Equal(Pipeline.PipelineNames.SliceRequestsQueue, options.SliceQueueName);
        Assert.Equal(Pipeline.PipelineNames.SliceResultsQueue, options.ResultQueueName);
        Assert.False(options.PreferCuda);
        Assert.True(options.DrainTimeout < TimeSpan.FromSeconds(120), "the drain must end within Container Apps' 120 s grace period");

        // The sample is what a local scorer container is started from: it keeps the short default lock (30 s, renewed
        // every 10 s), so a replica that dies on a chunk gives it back in seconds, not after the old 5 minutes.
        Assert.Equal(ScorerOptions.DefaultMessageLockDuration, options.MessageLockDuration);
    }

    [Fact]
    public void RestrictLesionsToLungs_OnByDefault_BindsFromTheScorerSection()
    {
        Assert.True(SampleSettings().GetSection(ScorerOptions.SectionName).Get<ScorerOptions>()!.RestrictLesionsToLungs);
        var configuration = new ConfigurationBuilder()
            .AddConfiguration(SampleSettings())
            .AddInMemoryCollection([KeyValuePair.Create<string, string?>("Scorer:RestrictLesionsToLungs", "false")])
            .Build();

        Assert.False(configuration.GetSection(ScorerOptions.SectionName).Get<ScorerOptions>()!.RestrictLesionsToLungs);
    }

    [Fact]
    public void SampleSettings_ListEveryScorerSetting()
    {
        var keys = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "local.settings.sample.json")))!["Values"]!.AsObject()
            .Select(v => v.Key).ToHashSet(StringComparer.Ordinal);
        var settable = Settable(typeof(ScorerOptions), ScorerOptions.SectionName)
            .Concat(Settable(typeof(Pipeline.Scoring.ScoringOptions), Pipeline.Scoring.ScoringOptions.SectionName))
            // Not a setting of its own: ScorerApp sets it from Scorer__MaxDeliveryCount (see ScorerHostTests).
            .Where(k => k != "Scoring__MaxDeliveryCount")
            .ToList();

        Assert.Contains("Scorer__RestrictLesionsToLungs", settable);
        var missing = settable.Where(k => !keys.Contains(k)).ToList();
        Assert.True(missing.Count == 0, $"local.settings.sample.json lacks {string.Join(", ", missing)}");
    }

    private static IEnumerable<string> Settable(Type options, string section) =>
        options.GetProperties().Where(p => p.SetMethod is { IsPublic: true }).Select(p => $"{section}__{p.Name}");

    [Theory]
    [InlineData("ExecutionProvider", "Rocm")]
    [InlineData("MaxConcurrentCalls", "0")]
    [InlineData("MaxDeliveryCount", "0")]
    [InlineData("SliceQueueName", " ")]
    // Outside the Storage queue's documented visibility range (whole seconds, 1 s to 7 days), or too short to renew in:
    // before, accepted at start-up; a negative poll interval failed the consumer only after the models had loaded.
    [InlineData("MessageLockDuration", "00:00:00")]
    [InlineData("MessageLockDuration", "00:00:00.500")]
    [InlineData("MessageLockDuration", "8.00:00:00")]
    [InlineData("PollInterval", "-00:00:01")]
    [InlineData("PollInterval", "00:00:00")]
    public void Validate_RefusesOutOfRangeSettingsByName(string setting, string value)
    {
        var configuration = new ConfigurationBuilder()
            .AddConfiguration(SampleSettings())
            .AddInMemoryCollection([KeyValuePair.Create<string, string?>($"Scorer:{setting}", value)])
            .Build();
        var options = configuration.GetSection(ScorerOptions.SectionName).Get<ScorerOptions>()!;

        var error = Assert.Throws<InvalidOperationException>(options.Validate);
        Assert.Contains($"Scorer:{setting}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_RequiresStorage()
    {
        var error = Assert.Throws<InvalidOperationException>(new ScorerOptions().Validate);
        Assert.Contains("Scorer:StorageConnectionString", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InferenceSession_RunsBatchesOfScoringBatchSize()
    {
        // The handler hands the models Scoring:BatchSize slices at a time; the session must not split them again at
        // its own default of 8 (a GPU set to 32 ran batches of 8 before).
        var configuration = new ConfigurationBuilder()
            .AddConfiguration(SampleSettings())
            .AddInMemoryCollection([KeyValuePair.Create<string, string?>("Scoring:BatchSize", "32")])
            .Build();
        var scorer = configuration.GetSection(ScorerOptions.SectionName).Get<ScorerOptions>()!;
        var scoring = configuration.GetSection(Pipeline.Scoring.ScoringOptions.SectionName).Get<Pipeline.Scoring.ScoringOptions>()!;

        var inference = ScorerWorker.InferenceOptionsFor(scorer, scoring);

        Assert.Equal(32, inference.MaxBatch);
        Assert.Equal(scorer.IntraOpThreads, inference.IntraOpThreads);
        Assert.Equal(scorer.RestrictLesionsToLungs, inference.RestrictLesionsToLungs);
        inference.Validate();
    }

    [Fact]
    public void CpuMemArena_OnByDefault_ReachesTheInferenceSession()
    {
        var scoring = new Pipeline.Scoring.ScoringOptions();
        var sample = SampleSettings().GetSection(ScorerOptions.SectionName).Get<ScorerOptions>()!;
        var configuration = new ConfigurationBuilder()
            .AddConfiguration(SampleSettings())
            .AddInMemoryCollection([KeyValuePair.Create<string, string?>("Scorer:CpuMemArena", "false")])
            .Build();
        var enabled = configuration.GetSection(ScorerOptions.SectionName).Get<ScorerOptions>()!;

        Assert.True(sample.CpuMemArena);
        Assert.True(new ScorerOptions().CpuMemArena);
        Assert.True(ScorerWorker.InferenceOptionsFor(sample, scoring).CpuMemArena);
        Assert.False(ScorerWorker.InferenceOptionsFor(enabled, scoring).CpuMemArena);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-3")]
    [InlineData("2048")]
    public void ScoringBatchSize_OutOfRange_IsRefusedByName(string value)
    {
        var scoring = new ConfigurationBuilder()
            .AddInMemoryCollection([KeyValuePair.Create<string, string?>("Scoring:BatchSize", value)])
            .Build()
            .GetSection(Pipeline.Scoring.ScoringOptions.SectionName).Get<Pipeline.Scoring.ScoringOptions>()!;

        var error = Assert.Throws<ArgumentException>(scoring.Validate);
        Assert.Contains("Scoring:BatchSize", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Scorer", "DrainTimout")]
    [InlineData("Scoring", "BatchSise")]
    public void Startup_RefusesAMisspeltScorerSettingByName(string section, string key)
    {
        // A misspelt key would otherwise leave its default silently; the host stops before anything runs.
        var error = Assert.Throws<InvalidOperationException>(() => ScorerApp.Build([], c => c.AddConfiguration(new ConfigurationBuilder()
            .AddConfiguration(SampleSettings())
            .AddInMemoryCollection([KeyValuePair.Create<string, string?>($"{section}:{key}", "1")])
            .Build())));

        Assert.Contains($"{section}:{key} ({section}__{key})", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Startup_RefusesAnInferenceSetting_NamingTheScorersOwn()
    {
        // Inference__* is covidfn's (up, screen, segment, classify); in the scorer it would change nothing silently.
        var error = Assert.Throws<InvalidOperationException>(() => ScorerApp.Build([], c => c.AddConfiguration(new ConfigurationBuilder()
            .AddConfiguration(SampleSettings())
            .AddInMemoryCollection([KeyValuePair.Create<string, string?>("Inference:IntraOpThreads", "2")])
            .Build())));

        Assert.Contains("Inference:IntraOpThreads (Inference__IntraOpThreads) changes nothing in the scorer", error.Message, StringComparison.Ordinal);
        Assert.Contains("Scorer__IntraOpThreads", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Startup_RefusesScoringMaxDeliveryCount_NamingTheScorersOwn()
    {
        // The scorer hands the handler Scorer:MaxDeliveryCount (the consumer's count); Scoring:MaxDeliveryCount was
        // accepted, then replaced by it: an operator's value changed nothing, silently.
        var error = Assert.Throws<InvalidOperationException>(() => ScorerApp.Build([], c => c.AddConfiguration(new ConfigurationBuilder()
            .AddConfiguration(SampleSettings())
            .AddInMemoryCollection([KeyValuePair.Create<string, string?>("Scoring:MaxDeliveryCount", "3")])
            .Build())));

        Assert.Contains("Scoring:MaxDeliveryCount (Scoring__MaxDeliveryCount) changes nothing in the scorer", error.Message, StringComparison.Ordinal);
        Assert.Contains("Scorer__MaxDeliveryCount", error.Message, StringComparison.Ordinal);
    }
}
