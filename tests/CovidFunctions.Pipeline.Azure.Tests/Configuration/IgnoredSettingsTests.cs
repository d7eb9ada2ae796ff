using CovidFunctions.Pipeline.Azure.Configuration;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.Pipeline.Azure.Tests.Configuration;

/// <summary>
/// The one shape of every "this setting changes nothing here" refusal (<see cref="IgnoredSettings"/>): the key as a
/// configuration path and as an environment variable, the host, and why.
/// </summary>
public sealed class IgnoredSettingsTests
{
    [Fact]
    public void A_refused_key_that_is_set_is_named_in_both_forms_whatever_its_case()
    {
        var section = Configuration(("Webhooks:retrypollinterval", "00:00:10"), ("Webhooks:MaxRetries", "3")).GetSection("Webhooks");

        var error = Assert.Throws<InvalidOperationException>(() => IgnoredSettings.Reject(section, ["RetryPollInterval"], "the Function app", "it has its own timer."));

        Assert.Equal("Webhooks:RetryPollInterval (Webhooks__RetryPollInterval) changes nothing in the Function app: it has its own timer.", error.Message);
    }

    [Fact]
    public void Keys_that_are_not_set_or_not_refused_pass()
    {
        IgnoredSettings.Reject(Configuration(("Webhooks:MaxRetries", "3")).GetSection("Webhooks"), ["RetryPollInterval"], "the Function app", "-");
        IgnoredSettings.RejectSection(Configuration(("Other:X", "1")).GetSection("Inference"), "the scorer", "-");
    }

    [Fact]
    public void A_whole_section_names_every_key_set_in_order_and_a_nested_one_in_its_environment_form()
    {
        var configuration = Configuration(("Inference:MaxBatch", "4"), ("Inference:IntraOpThreads", "2"), ("Imaging:Zip:MaxEntries", "3"));

        var whole = Assert.Throws<InvalidOperationException>(() => IgnoredSettings.RejectSection(configuration.GetSection("Inference"), "the scorer", "it reads its own."));
        var nested = Assert.Throws<InvalidOperationException>(() => IgnoredSettings.Reject(configuration.GetSection("Imaging:Zip"), ["MaxEntries"], "here", "why."));

        Assert.Equal("Inference:IntraOpThreads (Inference__IntraOpThreads), Inference:MaxBatch (Inference__MaxBatch) change nothing in the scorer: it reads its own.", whole.Message);
        Assert.StartsWith("Imaging:Zip:MaxEntries (Imaging__Zip__MaxEntries) changes nothing in here", nested.Message, StringComparison.Ordinal);
    }

    private static IConfigurationRoot Configuration(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => KeyValuePair.Create(v.Key, (string?)v.Value))).Build();
}
