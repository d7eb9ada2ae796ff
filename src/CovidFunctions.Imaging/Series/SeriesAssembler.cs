using System.Globalization;
using CovidFunctions.Dicom;
using CovidFunctions.Imaging.Archives;
using CovidFunctions.Imaging.Nifti;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Volumes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Imaging.Series;

/// <summary>
/// From an upload to one well-ordered axial CT stack in HU: scans a DICOM file, folder or zip (or reads a NIfTI
/// volume), groups by study and series, chooses the series to screen and says why, orders its slices by
/// ImagePositionPatient projected on the slice normal, reports gaps, duplicate positions, variable spacing and gantry
/// tilt, and refuses what cannot be ordered (<see cref="SeriesAssemblyException"/> with the reason).
/// </summary>
/// <remarks>
/// Selection ranks eligible series (CT, not a localizer, one sample per pixel, axial: normal within
/// <see cref="SeriesAssemblyOptions.MaxAxialAngleDegrees"/> of head–feet) by: ORIGINAL before DERIVED, most slices,
/// thinnest slices, lung kernel, then lowest series number. Output orientation: in-plane flips bring an axis-aligned
/// axial image to the standard display (rows run to the patient's left, columns to posterior); slices go feet to
/// head. Headers are read first (pixel data is not touched); pixels are decoded slice by slice on demand.
/// An input without DICOM images whose files are PNG/JPEG/TIFF (by signature) becomes one series of 2-D images
/// (<see cref="AssembledSeries.ValueKind"/> <c>unit</c>): the folder with the most images (mask/label folders never),
/// in natural file-name order (<see cref="NaturalSortComparer"/>), one size per stack
/// (<see cref="SeriesAssemblyOptions.MixedImageSizes"/>). When DICOM images are present they win and the 2-D images
/// are listed in <see cref="AssemblyReport.SkippedSources"/>.
/// </remarks>
public static class SeriesAssembler
{
    /// <summary>Assembles the series to screen from a DICOM file, a folder (recursive), a zip, or a NIfTI file.</summary>
    public static AssembledSeries Assemble(string path, SeriesAssemblyOptions? options = null) => Assemble(path, options, null);

    /// <summary>
    /// Assembles the series to screen from a DICOM file, a folder (recursive), a zip, a NIfTI file, or a folder/zip
    /// of 2-D PNG/JPEG/TIFF slices, and logs what was chosen and why, the files left out and the geometry findings to
    /// <paramref name="logger"/> (when given).
    /// </summary>
    public static AssembledSeries Assemble(string path, SeriesAssemblyOptions? options, ILogger? logger)
    {
        ArgumentNullException.ThrowIfNull(path);
        options ??= SeriesAssemblyOptions.Default;
        logger ??= NullLogger.Instance;
        try
        {
            AssembledSeries series;
            if (File.Exists(path) && NiftiFile.HasNiftiExtension(path))
            {
                series = AssembledSeries.FromNifti(path);
            }
            else
            {
                var sources = SliceSources.Open(path, options.ZipLimits);
                try
                {
                    series = Assemble(sources, options);
                }
                catch
                {
                    sources.Dispose();
                    throw;
                }
            }

            LogReport(logger, path, series);
            return series;
        }
        catch (ImagingException ex)
        {
            ImagingLog.AssemblyRefused(logger, path, ex.Reason ?? "unknown", ex.Message);
            throw;
        }
    }

    private static void LogReport(ILogger logger, string path, AssembledSeries series)
    {
        var report = series.Report;
        ImagingLog.SeriesSelected(logger, path, series.SliceCount, report.InputKind, report.SelectionReason);
        foreach (var other in report.Others)
        {
            ImagingLog.SeriesNotChosen(logger, path, Describe(other), other.ExclusionReason ?? "ranked lower");
        }

        if (report.SkippedSources.Count > 0)
        {
            ImagingLog.SourcesSkipped(logger, path, report.SkippedSources.Count);
            foreach (var skipped in report.SkippedSources)
            {
                ImagingLog.SourceSkipped(logger, path, skipped);
            }
        }

        foreach (var issue in report.Issues)
        {
            ImagingLog.GeometryIssueFound(logger, path, issue.Kind, issue.Message);
        }
    }

