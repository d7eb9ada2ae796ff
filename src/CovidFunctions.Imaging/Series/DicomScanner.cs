using System.Globalization;
using CovidFunctions.Dicom;
using CovidFunctions.Dicom.Imaging;
using CovidFunctions.Imaging.Volumes;

namespace CovidFunctions.Imaging.Series;

/// <summary>Reads the header of one DICOM source into <see cref="SliceInfo"/> records (one per frame).</summary>
internal static class DicomScanner
{
    internal static readonly DicomTag PixelData = new(0x7FE0, 0x0010);
    private static readonly DicomTag FloatPixelData = new(0x7FE0, 0x0008);
    private static readonly DicomTag DoubleFloatPixelData = new(0x7FE0, 0x0009);
    private static readonly DicomTag MediaStorageSopClass = new(0x0002, 0x0002);
    private static readonly DicomTag SopClassUid = new(0x0008, 0x0016);
    private static readonly DicomTag SopInstanceUid = new(0x0008, 0x0018);
    private static readonly DicomTag ImageType = new(0x0008, 0x0008);
    private static readonly DicomTag Modality = new(0x0008, 0x0060);
    private static readonly DicomTag SeriesDescription = new(0x0008, 0x103E);
    private static readonly DicomTag FrameType = new(0x0008, 0x9007);
    private static readonly DicomTag SliceThickness = new(0x0018, 0x0050);
    private static readonly DicomTag GantryTilt = new(0x0018, 0x1120);
    private static readonly DicomTag ConvolutionKernel = new(0x0018, 0x1210);
    private static readonly DicomTag CtImageFrameTypeSequence = new(0x0018, 0x9329);
    private static readonly DicomTag PatientName = new(0x0010, 0x0010);
    private static readonly DicomTag PatientId = new(0x0010, 0x0020);
    private static readonly DicomTag IssuerOfPatientId = new(0x0010, 0x0021);
    private static readonly DicomTag PatientBirthDate = new(0x0010, 0x0030);
    private static readonly DicomTag PatientSex = new(0x0010, 0x0040);
    private static readonly DicomTag StudyInstanceUid = new(0x0020, 0x000D);
    private static readonly DicomTag SeriesInstanceUid = new(0x0020, 0x000E);
    private static readonly DicomTag SeriesNumber = new(0x0020, 0x0011);
    private static readonly DicomTag InstanceNumber = new(0x0020, 0x0013);
    private static readonly DicomTag ImagePositionPatient = new(0x0020, 0x0032);
    private static readonly DicomTag ImageOrientationPatient = new(0x0020, 0x0037);
    private static readonly DicomTag PlanePositionSequence = new(0x0020, 0x9113);
    private static readonly DicomTag PlaneOrientationSequence = new(0x0020, 0x9116);
    private static readonly DicomTag SamplesPerPixel = new(0x0028, 0x0002);
    private static readonly DicomTag PhotometricInterpretation = new(0x0028, 0x0004);
    private static readonly DicomTag NumberOfFrames = new(0x0028, 0x0008);
    private static readonly DicomTag Rows = new(0x0028, 0x0010);
    private static readonly DicomTag Columns = new(0x0028, 0x0011);
    private static readonly DicomTag PixelSpacing = new(0x0028, 0x0030);
    private static readonly DicomTag BitsAllocated = new(0x0028, 0x0100);
    private static readonly DicomTag BitsStored = new(0x0028, 0x0101);
    private static readonly DicomTag HighBit = new(0x0028, 0x0102);
    private static readonly DicomTag PixelRepresentation = new(0x0028, 0x0103);
    private static readonly DicomTag PixelPaddingValue = new(0x0028, 0x0120);
    private static readonly DicomTag PixelPaddingRangeLimit = new(0x0028, 0x0121);
    private static readonly DicomTag RescaleIntercept = new(0x0028, 0x1052);
    private static readonly DicomTag RescaleSlope = new(0x0028, 0x1053);
    private static readonly DicomTag PixelMeasuresSequence = new(0x0028, 0x9110);
    private static readonly DicomTag PixelValueTransformationSequence = new(0x0028, 0x9145);
    private static readonly DicomTag SharedFunctionalGroups = new(0x5200, 0x9229);
    private static readonly DicomTag PerFrameFunctionalGroups = new(0x5200, 0x9230);

