using CovidFunctions.Imaging.Archives;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Series;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Imaging;

/// <summary>
/// Imaging settings bound from configuration (section <see cref="SectionName"/>), turned into the immutable
/// <see cref="SeriesAssemblyOptions"/> and <see cref="WindowSettings"/> the library takes. Mutable because the
/// configuration binder fills it; the library's own option records stay immutable (binding into them would mutate
/// their shared defaults).
/// </summary>
public sealed class ImagingOptions
{
    /// <summary>The configuration section, <c>Imaging</c> (e.g. <c>Imaging__WindowLevel</c> in the environment).</summary>
    public const string SectionName = "Imaging";

    /// <summary>
    /// Lung window level in HU: −600, fixed. The window is part of the lung2d-v1 preprocessing contract the models were
    /// trained with (docs/design/preprocessing.md, <see cref="LungPreprocessor"/>): ingest writes it into every tile
    /// manifest and the scorer windows the model's input with it, so another value would change what the model sees.
    /// Bindable only so that a setting of it is refused by name (<see cref="ImagingOptionsValidator"/>) rather than ignored.
    /// </summary>
    public double WindowLevel { get; set; } = WindowSettings.Lung.Level;

    /// <summary>Lung window width in HU: 1500, fixed, as <see cref="WindowLevel"/>.</summary>
    public double WindowWidth { get; set; } = WindowSettings.Lung.Width;

    /// <summary>See <see cref="SeriesAssemblyOptions.MaxAxialAngleDegrees"/>; (0, 90].</summary>
    public double MaxAxialAngleDegrees { get; set; } = SeriesAssemblyOptions.Default.MaxAxialAngleDegrees;

    /// <summary>See <see cref="SeriesAssemblyOptions.PaddingHu"/>.</summary>
    public short PaddingHu { get; set; } = SeriesAssemblyOptions.Default.PaddingHu;

    /// <summary>See <see cref="SeriesAssemblyOptions.TiltReportDegrees"/>; ≥ 0.</summary>
    public double TiltReportDegrees { get; set; } = SeriesAssemblyOptions.Default.TiltReportDegrees;

    /// <summary>See <see cref="SeriesAssemblyOptions.MinSlices"/>; ≥ 1.</summary>
    public int MinSlices { get; set; } = SeriesAssemblyOptions.Default.MinSlices;

    /// <summary>Replaces <see cref="SeriesAssemblyOptions.LungKernelHints"/> when set (null keeps the built-in list).</summary>
    public IList<string>? LungKernelHints { get; set; }

    /// <summary>See <see cref="SeriesAssemblyOptions.MixedImageSizes"/> (<c>Refuse</c> or <c>KeepMostCommonSize</c>).</summary>
    public MixedImageSizePolicy MixedImageSizes { get; set; } = SeriesAssemblyOptions.Default.MixedImageSizes;

    /// <summary>Replaces <see cref="SeriesAssemblyOptions.MaskFolderNames"/> when set (null keeps the built-in list).</summary>
    public IList<string>? MaskFolderNames { get; set; }

    /// <summary>Zip limits for archive uploads (section <c>Imaging:Zip</c>).</summary>
    public ZipLimitOptions Zip { get; set; } = new();

    /// <summary>The lung window as the library takes it.</summary>
    public WindowSettings Window => new(WindowLevel, WindowWidth);

    /// <summary>The assembly options as the library takes them.</summary>
    public SeriesAssemblyOptions ToSeriesAssemblyOptions()
    {
        var defaults = SeriesAssemblyOptions.Default;
        return new SeriesAssemblyOptions
        {
            ZipLimits = Zip.ToZipSafetyLimits(),
            MaxAxialAngleDegrees = MaxAxialAngleDegrees,
            PaddingHu = PaddingHu,
            TiltReportDegrees = TiltReportDegrees,
            MinSlices = MinSlices,
            LungKernelHints = LungKernelHints is { Count: > 0 } hints ? [.. hints] : defaults.LungKernelHints,
            MixedImageSizes = MixedImageSizes,
            MaskFolderNames = MaskFolderNames is { } names ? [.. names] : defaults.MaskFolderNames,
        };
    }
}

/// <summary>Bindable twin of <see cref="ZipSafetyLimits"/> (same defaults).</summary>
public sealed class ZipLimitOptions
{
    public long MaxTotalUncompressedBytes { get; set; } = ZipSafetyLimits.Default.MaxTotalUncompressedBytes;

