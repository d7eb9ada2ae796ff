using System.Globalization;
using CovidFunctions.Dicom;
using CovidFunctions.Imaging.Volumes;

namespace CovidFunctions.Imaging.Series;

/// <summary>Reads the header of one DICOM source into <see cref="SliceInfo"/> records (one per frame).</summary>
internal static class DicomScanner
{
    internal static readonly DicomTag PixelData = new(0x7FE0, 0x0010);
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
    private static readonly DicomTag StudyInstanceUid = new(0x0020, 0x000D);
    private static readonly DicomTag SeriesInstanceUid = new(0x0020, 0x000E);
    private static readonly DicomTag SeriesNumber = new(0x0020, 0x0011);
    private static readonly DicomTag InstanceNumber = new(0x0020, 0x0013);
    private static readonly DicomTag ImagePositionPatient = new(0x0020, 0x0032);
    private static readonly DicomTag ImageOrientationPatient = new(0x0020, 0x0037);
    private static readonly DicomTag PlanePositionSequence = new(0x0020, 0x9113);
    private static readonly DicomTag PlaneOrientationSequence = new(0x0020, 0x9116);
    private static readonly DicomTag SamplesPerPixel = new(0x0028, 0x0002);
    private static readonly DicomTag NumberOfFrames = new(0x0028, 0x0008);
    private static readonly DicomTag Rows = new(0x0028, 0x0010);
    private static readonly DicomTag Columns = new(0x0028, 0x0011);
    private static readonly DicomTag PixelSpacing = new(0x0028, 0x0030);
    private static readonly DicomTag PixelPaddingValue = new(0x0028, 0x0120);
    private static readonly DicomTag PixelPaddingRangeLimit = new(0x0028, 0x0121);
    private static readonly DicomTag RescaleIntercept = new(0x0028, 0x1052);
    private static readonly DicomTag RescaleSlope = new(0x0028, 0x1053);
    private static readonly DicomTag PixelMeasuresSequence = new(0x0028, 0x9110);
    private static readonly DicomTag PixelValueTransformationSequence = new(0x0028, 0x9145);
    private static readonly DicomTag SharedFunctionalGroups = new(0x5200, 0x9229);
    private static readonly DicomTag PerFrameFunctionalGroups = new(0x5200, 0x9230);

    /// <summary>Header-only read options (stop at Pixel Data; functional groups come before it).</summary>
    public static DicomReadOptions HeaderOptions { get; } = new() { StopAtTag = PixelData };

    /// <summary>The frames of a file as slices, or a reason it holds none (not an image, DICOMDIR, ...).</summary>
    public static IReadOnlyList<SliceInfo> Describe(DicomFile file, string sourceName, int sourceIndex, out string? skipReason)
    {
        var ds = file.Dataset;
        skipReason = null;
        var sopClass = ds.GetString(SopClassUid) ?? file.FileMetaInformation.GetString(MediaStorageSopClass);
        if (sopClass == "1.2.840.10008.1.3.10")
        {
            skipReason = "DICOMDIR";
            return [];
        }

        if (!ds.Contains(Rows) || !ds.Contains(Columns))
        {
            skipReason = "no image (no Rows/Columns)";
            return [];
        }

        var study = ds.GetString(StudyInstanceUid);
        var series = ds.GetString(SeriesInstanceUid);
        if (string.IsNullOrEmpty(study) || string.IsNullOrEmpty(series))
        {
            skipReason = "no Study/Series Instance UID";
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
            Rows = ds.GetInt32(Rows),
            Columns = ds.GetInt32(Columns),
            SamplesPerPixel = ds.TryGetInt32(SamplesPerPixel, out var spp) ? spp : 1,
            GantryTilt = ds.TryGetDouble(GantryTilt, out var tilt) ? tilt : null,
            PaddingValue = ds.TryGetInt32(PixelPaddingValue, out var pad) ? pad : null,
            PaddingRangeLimit = ds.TryGetInt32(PixelPaddingRangeLimit, out var padLimit) ? padLimit : null,
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
            return [single];
        }

        // Legacy multi-frame without functional groups: every frame shares one position; not orderable as a stack.
        return Enumerable.Range(0, frames).Select(f => single with { FrameIndex = f, Position = null }).ToArray();
    }

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