    /// <summary>
    /// Header read options for the scan of a file: up to and including Pixel Data, whose value stays in the file as a bulk
    /// reference (its length is checked against Rows × Columns × bytes), nothing after it. A zip entry's header is read
    /// with <see cref="HeaderBeforePixelDataOptions"/> (<see cref="SliceSources.ReadHeader"/>).
    /// </summary>
    public static DicomReadOptions HeaderOptions { get; } = new() { StopAfterPixelData = true };

    /// <summary>Header only, stopping before Pixel Data: to tell a DICOM file whose Pixel Data cannot be read from a file that is not DICOM.</summary>
    public static DicomReadOptions HeaderBeforePixelDataOptions { get; } = new() { StopAtTag = PixelData };

    /// <summary>The start of the note of an instance left out for its own image attributes (<see cref="ImageDefect"/>, <see cref="SliceInfo.AbsentAttributes"/>).</summary>
    public const string DefectNote = "defective image attributes, left out of its series";

    /// <summary>Largest |coordinate| (mm) of an ImagePositionPatient that is taken as a position in a patient (100 m).</summary>
    private const double MaxPositionMm = 100_000;

    /// <summary>The frames of a file as slices, or a reason it holds none (not an image, DICOMDIR, ...).</summary>
    /// <param name="file">The header as <see cref="SliceSources.ReadHeader"/> read it.</param>
    /// <param name="sourceName">The source's name, for notes.</param>
    /// <param name="sourceIndex">The source's index in its <see cref="SliceSources"/>.</param>
    /// <param name="skip">Why the source gives no slice (what kind of source it is and why in words), when it gives none.</param>
    /// <param name="unreadPixelDataSourceBytes">
    /// Null when <paramref name="file"/> was read through Pixel Data (<see cref="HeaderOptions"/>); otherwise the header was
    /// read before Pixel Data (<see cref="HeaderBeforePixelDataOptions"/>: a zip entry, whose Pixel Data would have to be
    /// inflated to be read) and this is the source's whole size, which must at least hold what Pixel Data needs.
    /// </param>
    public static IReadOnlyList<SliceInfo> Describe(DicomFile file, string sourceName, int sourceIndex, out SkippedSource? skip, long? unreadPixelDataSourceBytes = null)
    {
        var ds = file.Dataset;
        skip = null;
        var sopClass = ds.GetString(SopClassUid) ?? file.FileMetaInformation.GetString(MediaStorageSopClass);
        if (sopClass == "1.2.840.10008.1.3.10")
        {
            skip = new(sourceName, SkipKind.NoImage, "DICOMDIR");
            return [];
        }

        if (!ds.Contains(Rows) || !ds.Contains(Columns))
        {
            skip = new(sourceName, SkipKind.NoImage, "no image (no Rows/Columns)");
            return [];
        }

        var study = ds.GetString(StudyInstanceUid);
        var series = ds.GetString(SeriesInstanceUid);
        if (string.IsNullOrEmpty(study) || string.IsNullOrEmpty(series))
        {
            skip = new(sourceName, SkipKind.NoImage, "no Study/Series Instance UID");
            return [];
        }

        // One instance's unusable image attributes (present but empty, not a number, zero, out of range, or Pixel Data
        // shorter than they say) leave that instance out with the reason; the rest of its series is assembled.
        if (ImageDefect(file, unreadPixelDataSourceBytes) is { } defect)
        {
            skip = new(sourceName, SkipKind.DefectiveImage, $"{DefectNote}: {defect}");
            return [];
        }

        var common = new SliceInfo
        {
            SourceName = sourceName,
            SourceIndex = sourceIndex,
            StudyInstanceUid = study,
            SeriesInstanceUid = series,
            SopInstanceUid = ds.GetString(SopInstanceUid),
            Modality = ds.GetString(Modality),
            SeriesDescription = ds.GetString(SeriesDescription),
            SeriesNumber = ds.TryGetInt32(SeriesNumber, out var sn) ? sn : null,
            InstanceNumber = ds.TryGetInt32(InstanceNumber, out var inum) ? inum : null,
            ImageType = ds.GetStrings(ImageType),
            ConvolutionKernel = ds.GetStrings(ConvolutionKernel).FirstOrDefault(),
            SliceThickness = ds.TryGetDouble(SliceThickness, out var st) ? st : null,
            Rows = ds.GetInt32(Rows), // checked by ImageDefect
            Columns = ds.GetInt32(Columns),
            SamplesPerPixel = ds.TryGetInt32(SamplesPerPixel, out var spp) ? spp : 1,
            GantryTilt = ds.TryGetDouble(GantryTilt, out var tilt) ? tilt : null,
            PaddingValue = ds.TryGetInt32(PixelPaddingValue, out var pad) ? pad : null,
            PaddingRangeLimit = ds.TryGetInt32(PixelPaddingRangeLimit, out var padLimit) ? padLimit : null,
            Patient = PatientOf(ds),
        };

        var frames = ds.TryGetInt32(NumberOfFrames, out var nf) && nf > 0 ? nf : 1;
        if (ds.TryGetSequence(PerFrameFunctionalGroups, out var perFrame))
        {
            ds.TryGetSequence(SharedFunctionalGroups, out var shared);
            var sharedItem = shared is { Items.Count: > 0 } ? shared.Items[0] : null;
            var result = new List<SliceInfo>(perFrame.Items.Count);
            for (var f = 0; f < Math.Min(frames, perFrame.Items.Count); f++)
            {
                var item = perFrame.Items[f];
                var slice = common with { FrameIndex = f };
                slice = ApplyGroups(slice, sharedItem);
                slice = ApplyGroups(slice, item);
                result.Add(slice);
            }

            return result;
        }

        var single = common with
        {
            Position = ReadVector(ds, ImagePositionPatient, 0),
            RowDirection = ReadVector(ds, ImageOrientationPatient, 0),
            ColumnDirection = ReadVector(ds, ImageOrientationPatient, 3),
            RowSpacing = ds.TryGetDouble(PixelSpacing, 0, out var rs) && rs > 0 ? rs : 1,
            ColumnSpacing = ds.TryGetDouble(PixelSpacing, 1, out var cs) && cs > 0 ? cs : 1,
            RescaleSlope = ds.TryGetDouble(RescaleSlope, out var slope) && slope != 0 ? slope : 1,
            RescaleIntercept = ds.TryGetDouble(RescaleIntercept, out var intercept) ? intercept : 0,
        };
        if (frames == 1)
        {
            // Attributes the decoding or the geometry would otherwise default: one instance without them in a series whose
            // other instances have them is left out by the assembler (a defaulted intercept is HU off by 1024).
            string[] absent = [.. SingleFrameAttributes.Where(a => !ds.Contains(a.Tag)).Select(a => a.Name)];
            return [absent.Length == 0 ? single : single with { AbsentAttributes = absent }];
        }

        // Legacy multi-frame without functional groups: every frame shares one position; not orderable as a stack.
        return Enumerable.Range(0, frames).Select(f => single with { FrameIndex = f, Position = null }).ToArray();
    }

