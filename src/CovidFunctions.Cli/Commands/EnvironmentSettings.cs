using System.Collections;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// One configuration section from environment variables, as the configuration's environment-variable source builds it
/// for the Function app and the scorer: <c>Section__Key</c> is <c>Section:Key</c>, and the name's prefix is
/// case-insensitive (as configuration keys are). covidfn has no host builder, so its commands read their sections here.
/// </summary>
public static class EnvironmentSettings
{
    /// <summary>The <paramref name="sectionName"/> section of <paramref name="environment"/> (empty when no variable names it).</summary>
    public static IConfigurationSection Section(IDictionary environment, string sectionName)
    {
        ArgumentNullException.ThrowIfNull(environment);
        ArgumentException.ThrowIfNullOrEmpty(sectionName);
        var prefix = sectionName + "__";
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry entry in environment)
        {
            if (entry.Key is string name && name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                values[name.Replace("__", ":", StringComparison.Ordinal)] = entry.Value as string;
            }
        }

        return new ConfigurationBuilder().AddInMemoryCollection(values).Build().GetSection(sectionName);
    }

    /// <summary>
    /// The keys of <paramref name="section"/> that <paramref name="selected"/> picks, by their environment names
    /// (<c>Section__Key</c>, the key as given), in ordinal order: the settings a command names as ignored.
    /// </summary>
    public static List<string> GivenNames(IConfigurationSection section, Func<string, bool> selected)
    {
        ArgumentNullException.ThrowIfNull(section);
        ArgumentNullException.ThrowIfNull(selected);
        return section.GetChildren()
            .Select(c => c.Key)
            .Where(selected)
            .Select(k => $"{section.Path}__{k}")
            .Order(StringComparer.Ordinal)
            .ToList();
    }
}
