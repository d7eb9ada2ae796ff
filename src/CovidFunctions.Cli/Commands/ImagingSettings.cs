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

    /// <summary>
    /// The 2-D images of a folder input (<c>segment</c>, <c>classify</c>) less those below a mask or label folder: a
    /// folder under INPUT named as one of the assembly's <see cref="SeriesAssemblyOptions.MaskFolderNames"/> (masks,
    /// labels, edges, gt, annotations, ...; <c>Imaging__MaskFolderNames</c>), the rule ingest picks a 2-D series by.
    /// Research sets ship <c>images/</c> beside <c>masks/</c> and <c>edges/</c> under the same file names
    /// (COVID-SemiSeg's <c>train/</c>); given such a split folder, <c>segment</c> segmented the ground truth too and, every
    /// stem being shared, wrote no mask under its <c>&lt;stem&gt;.png</c> name (all under their relative paths, exit 2).
    /// The folders left out are named with their image counts in one warning line on <paramref name="warnings"/>
    /// (the exit status does not change); INPUT's own name is not looked at. Null, with a line naming INPUT, when no
    /// image is left. A file input is returned as it is.
    /// </summary>
    public static IReadOnlyList<string>? ImagesOutsideMaskFolders(string commandName, string input, IReadOnlyList<string> images, SeriesAssemblyOptions assembly, TextWriter warnings)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(assembly);
        ArgumentNullException.ThrowIfNull(warnings);
        if (!Directory.Exists(input))
        {
            return images;
        }

        var root = Path.GetFullPath(input);
        var kept = new List<string>(images.Count);
        var skipped = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var image in images)
        {
            var segments = Path.GetRelativePath(root, Path.GetFullPath(image)).Replace('\\', '/').Split('/');
            var maskFolder = Array.FindIndex(segments, 0, segments.Length - 1, s => assembly.MaskFolderNames.Contains(s, StringComparer.OrdinalIgnoreCase));
            if (maskFolder < 0)
            {
                kept.Add(image);
                continue;
            }

            var folder = string.Join('/', segments[..(maskFolder + 1)]) + "/";
            skipped[folder] = skipped.GetValueOrDefault(folder) + 1;
        }

        if (skipped.Count > 0)
        {
            warnings.WriteLine($"{commandName}: warning: skipped {skipped.Values.Sum()} image(s) in mask or label folders, not CT slices (Imaging:MaskFolderNames): {string.Join(", ", skipped.Select(p => $"{p.Key} ({p.Value})"))}");
        }

        if (kept.Count == 0)
        {
            warnings.WriteLine($"{commandName}: {input}: no PNG/JPG/TIFF images outside mask or label folders.");
            return null;
        }

        return kept;
    }
}
