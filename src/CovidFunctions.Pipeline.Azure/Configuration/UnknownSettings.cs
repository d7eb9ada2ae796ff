using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.Pipeline.Azure.Configuration;

/// <summary>
/// Start-up check shared by the Function app and the scorer: a key in an option section that no option reads (a typo
/// such as <c>Pipeline__MaxIngestAttemps</c> or <c>Scorer__DrainTimout</c>) would otherwise leave the default silently.
/// </summary>
public static class UnknownSettings
{
    /// <summary>
    /// Throws <see cref="InvalidOperationException"/> naming every key of <paramref name="section"/> that is neither a
    /// public settable property of <paramref name="optionTypes"/> nor in <paramref name="readByName"/>.
    /// </summary>
    public static void Reject(IConfigurationSection section, IReadOnlyCollection<string> readByName, params Type[] optionTypes)
    {
        ArgumentNullException.ThrowIfNull(section);
        ArgumentNullException.ThrowIfNull(readByName);

        // Configuration keys are case-insensitive, as the binder matches them.
        var known = optionTypes
            .SelectMany(t => t.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            .Where(p => p.SetMethod is { IsPublic: true })
            .Select(p => p.Name)
            .Concat(readByName)
            .ToHashSet(StringComparer.OrdinalIgnoreCase);
        var unknown = section.GetChildren().Select(c => c.Key).Where(k => !known.Contains(k)).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0)
        {
            // The environment form of a nested section's key (Imaging:Zip:MaxEntrys) is Imaging__Zip__MaxEntrys.
            throw new InvalidOperationException(
                $"Unknown setting {string.Join(", ", unknown.Select(k => IgnoredSettings.Name(section, k)))}: no option reads it, so it would change nothing. Known {section.Path} settings: {string.Join(", ", known.Order(StringComparer.Ordinal))}.");
        }
    }
}