    /// <summary>
    /// The instance's patient, keyed as the de-identification keys the pseudonym (PatientID with IssuerOfPatientID, or
    /// PatientName when there is no ID; trimmed), so that raw and de-identified instances of one upload split alike. A
    /// value that is a sequence (malformed) reads as absent, as it does for the pseudonym.
    /// </summary>
    private static PatientIdentity PatientOf(DicomDataset ds)
    {
        var id = Text(PatientId);
        var key = id is not null ? $"id:{Text(IssuerOfPatientId) ?? string.Empty}|{id}" : $"name:{Text(PatientName) ?? string.Empty}";
        return new PatientIdentity(key, Text(PatientBirthDate), Text(PatientSex));

        string? Text(DicomTag tag) => ds.TryGetString(tag, out var value) && !string.IsNullOrWhiteSpace(value) ? value.Trim() : null;
    }

    /// <summary>Attributes of a single-frame image that are checked for absence against the rest of its series.</summary>
    private static readonly (DicomTag Tag, string Name)[] SingleFrameAttributes =
    [
        (ImagePositionPatient, Label(ImagePositionPatient, "ImagePositionPatient")),
        (ImageOrientationPatient, Label(ImageOrientationPatient, "ImageOrientationPatient")),
        (PixelSpacing, Label(PixelSpacing, "PixelSpacing")),
        (RescaleSlope, Label(RescaleSlope, "RescaleSlope")),
        (RescaleIntercept, Label(RescaleIntercept, "RescaleIntercept")),
        (SamplesPerPixel, Label(SamplesPerPixel, "SamplesPerPixel")),
        (PhotometricInterpretation, Label(PhotometricInterpretation, "PhotometricInterpretation")),
        (BitsStored, Label(BitsStored, "BitsStored")),
        (PixelRepresentation, Label(PixelRepresentation, "PixelRepresentation")),
    ];