    private static AssembledSeries Assemble(SliceSources sources, SeriesAssemblyOptions options)
    {
        var slices = new List<SliceInfo>();
        var skipped = new List<SkippedSource>();
        var images = new List<int>();
        for (var i = 0; i < sources.Count; i++)
        {
            DicomFile file;
            try
            {
                file = sources.ReadHeader(i);
            }
            catch (DicomException ex)
            {
                // Not DICOM: a 2-D image (by signature), or neither. Only non-DICOM sources pay for the sniff.
                if (IsImage(sources, i))
                {
                    images.Add(i);
                }
                else if (HasDicomHeader(sources, i))
                {
                    // The header reads, its Pixel Data does not (declared longer than the file, cut off): this instance.
                    skipped.Add(new(sources.NameOf(i), SkipKind.DefectiveImage, $"{DicomScanner.DefectNote}: Pixel Data cannot be read ({ex.Message})"));
                }
                else
                {
                    skipped.Add(new(sources.NameOf(i), SkipKind.NotAnImage, $"neither DICOM nor a PNG/JPEG/TIFF image ({ex.Message})"));
                }

                continue;
            }

            IReadOnlyList<SliceInfo> described;
            SkippedSource? skip;
            try
            {
                described = DicomScanner.Describe(file, sources.NameOf(i), i, out skip, sources.UnreadPixelDataSourceBytes(i));
            }
            catch (DicomException ex)
            {
                // A value of this instance's header that cannot be read as what it is (a sequence where text is meant):
                // this instance is left out, not the whole input refused.
                skipped.Add(new(sources.NameOf(i), SkipKind.DefectiveImage, $"{DicomScanner.DefectNote}: its header cannot be read ({ex.Message})"));
                continue;
            }

            if (described.Count == 0 && IsImage(sources, i))
            {
                images.Add(i);
                continue;
            }

            if (skip is not null)
            {
                skipped.Add(skip);
            }

            slices.AddRange(described);
        }

        slices = LeaveOutWhatTheirSeriesHas(slices, skipped);
        slices = LeaveOutOtherPatients(slices, skipped, sources);
        if (slices.Count == 0 && images.Count > 0)
        {
            return AssembleImages(sources, images, skipped, options);
        }

        // DICOM wins over 2-D images in the same input: the images are recorded, not stacked with the CT.
        skipped.AddRange(images.Select(i => new SkippedSource(sources.NameOf(i), SkipKind.ImageBesideDicom, "2-D image not used, the input holds DICOM images")));
        if (slices.Count == 0)
        {
            // When instances were left out for their own image attributes, nothing screenable remains because of them: say which and why.
            var defects = skipped.Where(s => s.Kind == SkipKind.DefectiveImage).ToList();
            var why = defects.Count == 0
                ? string.Empty
                : $"; {defects.Count} DICOM image(s) left out for defective image attributes: {string.Join("; ", defects.Take(3).Select(s => s.Note))}{(defects.Count > 3 ? $"; and {defects.Count - 3} more" : string.Empty)}";
            throw new SeriesAssemblyException($"{sources.Description}: no DICOM images or 2-D images found ({sources.Count} files examined){why}")
            {
                FilePath = sources.Description,
                Reason = "no-images",
            };
        }

        var groups = slices
            .GroupBy(s => (s.StudyInstanceUid, s.SeriesInstanceUid))
            .Select(g => Evaluate(g.ToList(), options))
            .ToList();
        var eligible = groups.Where(g => g.Summary.Eligible).ToList();
        if (eligible.Count == 0)
        {
            var why = string.Join("; ", groups.Select(g => $"series {Describe(g.Summary)}: {g.Summary.ExclusionReason}"));
            throw new SeriesAssemblyException($"{sources.Description}: no series can be screened ({why})")
            {
                FilePath = sources.Description,
                Reason = "no-eligible-series",
            };
        }

        var ranked = eligible.OrderBy(g => g, new CandidateComparer(options)).ToList();
        var chosen = ranked[0];
        var reason = SelectionReason(chosen, ranked.Skip(1).FirstOrDefault(), options);
        var others = groups.Where(g => !ReferenceEquals(g, chosen)).Select(g => g.Summary).ToList();
        return Order(chosen, reason, others, skipped, sources, options);
    }