    public long MaxEntryUncompressedBytes { get; set; } = ZipSafetyLimits.Default.MaxEntryUncompressedBytes;

    public double MaxCompressionRatio { get; set; } = ZipSafetyLimits.Default.MaxCompressionRatio;

    public long RatioCheckThresholdBytes { get; set; } = ZipSafetyLimits.Default.RatioCheckThresholdBytes;

    public int MaxEntries { get; set; } = ZipSafetyLimits.Default.MaxEntries;

    public int MaxNameLength { get; set; } = ZipSafetyLimits.Default.MaxNameLength;

    public ZipSafetyLimits ToZipSafetyLimits() => new()
    {
        MaxTotalUncompressedBytes = MaxTotalUncompressedBytes,
        MaxEntryUncompressedBytes = MaxEntryUncompressedBytes,
        MaxCompressionRatio = MaxCompressionRatio,
        RatioCheckThresholdBytes = RatioCheckThresholdBytes,
        MaxEntries = MaxEntries,
        MaxNameLength = MaxNameLength,
    };
}

/// <summary>Checks <see cref="ImagingOptions"/> when the host starts (every failure listed, with its key).</summary>
public sealed class ImagingOptionsValidator : IValidateOptions<ImagingOptions>
{
    public ValidateOptionsResult Validate(string? name, ImagingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        void Require(bool ok, string key, string rule)
        {
            if (!ok)
            {
                failures.Add($"{ImagingOptions.SectionName}:{key} {rule}");
            }
        }

        // The window is the model's input contract, not an operator's choice: a different value is refused, not applied.
        const string contract = "is part of the lung2d-v1 preprocessing contract the models were trained with (docs/design/preprocessing.md): the scorer windows the model's input with it, so another value would change what the model sees. Remove the setting";
        Require(options.WindowLevel == WindowSettings.Lung.Level, nameof(options.WindowLevel), FormattableString.Invariant($"is fixed at {WindowSettings.Lung.Level} HU: it {contract}"));
        Require(options.WindowWidth == WindowSettings.Lung.Width, nameof(options.WindowWidth), FormattableString.Invariant($"is fixed at {WindowSettings.Lung.Width} HU: it {contract}"));
        Require(options.MaxAxialAngleDegrees > 0 && options.MaxAxialAngleDegrees <= 90, nameof(options.MaxAxialAngleDegrees), "must be in (0, 90] degrees");
        Require(double.IsFinite(options.TiltReportDegrees) && options.TiltReportDegrees >= 0, nameof(options.TiltReportDegrees), "must be ≥ 0 degrees");
        Require(options.MinSlices >= 1, nameof(options.MinSlices), "must be ≥ 1");
        Require(Enum.IsDefined(options.MixedImageSizes), nameof(options.MixedImageSizes), "must be Refuse or KeepMostCommonSize");
        Require(options.LungKernelHints is null || options.LungKernelHints.All(h => !string.IsNullOrWhiteSpace(h)), nameof(options.LungKernelHints), "must not hold empty names");
        Require(options.MaskFolderNames is null || options.MaskFolderNames.All(h => !string.IsNullOrWhiteSpace(h)), nameof(options.MaskFolderNames), "must not hold empty names");
        var zip = options.Zip;
        if (zip is null)
        {
            failures.Add($"{ImagingOptions.SectionName}:Zip is missing");
        }
        else
        {
            Require(zip.MaxTotalUncompressedBytes > 0, "Zip:MaxTotalUncompressedBytes", "must be positive");
            Require(zip.MaxEntryUncompressedBytes > 0 && zip.MaxEntryUncompressedBytes <= zip.MaxTotalUncompressedBytes, "Zip:MaxEntryUncompressedBytes", "must be positive and at most MaxTotalUncompressedBytes");
            Require(double.IsFinite(zip.MaxCompressionRatio) && zip.MaxCompressionRatio >= 1, "Zip:MaxCompressionRatio", "must be ≥ 1");
            Require(zip.RatioCheckThresholdBytes >= 0, "Zip:RatioCheckThresholdBytes", "must be ≥ 0");
            Require(zip.MaxEntries >= 1, "Zip:MaxEntries", "must be ≥ 1");
            Require(zip.MaxNameLength >= 1, "Zip:MaxNameLength", "must be ≥ 1");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
