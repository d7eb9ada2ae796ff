using System.Text.Json.Nodes;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.Scorer.Tests;

/// <summary>
/// <c>Scorer:HungChunkAfter</c>: how long a chunk is scored before the replica's delivery gate takes it as hung. Before,
/// the bound was the gate's constant (2 min), the same on a GPU and on a slow CPU, and no setting could change it. It
/// reaches the consumer the scorer runs, and a value outside 30 s..15 min stops start-up naming the setting.
/// </summary>
public sealed class HungChunkAfterTests
{
    private static IConfiguration Settings(params (string Key, string Value)[] overrides)
    {
        var values = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "local.settings.sample.json")))!["Values"]!.AsObject();
        return new ConfigurationBuilder()
            .AddInMemoryCollection(values.Select(v => KeyValuePair.Create(v.Key.Replace("__", ":", StringComparison.Ordinal), (string?)v.Value)))
            .AddInMemoryCollection(overrides.Select(o => KeyValuePair.Create<string, string?>(o.Key, o.Value)))
            .Build();
    }

    [Fact]
    public void The_default_is_the_gates_two_minutes_and_the_sample_says_so()
    {
        var sample = Settings().GetSection(ScorerOptions.SectionName).Get<ScorerOptions>()!;

        Assert.Equal(TimeSpan.FromMinutes(2), new ScorerOptions().HungChunkAfter);
        Assert.Equal(DeliveryGate.DefaultHungAfter, new ScorerOptions().HungChunkAfter);
        Assert.Equal(DeliveryGate.DefaultHungAfter, sample.HungChunkAfter);
        Assert.Equal(DeliveryGate.DefaultHungAfter, new ConsumerOptions().HungAfter);
    }

    [Fact]
    public void A_configured_bound_reaches_the_consumer_the_scorer_runs()
    {
        var options = Settings(("Scorer:HungChunkAfter", "00:05:00")).GetSection(ScorerOptions.SectionName).Get<ScorerOptions>()!;
        options.Validate();

        var consumer = ScorerWorker.ConsumerOptionsFor(options, deadLetterHook: null);

        Assert.Equal(TimeSpan.FromMinutes(5), consumer.HungAfter);
        Assert.Equal(new DeliveryGate(consumer.HungAfter).HungAfter, consumer.HungAfter); // a bound the gate accepts

        // The rest as before.
        Assert.Equal(
            (options.MaxConcurrentCalls, options.MaxDeliveryCount, options.MessageLockDuration, options.PollInterval),
            (consumer.MaxConcurrency, consumer.MaxDeliveryCount, consumer.VisibilityTimeout, consumer.PollInterval));
    }

    [Theory]
    [InlineData("00:00:00")]
    [InlineData("-00:00:01")]
    [InlineData("00:00:10")] // a slow healthy CPU chunk would be taken as hung
    [InlineData("00:15:01")] // a chunk held back that long nears the end of its 30-min lock renewal
    [InlineData("01:00:00")]
    public void A_bound_out_of_range_stops_startup_naming_the_setting_and_its_range(string value)
    {
        var error = Assert.Throws<InvalidOperationException>(() => ScorerApp.Build([], c => c.AddConfiguration(Settings(("Scorer:HungChunkAfter", value)))));

        Assert.Contains("Scorer:HungChunkAfter must be between 00:00:30", error.Message, StringComparison.Ordinal);
        Assert.Contains("and 00:15:00", error.Message, StringComparison.Ordinal);
        Assert.Contains($"(got '{TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture)}')", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("00:00:30")]
    [InlineData("00:15:00")]
    public void The_ends_of_the_range_are_accepted(string value)
    {
        var options = Settings(("Scorer:HungChunkAfter", value)).GetSection(ScorerOptions.SectionName).Get<ScorerOptions>()!;

        options.Validate();
        Assert.Equal(TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture), options.HungChunkAfter);
    }
}