    /// <summary>
    /// Why this instance's image cannot be used as it says it is, or null: an image attribute present but empty, not a
    /// number, zero or negative where a count or size is meant, out of range, or inconsistent with the others; Pixel Data
    /// missing or shorter than Rows × Columns × samples × bytes × frames. Absent attributes the decoding defaults are not
    /// defects here (see <see cref="SliceInfo.AbsentAttributes"/>), except BitsAllocated, without which nothing decodes.
    /// </summary>
    internal static string? ImageDefect(DicomFile file, long? unreadPixelDataSourceBytes = null)
    {
        var ds = file.Dataset;
        var rows = PositiveCount(ds, Rows, "Rows", out var why) ?? 0;
        if (why is not null)
        {
            return why;
        }

        var columns = PositiveCount(ds, Columns, "Columns", out why) ?? 0;
        if (why is not null)
        {
            return why;
        }

        if (!ds.Contains(BitsAllocated))
        {
            return $"{Label(BitsAllocated, "BitsAllocated")} is missing";
        }

        var bitsAllocated = PositiveCount(ds, BitsAllocated, "BitsAllocated", out why) ?? 0;
        if (why is not null)
        {
            return why;
        }

        // The decoder's rule (PixelFormat): 1 or whole bytes. Whether 1-bit or 64-bit images are CT is the series' question
        // (a segmentation or a parametric map is excluded there by its modality), not a defect of the instance.
        if (bitsAllocated != 1 && (bitsAllocated % 8 != 0 || bitsAllocated > 64))
        {
            return $"{Label(BitsAllocated, "BitsAllocated")} is {bitsAllocated}; it is 1 or a multiple of 8 up to 64";
        }

        var bitsStored = PositiveCount(ds, BitsStored, "BitsStored", out why) ?? bitsAllocated;
        if (why is not null)
        {
            return why;
        }

        if (bitsStored > bitsAllocated)
        {
            return $"{Label(BitsStored, "BitsStored")} {bitsStored} is more than BitsAllocated {bitsAllocated}";
        }

        if (ds.Contains(HighBit) && (!ds.TryGetInt32(HighBit, out var highBit) || highBit >= bitsAllocated || highBit < bitsStored - 1))
        {
            return $"{Label(HighBit, "HighBit")} {Shown(ds, HighBit)} does not fit BitsStored {bitsStored} and BitsAllocated {bitsAllocated}";
        }

        if (ds.Contains(PixelRepresentation) && (!ds.TryGetInt32(PixelRepresentation, out var representation) || representation is not (0 or 1)))
        {
            return $"{Label(PixelRepresentation, "PixelRepresentation")} is {Shown(ds, PixelRepresentation)}; it is 0 (unsigned) or 1 (signed)";
        }

        var samples = PositiveCount(ds, SamplesPerPixel, "SamplesPerPixel", out why) ?? 1;
        if (why is not null)
        {
            return why;
        }

        if (samples is not (1 or 3))
        {
            return $"{Label(SamplesPerPixel, "SamplesPerPixel")} is {samples}; an image has 1 (greyscale) or 3 (colour)";
        }

        if (ds.Contains(PhotometricInterpretation))
        {
            var photometric = ds.GetStrings(PhotometricInterpretation).FirstOrDefault() ?? string.Empty;
            if (photometric.Length == 0)
            {
                return $"{Label(PhotometricInterpretation, "PhotometricInterpretation")} is empty";
            }

            if (!PhotometricInterpretations.SamplesPerPixel.TryGetValue(photometric, out var termSamples))
            {
                return $"{Label(PhotometricInterpretation, "PhotometricInterpretation")} is not a photometric interpretation";
            }

            if (termSamples != samples)
            {
                return $"{Label(PhotometricInterpretation, "PhotometricInterpretation")} {photometric} does not fit SamplesPerPixel {samples}";
            }
        }

        if (ds.Contains(PixelSpacing))
        {
            var spacing = ds.GetStrings(PixelSpacing);
            if (spacing.Length != 2 || !spacing.All(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var mm) && double.IsFinite(mm) && mm > 0))
            {
                return $"{Label(PixelSpacing, "PixelSpacing")} is {Values(spacing)}; it is two distances in mm, each more than 0";
            }
        }

