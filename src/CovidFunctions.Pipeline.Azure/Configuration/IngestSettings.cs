using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging;
using CovidFunctions.Imaging.Series;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.Pipeline.Azure.Configuration;

/// <summary>
/// The ingest settings of the hosts that ingest uploads (the Function app, <c>covidfn up</c>), checked when they start:
/// the <c>Imaging</c> section becomes the <see cref="SeriesAssemblyOptions"/> ingest assembles series and expands zips
/// with, and the de-identification options of the <c>Deidentification</c> section are refused. Before, neither host
/// read either section: an <c>Imaging__Zip__MaxEntries</c> or a <c>Deidentification__RetainSafePrivate</c> changed
/// nothing, silently.
/// </summary>
public static class IngestSettings
{
    /// <summary>
    /// The <c>Imaging</c> section as assembly options: a key no option reads (in the section or its <c>Zip</c> child), a
    /// value that does not convert, or one <see cref="ImagingOptionsValidator"/> refuses (the lung window among them: it
    /// is the model's preprocessing contract, not a setting) throws <see cref="InvalidOperationException"/> naming the key.
    /// </summary>
    public static SeriesAssemblyOptions LoadImaging(IConfigurationSection section)
    {
        ArgumentNullException.ThrowIfNull(section);
        UnknownSettings.Reject(section, [], typeof(ImagingOptions));
        UnknownSettings.Reject(section.GetSection(nameof(ImagingOptions.Zip)), [], typeof(ZipLimitOptions));

        // Get<T> throws naming the key ("Failed to convert configuration value at 'Imaging:MinSlices' ...").
        var options = section.Get<ImagingOptions>() ?? new ImagingOptions();
        var result = new ImagingOptionsValidator().Validate(null, options);
        if (result.Failed)
        {
            throw new InvalidOperationException("Invalid imaging setting: " + string.Join("; ", result.Failures ?? [result.FailureMessage]));
        }

        return options.ToSeriesAssemblyOptions();
    }

    /// <summary>
    /// Refuses every de-identification option in the <c>Deidentification</c> section (<c>RetainSafePrivate</c>,
    /// <c>PseudonymLength</c>, ... : the properties of <see cref="DeidentificationOptions"/>): ingest de-identifies with
    /// the project's fixed profile, and an operator who set one would believe it in force. Other keys of the section
    /// (the Function app's key settings) are left to the host.
    /// </summary>
    /// <exception cref="InvalidOperationException">An option is set (every one named).</exception>
    public static void RejectDeidentificationOptions(IConfigurationSection section)
    {
        ArgumentNullException.ThrowIfNull(section);
        var options = typeof(DeidentificationOptions).GetProperties()
            .Where(p => p.SetMethod is { IsPublic: true })
            .Select(p => p.Name);
        var profile = string.Join(", ", new DeidentificationOptions().EnabledOptions.Select(DeidOptionMeanings.Of));
        IgnoredSettings.Reject(
            section,
            options,
            "ingest",
            $"it de-identifies every upload with the project's fixed profile ({profile}; docs/compliance/deid-conformance.md), whatever the configuration says. Remove it. (Only `covidfn deid --retain-safe-private` chooses an option, per run.)");
    }
}
