using Microsoft.Extensions.Configuration;

namespace CovidFunctions.Pipeline.Azure.Configuration;

/// <summary>
/// Start-up refusal of a setting a host is given but does not act on: a key bound by an option record shared with
/// another host (<c>Webhooks__RetryPollInterval</c> in the Function app), replaced by the host's own value
/// (<c>Scoring__MaxDeliveryCount</c> in the scorer), another program's section (<c>Inference__*</c> in the scorer), or
/// an option the host fixes (<c>Deidentification__RetainSafePrivate</c> in ingest). An operator who set one would
/// believe it in force. Every such refusal says it in one shape:
/// <c>Section:Key (Section__Key) changes nothing in HOST: WHY</c>.
/// </summary>
public static class IgnoredSettings
{
    /// <summary>
    /// Throws <see cref="InvalidOperationException"/> naming each of <paramref name="keys"/> that is set in
    /// <paramref name="section"/> (keys compare case-insensitively, as the binder matches them).
    /// </summary>
    /// <param name="section">The section the keys belong to (<c>Webhooks</c>, <c>Scoring</c>, ...).</param>
    /// <param name="keys">The keys the host does not act on.</param>
    /// <param name="host">Where the setting changes nothing ("the Function app", "the scorer", "ingest").</param>
    /// <param name="why">Why, and what to do instead (a full sentence or more, after the colon).</param>
    public static void Reject(IConfigurationSection section, IEnumerable<string> keys, string host, string why)
    {
        ArgumentNullException.ThrowIfNull(section);
        ArgumentNullException.ThrowIfNull(keys);
        var refused = keys.ToHashSet(StringComparer.OrdinalIgnoreCase);
        var set = section.GetChildren()
            .Select(c => refused.TryGetValue(c.Key, out var key) ? key : null)
            .OfType<string>()
            .Order(StringComparer.Ordinal)
            .ToList();
        if (set.Count > 0)
        {
            throw new InvalidOperationException(
                $"{string.Join(", ", set.Select(k => Name(section, k)))} {(set.Count == 1 ? "changes" : "change")} nothing in {host}: {why}");
        }
    }

    /// <summary>As <see cref="Reject"/> for every key of <paramref name="section"/>: the host reads none of it.</summary>
    public static void RejectSection(IConfigurationSection section, string host, string why)
    {
        ArgumentNullException.ThrowIfNull(section);
        Reject(section, section.GetChildren().Select(c => c.Key).ToList(), host, why);
    }

    /// <summary>
    /// A key of <paramref name="section"/> as the refusals name it: its configuration path and its environment form,
    /// <c>Imaging:Zip:MaxEntries (Imaging__Zip__MaxEntries)</c>.
    /// </summary>
    public static string Name(IConfigurationSection section, string key)
    {
        ArgumentNullException.ThrowIfNull(section);
        return $"{section.Path}:{key} ({section.Path.Replace(":", "__", StringComparison.Ordinal)}__{key})";
    }
}