        if (ds.Contains(ImagePositionPatient))
        {
            var position = ds.GetStrings(ImagePositionPatient);
            if (Numbers(position) is not { Length: 3 } p || p.Any(v => Math.Abs(v) > MaxPositionMm))
            {
                return $"{Label(ImagePositionPatient, "ImagePositionPatient")} is {Values(position)}; it is three coordinates in mm";
            }
        }

        if (ds.Contains(ImageOrientationPatient))
        {
            var orientation = ds.GetStrings(ImageOrientationPatient);
            if (Numbers(orientation) is not { Length: 6 } o || !IsOrientation(new Vec3(o[0], o[1], o[2]), new Vec3(o[3], o[4], o[5])))
            {
                return $"{Label(ImageOrientationPatient, "ImageOrientationPatient")} is {Values(orientation)}; it is two perpendicular unit vectors (six numbers)";
            }
        }

        var slope = 1.0;
        if (ds.Contains(RescaleSlope) && (!ds.TryGetDouble(RescaleSlope, out slope) || !double.IsFinite(slope) || slope == 0))
        {
            return $"{Label(RescaleSlope, "RescaleSlope")} is {Shown(ds, RescaleSlope)}; it is a finite number other than 0";
        }

        var intercept = 0.0;
        if (ds.Contains(RescaleIntercept) && (!ds.TryGetDouble(RescaleIntercept, out intercept) || !double.IsFinite(intercept)))
        {
            return $"{Label(RescaleIntercept, "RescaleIntercept")} is {Shown(ds, RescaleIntercept)}; it is a finite number";
        }

        // Every stored value must map to a finite HU in float32 (AssembledSeries.Convert refuses the slice otherwise).
        if (!float.IsFinite((float)((Math.Abs(slope) * Math.Pow(2, bitsStored)) + Math.Abs(intercept))))
        {
            return FormattableString.Invariant($"RescaleSlope {slope} and RescaleIntercept {intercept} give values beyond any Hounsfield unit for {bitsStored}-bit samples");
        }