    /// <summary>
    /// The single-frame instances that lack an image attribute (<see cref="SliceInfo.AbsentAttributes"/>) which other
    /// instances of their series have are left out, each with a note naming the file and the attribute: defaulted, it
    /// would misplace the slice or shift its HU. An attribute no instance of the series has keeps today's series-level
    /// handling (the default, or <c>missing-geometry</c> for positions).
    /// </summary>
    private static List<SliceInfo> LeaveOutWhatTheirSeriesHas(List<SliceInfo> slices, List<SkippedSource> skipped)
    {
        if (slices.TrueForAll(s => s.AbsentAttributes.Count == 0))
        {
            return slices;
        }

        var left = new HashSet<SliceInfo>(ReferenceEqualityComparer.Instance);
        foreach (var series in slices.GroupBy(s => (s.StudyInstanceUid, s.SeriesInstanceUid)))
        {
            var members = series.ToList();
            foreach (var slice in members.Where(s => s.AbsentAttributes.Count > 0))
            {
                var others = members.Count(s => !ReferenceEquals(s, slice) && s.FrameIndex == 0);
                var missing = slice.AbsentAttributes
                    .Select(a => (Name: a, Having: members.Count(s => !s.AbsentAttributes.Contains(a))))
                    .Where(a => a.Having > 0)
                    .ToList();
                if (missing.Count > 0)
                {
                    left.Add(slice);
                    var having = missing.Min(a => a.Having);
                    var which = having == others ? $"the other {others}" : $"{having} of the other {others}";
                    skipped.Add(new(slice.SourceName, SkipKind.DefectiveImage, $"{DicomScanner.DefectNote}: {string.Join(", ", missing.Select(a => a.Name))} missing, which {which} image(s) of its series have"));
                }
            }
        }

        return [.. slices.Where(s => !left.Contains(s))];
    }

    /// <summary>The patient attributes compared within a series, in order, each with how a note names it.</summary>
    private static readonly (string Name, Func<PatientIdentity, string?> Value)[] PatientChecks =
    [
        ("patient identity (PatientID and its issuer, or PatientName where there is no PatientID)", p => p.Key),
        ("Patient's Birth Date", p => p.BirthDate),
        ("Patient's Sex", p => p.Sex),
    ];

    /// <summary>
    /// The instances of a series (one Study and Series Instance UID) whose patient is not the patient of more than half
    /// of its instances are left out, each with a note naming the file and "another patient" (never the identities): a
    /// slice of another patient screened with the rest would put that patient's lungs into this patient's diagnosis.
    /// Compared in turn: the identity the pseudonym is keyed on (after de-identification, the pseudonym itself), then
    /// Patient's Birth Date and Sex among the instances that have one (de-identification empties the birth date, and the
    /// sex unless patient characteristics are retained: then they are not compared). A series in which no patient has
    /// more than half of the instances (half and half) is refused (<c>mixed-patients</c>): which patient the series is
    /// of cannot be told, and a diagnosis over two patients is wrong. Instances, not frames, are counted.
    /// </summary>
    private static List<SliceInfo> LeaveOutOtherPatients(List<SliceInfo> slices, List<SkippedSource> skipped, SliceSources sources)
    {
        var left = new HashSet<int>();
        foreach (var series in slices.GroupBy(s => (s.StudyInstanceUid, s.SeriesInstanceUid)))
        {
            var instances = series.GroupBy(s => s.SourceIndex).Select(g => g.First()).ToList();
            var kept = instances;
            foreach (var (name, value) in PatientChecks)
            {
                var known = kept.Where(i => value(i.Patient) is not null).ToList();
                var patients = known.GroupBy(i => value(i.Patient)!, StringComparer.Ordinal).OrderByDescending(g => g.Count()).ToList();
                if (patients.Count < 2)
                {
                    continue;
                }

                var most = patients[0].Count();
                if (most * 2 <= known.Count)
                {
                    throw new SeriesAssemblyException(
                        $"{sources.Description}: series {Describe(instances[0])}: its {known.Count} instances are of {patients.Count} patients by {name}, and no patient has more than half of them (at most {most}): one patient's series is screened, never several patients' together; upload each patient's images on their own")
                    {
                        FilePath = sources.Description,
                        Reason = "mixed-patients",
                    };
                }

                var others = kept.Count - 1;
                var which = most == others ? $"the other {others}" : $"{most} of the other {others}";
                foreach (var patient in patients.Skip(1))
                {
                    foreach (var instance in patient)
                    {
                        left.Add(instance.SourceIndex);
                        skipped.Add(new(instance.SourceName, SkipKind.AnotherPatient, $"another patient: its {name} differs from that of {which} instance(s) of its series; not screened with them, since a diagnosis is of one patient"));
                    }
                }

                kept = [.. kept.Where(i => !left.Contains(i.SourceIndex))];
            }
        }

        return left.Count == 0 ? slices : [.. slices.Where(s => !left.Contains(s.SourceIndex))];
    }

