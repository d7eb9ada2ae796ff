using System.Collections;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Pipeline.Azure.Configuration;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// The <c>Imaging__*</c> settings of the commands that assemble CT series (<c>up</c>, <c>screen</c>, <c>segment</c>,
/// <c>classify</c>): the environment's <c>Imaging</c> section as the Function app reads it
/// (<see cref="IngestSettings.LoadImaging"/>), so an offline run assembles a series, and expands a zip, exactly as the
/// pipeline does. Checked before anything is read: a key no option reads, a value that does not convert or is out of
/// range, or the lung window (the models' preprocessing contract) stops the command naming the setting. Before, the
/// offline commands used the library's defaults whatever the environment said.
/// </summary>
public static class ImagingSettings
{
    /// <summary>The assembly options from this process's environment.</summary>
    /// <exception cref="InvalidOperationException">A setting is unknown, does not convert, or is out of range (named).</exception>
    public static SeriesAssemblyOptions Load() => Load(Environment.GetEnvironmentVariables());

    /// <summary><see cref="Load()"/> over the given environment variables.</summary>
    public static SeriesAssemblyOptions Load(IDictionary environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        return IngestSettings.LoadImaging(EnvironmentSettings.Section(environment, ImagingOptions.SectionName));
    }

    /// <summary>
    /// For the commands that run ingest (<c>up</c>, <c>screen</c>): <see cref="Load(IDictionary)"/>, after refusing the
    /// de-identification options of the <c>Deidentification</c> section (<see cref="IngestSettings.RejectDeidentificationOptions"/>):
    /// ingest de-identifies with its fixed profile, whatever they say.
    /// </summary>
    /// <exception cref="InvalidOperationException">A setting is refused (named).</exception>
    public static SeriesAssemblyOptions LoadForIngest(IDictionary environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        IngestSettings.RejectDeidentificationOptions(EnvironmentSettings.Section(environment, DeidentificationOptions.SectionName));
        return Load(environment);
    }
}