        var frames = ds.TryGetInt32(NumberOfFrames, out var nf) && nf > 0 ? nf : 1;
        var subsampled = ds.GetStrings(PhotometricInterpretation).FirstOrDefault() is { } pi && (pi.EndsWith("_422", StringComparison.Ordinal) || pi.EndsWith("_420", StringComparison.Ordinal));

        // 1-bit frames are packed one after another, not byte-aligned: the whole value is rounded up once.
        var needed = (((long)rows * columns * samples * bitsAllocated * frames) + 7) / 8;
        if (!ds.TryGet(PixelData, out var pixelData))
        {
            // Float and Double Float Pixel Data (parametric maps) are other elements: not checked further here.
            if (ds.Contains(FloatPixelData) || ds.Contains(DoubleFloatPixelData))
            {
                return null;
            }

            // Read before Pixel Data (a zip entry: inflating every slice twice made the scan 5-6x slower): a top-level element
            // at or after Pixel Data exists when the read stopped there; a native, not deflated entry too small for its
            // pixels is cut off. A Pixel Data short for other reasons is found when the slice is decoded.
            if (unreadPixelDataSourceBytes is { } sourceBytes && file.IsPartial)
            {
                return !subsampled && (file.ReadTransferSyntax ?? file.TransferSyntax) is { IsEncapsulated: false, IsDeflated: false } && sourceBytes < needed
                    ? ShortPixelData("the whole source", sourceBytes, needed, rows, columns, samples, bitsAllocated, frames)
                    : null;
            }

            return $"no Pixel Data {PixelData} although Rows and Columns say it is an image";
        }

        switch (pixelData)
        {
            case DicomValueElement when subsampled:
                break; // YBR 4:2:2 / 4:2:0 store fewer bytes than samples × pixels (colour: excluded by its series anyway)
            case DicomValueElement native:
                if (native.Length < needed)
                {
                    return ShortPixelData($"Pixel Data {PixelData}", native.Length, needed, rows, columns, samples, bitsAllocated, frames);
                }

                break;
            case DicomFragmentSequence { Fragments.Count: 0 }:
                return $"Pixel Data {PixelData} is encapsulated but holds no fragments";
            case DicomSequence:
                return $"Pixel Data {PixelData} is a sequence, not pixels";
        }