    private static string Describe(SliceInfo s)
    {
        var label = s.SeriesNumber is { } n ? n.ToString(CultureInfo.InvariantCulture) : s.SeriesInstanceUid;
        var extra = string.Join(", ", new[] { s.SeriesDescription, s.ConvolutionKernel }.Where(x => !string.IsNullOrWhiteSpace(x)));
        return extra.Length > 0 ? $"{label} ({extra})" : label;
    }

    private static bool HasDicomHeader(SliceSources sources, int index)
    {
        try
        {
            // An image header (Rows present): the lenient reader also "reads" a text or gzip file that stops at once.
            return sources.ReadHeaderBeforePixelData(index).Dataset.Contains(DicomTags.Rows);
        }
        catch (DicomException)
        {
            return false;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static bool IsImage(SliceSources sources, int index)
    {
        try
        {
            return ImageLoader.DetectFormat(sources.ReadHead(index, 8)) != ImageFileFormat.Unknown;
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>
    /// 2-D images as one series: grouped by folder, the folder with the most images chosen (mask/label folders never),
    /// ordered by natural sort of file names, one size per stack (<see cref="SeriesAssemblyOptions.MixedImageSizes"/>).
    /// </summary>
    private static AssembledSeries AssembleImages(SliceSources sources, List<int> images, List<SkippedSource> skipped, SeriesAssemblyOptions options)
    {
        var folders = images
            .Select(i => (Index: i, Name: sources.RelativeNameOf(i)))
            .GroupBy(e => FolderOf(e.Name), StringComparer.Ordinal)
            .Select(g => new ImageFolder(
                g.Key,
                g.OrderBy(e => FileNameOf(e.Name), NaturalSortComparer.Instance).Select(e => e.Index).ToList(),
                MaskFolderSegment(g.Key, options)))
            .OrderBy(f => f.Folder, NaturalSortComparer.Instance)
            .ToList();
        var eligible = folders.Where(f => f.MaskSegment is null).OrderByDescending(f => f.Sources.Count).ToList(); // stable: natural folder order on ties
        if (eligible.Count == 0)
        {
            throw new SeriesAssemblyException($"{sources.Description}: no 2-D images to screen: only mask or label folders ({string.Join(", ", folders.Select(f => Label(f.Folder)))})")
            {
                FilePath = sources.Description,
                Reason = "no-eligible-series",
            };
        }

        var chosen = eligible[0];
        var where = $"{sources.Description}: folder {Label(chosen.Folder)}";

        // Sizes from the image headers (pixels are decoded later, slice by slice).
        var sized = new List<(int Index, int Width, int Height, ImageFileFormat Format)>();
        foreach (var index in chosen.Sources)
        {
            try
            {
                var bytes = sources.ReadAllBytes(index);
                var (width, height) = ImageLoader.ReadSize(bytes, sources.NameOf(index));
                sized.Add((index, width, height, ImageLoader.DetectFormat(bytes)));
            }
            catch (ImageFormatException ex)
            {
                skipped.Add(new(sources.NameOf(index), SkipKind.UnreadableImage, $"2-D image that cannot be read ({ex.Message})"));
            }
        }

        if (sized.Count == 0)
        {
            throw new SeriesAssemblyException($"{where}: none of its {chosen.Sources.Count} images can be read") { FilePath = sources.Description, Reason = "no-images" };
        }

        var issues = new List<GeometryIssue>();
        var bySize = sized.GroupBy(s => (s.Width, s.Height)).OrderByDescending(g => g.Count()).ToList(); // ties: first in file order
        if (bySize.Count > 1)
        {
            var listing = string.Join(", ", bySize.Select(g => $"{g.Key.Width}×{g.Key.Height}: {g.Count()} (e.g. {FileNameOf(sources.RelativeNameOf(g.First().Index))})"));
            if (options.MixedImageSizes == MixedImageSizePolicy.Refuse)
            {
                throw new SeriesAssemblyException($"{where}: cannot be stacked: the 2-D images differ in size ({listing}); a series has one size (MixedImageSizes = KeepMostCommonSize keeps the most common one)")
                {
                    FilePath = sources.Description,
                    Reason = "mixed-size",
                };
            }

            var keep = bySize[0].Key;
            foreach (var other in sized.Where(s => (s.Width, s.Height) != keep))
            {
                skipped.Add(new(sources.NameOf(other.Index), SkipKind.OtherImageSize, $"2-D image of {other.Width}×{other.Height}, not the series size {keep.Width}×{keep.Height}"));
            }

            issues.Add(new GeometryIssue("mixed-size", $"{sized.Count - bySize[0].Count()} of {sized.Count} images differ from the most common size {keep.Width}×{keep.Height} and were left out ({listing})"));
            sized = [.. bySize[0]];
            sized.Sort((a, b) => chosen.Sources.IndexOf(a.Index).CompareTo(chosen.Sources.IndexOf(b.Index)));
        }

        issues.Add(new GeometryIssue("no-geometry", "2-D images carry no pixel spacing, slice positions or orientation: geometry is in pixel and slice-index units"));
        var formats = string.Join('\\', sized.Select(s => s.Format.ToString().ToUpperInvariant()).Distinct());
        var slices = sized.Select((s, k) => new SliceInfo
        {
            SourceName = sources.NameOf(s.Index),
            SourceIndex = s.Index,
            StudyInstanceUid = string.Empty,
            SeriesInstanceUid = string.Empty,
            InstanceNumber = k + 1,
            ImageType = [s.Format.ToString().ToUpperInvariant()],
            Rows = s.Height,
            Columns = s.Width,
        }).ToList();

        var summary = SummaryOf(chosen, formats, slices.Count, null);
        var reason = FormattableString.Invariant(
            $"2-D images: {slices.Count} {formats} slices of {slices[0].Columns}×{slices[0].Rows} in folder {Label(chosen.Folder)}, already windowed (tiles of kind unit), in natural file-name order ({FileNameOf(sources.RelativeNameOf(slices[0].SourceIndex))} … {FileNameOf(sources.RelativeNameOf(slices[^1].SourceIndex))})");
        reason += eligible.Count == 1
            ? "; the only folder of images"
            : $"; chosen over folder {Label(eligible[1].Folder)} because {(eligible[1].Sources.Count < chosen.Sources.Count ? "it has the most images" : "it comes first in natural order (otherwise equal)")}";
        var others = folders
            .Where(f => !ReferenceEquals(f, chosen))
            .Select(f => SummaryOf(f, "IMAGES", f.Sources.Count, f.MaskSegment is { } m ? $"folder name '{m}' marks segmentation masks or labels, not CT slices" : null))
            .ToList();
        var report = new AssemblyReport(summary, reason, others, issues, skipped) { InputKind = AssemblyInputKinds.Images };
        return AssembledSeries.FromImages(sources, slices, report);

        SeriesSummary SummaryOf(ImageFolder folder, string imageType, int count, string? exclusion) =>
            new(string.Empty, string.Empty, null, Label(folder.Folder), null, imageType, null, null, count, "unknown", exclusion is null, exclusion);

        string Label(string folder) => folder.Length == 0 ? $"{Path.GetFileName(sources.Description.TrimEnd('/', Path.DirectorySeparatorChar))} (top level)" : folder;
    }

    private static string FolderOf(string relativeName)
    {
        var slash = relativeName.LastIndexOf('/');
        return slash < 0 ? string.Empty : relativeName[..slash];
    }

    private static string FileNameOf(string relativeName) => relativeName[(relativeName.LastIndexOf('/') + 1)..];

    private static string? MaskFolderSegment(string folder, SeriesAssemblyOptions options) =>
        folder.Split('/').FirstOrDefault(segment => options.MaskFolderNames.Any(m => segment.Equals(m, StringComparison.OrdinalIgnoreCase)));

    private sealed record ImageFolder(string Folder, List<int> Sources, string? MaskSegment);

    private static AssembledSeries Order(Candidate chosen, string reason, List<SeriesSummary> others, List<SkippedSource> skipped, SliceSources sources, SeriesAssemblyOptions options)
    {
        var where = $"{sources.Description}: series {Describe(chosen.Summary)}";
        var slices = chosen.Slices;
        var issues = new List<GeometryIssue>();
        if (slices.Any(s => s.Position is null || s.RowDirection is null || s.ColumnDirection is null))
        {
            throw new SeriesAssemblyException($"{where}: cannot be ordered: ImagePositionPatient/ImageOrientationPatient missing on {slices.Count(s => s.Position is null)} of {slices.Count} slices")
            {
                FilePath = sources.Description,
                Reason = "missing-geometry",
            };
        }

        var rowDir = slices[0].RowDirection!.Value.Normalized();
        var colDir = slices[0].ColumnDirection!.Value.Normalized();
        if (slices.Any(s => s.RowDirection!.Value.Normalized().AngleTo(rowDir) > 0.5 || s.ColumnDirection!.Value.Normalized().AngleTo(colDir) > 0.5))
        {
            throw new SeriesAssemblyException($"{where}: cannot be ordered: slices have different orientations") { FilePath = sources.Description, Reason = "mixed-orientation" };
        }

        if (slices.Any(s => s.Rows != slices[0].Rows || s.Columns != slices[0].Columns))
        {
            throw new SeriesAssemblyException($"{where}: cannot be stacked: slices differ in size") { FilePath = sources.Description, Reason = "mixed-size" };
        }

        // In-plane normalisation of axis-aligned axial images to the standard display (row → +x, column → +y).
        var flipColumns = rowDir.X < -0.9;
        var flipRows = colDir.Y < -0.9;
        if (flipColumns || flipRows)
        {
            issues.Add(new GeometryIssue("flipped-in-plane", $"image flipped {(flipColumns ? "left–right" : string.Empty)}{(flipColumns && flipRows ? " and " : string.Empty)}{(flipRows ? "top–bottom" : string.Empty)} to the standard axial display"));
        }

        var normal = rowDir.Cross(colDir).Normalized();
        var ordered = slices
            .Select(s => (Slice: s, D: s.Position!.Value.Dot(normal)))
            .OrderBy(x => x.D)
            .ThenBy(x => x.Slice.InstanceNumber ?? int.MaxValue)
            .ThenBy(x => x.Slice.SopInstanceUid, StringComparer.Ordinal)
            .ThenBy(x => x.Slice.FrameIndex)
            .ToList();

        // Duplicate positions: keep the first; refuse when many (several phases or echoes in one series).
        var kept = new List<(SliceInfo Slice, double D)>(ordered.Count);
        var duplicates = 0;
        foreach (var item in ordered)
        {
            if (kept.Count > 0 && Math.Abs(item.D - kept[^1].D) < 0.01)
            {
                duplicates++;
                continue;
            }

            kept.Add(item);
        }

        if (duplicates > 0)
        {
            if (duplicates * 10 > ordered.Count)
            {
                throw new SeriesAssemblyException($"{where}: cannot be ordered: {duplicates} of {ordered.Count} slices repeat a position (several phases in one series?)")
                {
                    FilePath = sources.Description,
                    Reason = "duplicate-positions",
                };
            }

            issues.Add(new GeometryIssue("duplicate-position", $"{duplicates} slice(s) at an already-used position were left out"));
        }

        // Spacing, gaps.
        var positions = kept.Select(k => k.D).ToArray();
        if (positions.Length >= 2)
        {
            var gaps = positions.Zip(positions.Skip(1), (a, b) => b - a).ToArray();
            var sorted = gaps.Order().ToArray();
            var nominal = sorted[sorted.Length / 2];
            var (min, max) = (sorted[0], sorted[^1]);
            if (max - min > Math.Max(0.1, 0.1 * nominal))
            {
                issues.Add(new GeometryIssue("variable-spacing", FormattableString.Invariant($"slice spacing varies from {min:0.###} to {max:0.###} mm (median {nominal:0.###} mm)")));
            }

            for (var k = 0; k < gaps.Length; k++)
            {
                if (gaps[k] > 1.5 * nominal && gaps[k] - nominal > 0.1)
                {
                    issues.Add(new GeometryIssue("gap", FormattableString.Invariant($"gap of {gaps[k]:0.###} mm between slices {k + 1} and {k + 2} (median spacing {nominal:0.###} mm)")));
                }
            }
        }

        // Gantry tilt: slices displaced along a direction that is not the normal.
        double tilt = 0;
        if (kept.Count >= 2)
        {
            var delta = kept[^1].Slice.Position!.Value - kept[0].Slice.Position!.Value;
            var along = delta.Dot(normal);
            var across = (delta - (normal * along)).Length;
            tilt = Math.Atan2(across, Math.Abs(along)) * 180 / Math.PI;
            if (tilt > options.TiltReportDegrees)
            {
                var header = kept[0].Slice.GantryTilt is { } g ? FormattableString.Invariant($"; GantryDetectorTilt {g:+0.##;-0.##}°") : string.Empty;
                issues.Add(new GeometryIssue("gantry-tilt", FormattableString.Invariant($"gantry tilt {tilt:0.0}° (slices are sheared, not resampled){header}")));
            }
        }

        var axisAngle = normal.AngleTo(new Vec3(0, 0, Math.Sign(normal.Z) == 0 ? 1 : Math.Sign(normal.Z)));
        if (axisAngle > 1 && tilt <= options.TiltReportDegrees)
        {
            issues.Add(new GeometryIssue("oblique", FormattableString.Invariant($"slices are oblique by {axisAngle:0.0}° to the axial plane")));
        }

        var first = kept[0].Slice;
        var outRow = flipColumns ? -rowDir : rowDir;
        var outCol = flipRows ? -colDir : colDir;
        var origin = first.Position!.Value;
        if (flipColumns)
        {
            origin += rowDir * ((first.Columns - 1) * first.ColumnSpacing);
        }

        if (flipRows)
        {
            origin += colDir * ((first.Rows - 1) * first.RowSpacing);
        }

        // Slice positions along the output normal (which equals the input normal when both or neither axis flipped).
        var outNormal = outRow.Cross(outCol).Normalized();
        var sign = outNormal.Dot(normal) >= 0 ? 1 : -1;
        var finalSlices = kept.Select(k => k.Slice).ToList();
        var finalPositions = positions.Select(p => p * sign).ToList();
        if (sign < 0)
        {
            finalSlices.Reverse();
            finalPositions.Reverse();
            origin = finalSlices[0].Position!.Value + (origin - first.Position!.Value);
        }

        var geometry = new VolumeGeometry(first.Columns, first.Rows, finalSlices.Count, first.ColumnSpacing, first.RowSpacing, origin, outRow, outCol, finalPositions);
        var summary = chosen.Summary with { SliceCount = finalSlices.Count };
        var report = new AssemblyReport(summary, reason, others, issues, skipped) { GantryTiltDegrees = tilt > options.TiltReportDegrees ? tilt : 0 };
        return new AssembledSeries(sources, finalSlices, geometry, report, flipRows, flipColumns, options);
    }

    private static string SelectionReason(Candidate chosen, Candidate? runnerUp, SeriesAssemblyOptions options)
    {
        var s = chosen.Summary;
        var text = FormattableString.Invariant($"series {Describe(s)}: {(chosen.IsOriginal ? "ORIGINAL" : "DERIVED")} axial CT, {s.SliceCount} slices");
        if (s.SliceThickness is { } t)
        {
            text += FormattableString.Invariant($", {t:0.##} mm");
        }

        if (s.ConvolutionKernel is { } k)
        {
            text += $", kernel {k}";
        }

        if (runnerUp is null)
        {
            return text + "; the only screenable series";
        }

        var r = runnerUp.Summary;
        string why;
        if (chosen.IsOriginal != runnerUp.IsOriginal)
        {
            why = "it is ORIGINAL";
        }
        else if (s.SliceCount != r.SliceCount)
        {
            why = "it has the most slices";
        }
        else if (Thickness(chosen) != Thickness(runnerUp))
        {
            why = "it has the thinnest slices";
        }
        else if (IsLungKernel(s.ConvolutionKernel, options) != IsLungKernel(r.ConvolutionKernel, options))
        {
            why = "its kernel is a lung kernel";
        }
        else
        {
            why = "it has the lowest series number (otherwise equal)";
        }

        return $"{text}; chosen over series {Describe(r)} because {why}";
    }

    private static string Describe(SeriesSummary s)
    {
        var label = s.SeriesNumber is { } n ? n.ToString(CultureInfo.InvariantCulture) : s.SeriesInstanceUid;
        var extra = string.Join(", ", new[] { s.Description, s.ConvolutionKernel }.Where(x => !string.IsNullOrWhiteSpace(x)));
        return extra.Length > 0 ? $"{label} ({extra})" : label;
    }

    private static double Thickness(Candidate c) => Math.Round(c.Summary.SliceThickness ?? double.MaxValue, 3);

    internal static bool IsLungKernel(string? kernel, SeriesAssemblyOptions options) =>
        kernel is not null && options.LungKernelHints.Any(h => h.Length <= 2
            ? kernel.Trim().Equals(h, StringComparison.OrdinalIgnoreCase)
            : kernel.Contains(h, StringComparison.OrdinalIgnoreCase));

    private static Candidate Evaluate(List<SliceInfo> slices, SeriesAssemblyOptions options)
    {
        var first = slices[0];
        var normal = first.Normal;
        var orientation = normal is not { } n ? "unknown" : Math.Abs(n.Z) >= Math.Cos(options.MaxAxialAngleDegrees * Math.PI / 180) ? "axial" : Math.Abs(n.Y) > Math.Abs(n.X) ? "coronal" : "sagittal";
        string? exclusion = null;
        if (!string.Equals(first.Modality, "CT", StringComparison.OrdinalIgnoreCase))
        {
            exclusion = $"modality {first.Modality ?? "unknown"}, not CT";
        }
        else if (slices.Any(s => s.IsLocalizer))
        {
            exclusion = "localizer (scout) images";
        }
        else if (first.SamplesPerPixel != 1)
        {
            exclusion = "colour images (screen capture or dose report)";
        }
        else if (first.ImageType.Count > 1 && first.ImageType[1].Equals("SECONDARY", StringComparison.OrdinalIgnoreCase) && first.ImageType.All(t => !t.Equals("AXIAL", StringComparison.OrdinalIgnoreCase)))
        {
            exclusion = "SECONDARY derived images";
        }
        else if (orientation != "axial")
        {
            exclusion = $"not axial ({orientation})";
        }
        else if (slices.Count < options.MinSlices)
        {
            exclusion = $"{slices.Count} slices, fewer than {options.MinSlices}";
        }

        var summary = new SeriesSummary(
            first.StudyInstanceUid,
            first.SeriesInstanceUid,
            first.SeriesNumber,
            first.SeriesDescription,
            first.Modality,
            string.Join('\\', first.ImageType),
            first.ConvolutionKernel,
            slices.Select(s => s.SliceThickness).Where(t => t is not null).DefaultIfEmpty(null).Min(),
            slices.Count,
            orientation,
            exclusion is null,
            exclusion);
        return new Candidate(summary, slices, slices.All(s => s.IsOriginal));
    }

    private sealed record Candidate(SeriesSummary Summary, List<SliceInfo> Slices, bool IsOriginal);

    private sealed class CandidateComparer(SeriesAssemblyOptions options) : IComparer<Candidate>
    {
        public int Compare(Candidate? x, Candidate? y)
        {
            ArgumentNullException.ThrowIfNull(x);
            ArgumentNullException.ThrowIfNull(y);
            var c = y.IsOriginal.CompareTo(x.IsOriginal);
            if (c == 0)
            {
                c = y.Summary.SliceCount.CompareTo(x.Summary.SliceCount);
            }

            if (c == 0)
            {
                c = Thickness(x).CompareTo(Thickness(y));
            }

            if (c == 0)
            {
                c = IsLungKernel(y.Summary.ConvolutionKernel, options).CompareTo(IsLungKernel(x.Summary.ConvolutionKernel, options));
            }

            if (c == 0)
            {
                c = (x.Summary.SeriesNumber ?? int.MaxValue).CompareTo(y.Summary.SeriesNumber ?? int.MaxValue);
            }

            return c != 0 ? c : string.CompareOrdinal(x.Summary.SeriesInstanceUid, y.Summary.SeriesInstanceUid);
        }
    }
}
