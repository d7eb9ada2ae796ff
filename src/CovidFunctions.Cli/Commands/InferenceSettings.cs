using System.Collections;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Azure.Configuration;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// The inference session settings of the commands that run the models (<c>up</c>, <c>screen</c>, <c>segment</c>,
/// <c>classify</c>): the <c>Inference__*</c> environment variables (section <see cref="InferenceOptions.SectionName"/>,
/// <c>__</c> separating section and key as for the Function app and the scorer) bound to <see cref="InferenceOptions"/>,
/// then the command-line flags, which win. Checked before anything starts, as the scorer checks <c>Scorer__*</c>: a value
/// that does not convert or is out of range, or a key no option reads (a misspelling that would leave the default
/// silently), stops the command with a message naming the setting.
/// </summary>
public static class InferenceSettings
{
    /// <summary>
    /// The settings from this process's environment with <paramref name="modelsDirectory"/> (<c>--models</c>) and
    /// <paramref name="intraOpThreads"/> (<c>--threads</c>) applied over them when given.
    /// </summary>
    /// <exception cref="InvalidOperationException">A setting is unknown, does not convert, or is out of range (named).</exception>
    public static InferenceOptions Load(string? modelsDirectory, int? intraOpThreads) =>
        Load(Environment.GetEnvironmentVariables(), modelsDirectory, intraOpThreads);

    /// <summary><see cref="Load(string?, int?)"/> over the given environment variables.</summary>
    public static InferenceOptions Load(IDictionary environment, string? modelsDirectory, int? intraOpThreads)
    {
        ArgumentNullException.ThrowIfNull(environment);

        var section = EnvironmentSettings.Section(environment, InferenceOptions.SectionName);
        UnknownSettings.Reject(section, [], typeof(InferenceOptions));

        // Get<T> throws naming the key ("Failed to convert configuration value at 'Inference:MaxBatch' ...").
        var options = section.Get<InferenceOptions>() ?? new InferenceOptions();
        if (modelsDirectory is { Length: > 0 })
        {
            options = options with { ModelsDirectory = modelsDirectory };
        }

        if (intraOpThreads is { } threads)
        {
            options = options with { IntraOpThreads = threads };
        }

        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            // Validate names the setting; --threads feeds IntraOpThreads, so say which one was given.
            var flag = intraOpThreads is < 0 ? " (--threads)" : string.Empty;
            throw new InvalidOperationException(e.Message + flag, e);
        }

        return options;
    }
}