        return null;
    }

    /// <summary>
    /// The one wording of pixels that do not fit where they are kept: <paramref name="holder"/> (the Pixel Data value, or
    /// the whole source when its Pixel Data was not read) holds fewer bytes than the image attributes say the pixels need.
    /// </summary>
    private static string ShortPixelData(string holder, long held, long needed, int rows, int columns, int samples, int bitsAllocated, int frames) =>
        FormattableString.Invariant(
            $"{holder} holds {held} bytes, fewer than the {needed} that Rows {rows} × Columns {columns}{(samples > 1 ? $" × {samples} samples" : string.Empty)} × {(bitsAllocated == 1 ? "1 bit" : $"{bitsAllocated} bits")}{(frames > 1 ? $" × {frames} frames" : string.Empty)} need");

    /// <summary>A count or size that must be a whole number above 0: null and no reason when absent; the reason when present but not such a number.</summary>
    private static int? PositiveCount(DicomDataset ds, DicomTag tag, string name, out string? why)
    {
        why = null;
        if (!ds.Contains(tag))
        {
            return null;
        }

        if (!ds.TryGetInt32(tag, out var value) || value <= 0)
        {
            why = $"{Label(tag, name)} is {Shown(ds, tag)}";
            return null;
        }

        return value;
    }

    private static string Label(DicomTag tag, string name) => $"{name} {tag}";

    /// <summary>How a present value reads in a note: empty, a number as parsed, or "not a number" (free text is not quoted).</summary>
    private static string Shown(DicomDataset ds, DicomTag tag)
    {
        if (ds.GetStrings(tag) is not { Length: > 0 } values || values.All(v => v.Length == 0))
        {
            return "empty";
        }

        return ds.TryGetDouble(tag, out var number) ? number.ToString(CultureInfo.InvariantCulture) : "not a number";
    }

    /// <summary>Several values for a note: empty, their count when any is not a number, or the numbers.</summary>
    private static string Values(string[] values) =>
        values.Length == 0 || values.All(v => v.Length == 0) ? "empty"
        : Numbers(values) is { } numbers ? $"{numbers.Length} value(s) ({string.Join('\\', numbers.Select(n => n.ToString(CultureInfo.InvariantCulture)))})"
        : $"{values.Length} value(s), not all finite numbers";

    /// <summary>The values as finite numbers, or null when any is not one.</summary>
    private static double[]? Numbers(string[] values)
    {
        var numbers = new double[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            if (!double.TryParse(values[i], NumberStyles.Float, CultureInfo.InvariantCulture, out numbers[i]) || !double.IsFinite(numbers[i]))
            {
                return null;
            }
        }

        return numbers;
    }

    /// <summary>Row and column directions of a usable orientation: each near unit length, near perpendicular (writers round to a few decimals).</summary>
    private static bool IsOrientation(Vec3 row, Vec3 column) =>
        Math.Abs(row.Length - 1) <= 0.1 && Math.Abs(column.Length - 1) <= 0.1 && Math.Abs(row.Dot(column)) / (row.Length * column.Length) <= 0.1;

    private static SliceInfo ApplyGroups(SliceInfo slice, DicomDataset? group)
    {
        if (group is null)
        {
            return slice;
        }

        if (First(group, PlanePositionSequence) is { } position && ReadVector(position, ImagePositionPatient, 0) is { } ipp)
        {
            slice = slice with { Position = ipp };
        }

        if (First(group, PlaneOrientationSequence) is { } orientation && ReadVector(orientation, ImageOrientationPatient, 0) is { } row)
        {
            slice = slice with { RowDirection = row, ColumnDirection = ReadVector(orientation, ImageOrientationPatient, 3) };
        }

        if (First(group, PixelMeasuresSequence) is { } measures)
        {
            if (measures.TryGetDouble(PixelSpacing, 0, out var rs) && rs > 0)
            {
                slice = slice with { RowSpacing = rs, ColumnSpacing = measures.TryGetDouble(PixelSpacing, 1, out var cs) && cs > 0 ? cs : rs };
            }

            if (measures.TryGetDouble(SliceThickness, out var st))
            {
                slice = slice with { SliceThickness = st };
            }
        }

        if (First(group, PixelValueTransformationSequence) is { } transform)
        {
            slice = slice with
            {
                RescaleSlope = transform.TryGetDouble(RescaleSlope, out var s) && s != 0 ? s : slice.RescaleSlope,
                RescaleIntercept = transform.TryGetDouble(RescaleIntercept, out var i) ? i : slice.RescaleIntercept,
            };
        }

        if (First(group, CtImageFrameTypeSequence) is { } frameType && frameType.GetStrings(FrameType) is { Length: > 0 } type)
        {
            slice = slice with { ImageType = type };
        }

        return slice;
    }

    private static DicomDataset? First(DicomDataset ds, DicomTag sequence) =>
        ds.TryGetSequence(sequence, out var seq) && seq.Items.Count > 0 ? seq.Items[0] : null;

    private static Vec3? ReadVector(DicomDataset ds, DicomTag tag, int start)
    {
        var values = ds.GetStrings(tag);
        if (values.Length < start + 3)
        {
            return null;
        }

        var parsed = new double[3];
        for (var i = 0; i < 3; i++)
        {
            if (!double.TryParse(values[start + i], NumberStyles.Float, CultureInfo.InvariantCulture, out parsed[i]))
            {
                return null;
            }
        }

        return new Vec3(parsed[0], parsed[1], parsed[2]);
    }
}
