using CovidFunctions.Dicom.Imaging;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// Pixel Data written as pixels and nothing else. Encapsulated Pixel Data is fragments: the Basic Offset Table, bytes after
/// a frame's end-of-image marker, fragments beyond the last frame, JPEG comment and application segments can carry any
/// text, and copying the fragments copies it. So the frames are decoded (with the codec the pipeline uses anyway) and the
/// output holds them native in explicit VR little endian; every byte written is then a sample. Native Pixel Data longer
/// than its frames (trailing bytes) is cut to the frames. An encapsulated value that does not decode cannot be rewritten:
/// <see cref="DeidentificationEngine.DeidentifyFile"/> refuses the file (<see cref="DeidRejectReason.PixelDataUnreadable"/>).
/// </summary>
internal sealed class PixelDataRewrite
{
    private readonly DicomElement _pixelData;
    private readonly TransferSyntax _transferSyntax;
    private readonly DecodedFrame? _firstFrame;

    private PixelDataRewrite(DicomElement pixelData, TransferSyntax transferSyntax, DecodedFrame? firstFrame)
    {
        _pixelData = pixelData;
        _transferSyntax = transferSyntax;
        _firstFrame = firstFrame;
    }

    /// <summary>
    /// What to write instead of the file's Pixel Data, or null when it is written as it is. Sets <paramref name="rejection"/>
    /// when encapsulated frames do not decode (the file is then refused). Nothing in <paramref name="file"/> is changed here.
    /// </summary>
    public static PixelDataRewrite? Prepare(DicomFile file, out DeidRejection? rejection)
    {
        rejection = null;
        if (!file.Dataset.TryGet(DicomTags.PixelData, out var element))
        {
            return null;
        }

        var syntax = file.TransferSyntax;
        if (element is DicomFragmentSequence)
        {
            try
            {
                return Decode(file);
            }
            catch (Exception ex) when (ex is DicomException or InvalidDataException or NotSupportedException or ArgumentException or OverflowException)
            {
                var shown = syntax.IsKnown ? syntax.Uid : "an unknown transfer syntax";
                rejection = new DeidRejection(
                    DeidRejectReason.PixelDataUnreadable,
                    $"Encapsulated Pixel Data ({shown}) could not be decoded ({ex.GetType().Name}); its fragments are not copied.");
                return null;
            }
        }

        if (element is not DicomValueElement native)
        {
            return null;
        }

        // Native: bytes beyond the frames (the value's even padding aside) are not pixels.
        long expected;
        try
        {
            var format = PixelFormat.FromDataset(file.Dataset, file.FilePath);
            expected = checked((format.FrameLengthInBits * format.NumberOfFrames) + 7) / 8;
        }
        catch (Exception ex) when (ex is DicomException or OverflowException)
        {
            expected = -1; // an incomplete pixel module: nothing to measure against
        }

        var padded = expected + (expected & 1);
        var trimmed = expected >= 0 && native.Length > padded ? Trim(native, padded) : null;
        return trimmed is not null || !syntax.IsKnown ? new PixelDataRewrite(trimmed ?? native, TransferSyntax.ExplicitVRLittleEndian, null) : null;
    }

    /// <summary>Puts the rewritten Pixel Data (and the syntax it is in) into the de-identified file.</summary>
    public void Apply(DicomFile file)
    {
        var dataset = file.Dataset;
        dataset.AddOrUpdate(_pixelData);
        if (_firstFrame is not null)
        {
            dataset.Remove(DicomTags.ExtendedOffsetTable);
            dataset.Remove(DicomTags.ExtendedOffsetTableLengths);
            if (dataset.GetString(DicomTags.PhotometricInterpretation)?.Trim() != _firstFrame.PhotometricInterpretation)
            {
                dataset.SetString(DicomTags.PhotometricInterpretation, DicomVR.CS, _firstFrame.PhotometricInterpretation);
            }

            if (dataset.Contains(DicomTags.PlanarConfiguration) || _firstFrame.PlanarConfiguration != 0)
            {
                dataset.SetValues(DicomTags.PlanarConfiguration, DicomVR.US, _firstFrame.PlanarConfiguration);
            }

            if (file.TransferSyntax.IsLossy)
            {
                dataset.SetString(DicomTags.LossyImageCompression, DicomVR.CS, "01"); // the pixels went through lossy compression
            }
        }

        file.TransferSyntax = _transferSyntax;
    }

    private static PixelDataRewrite Decode(DicomFile file)
    {
        var pixels = DicomPixelData.Create(file);
        var frameBytes = pixels.Format.FrameLengthInBytes;
        var total = checked(frameBytes * pixels.FrameCount);
        var buffer = new byte[checked((int)(total + (total & 1)))];
        DecodedFrame? first = null;
        for (var i = 0; i < pixels.FrameCount; i++)
        {
            var frame = pixels.DecodeFrame(i);
            if (frame.Data.Length < frameBytes)
            {
                throw new DicomFormatException(file.FilePath, 0, $"frame {i} decodes to {frame.Data.Length} bytes, {frameBytes} expected");
            }

            first ??= frame;
            frame.Data.AsSpan(0, (int)frameBytes).CopyTo(buffer.AsSpan((int)(i * frameBytes)));
        }

        var vr = pixels.Format.BitsAllocated > 8 ? DicomVR.OW : DicomVR.OB;
        return new PixelDataRewrite(new DicomValueElement(DicomTags.PixelData, vr, buffer), TransferSyntax.ExplicitVRLittleEndian, first);
    }

    private static DicomValueElement Trim(DicomValueElement native, long length) =>
        native.BulkData is { } bulk
            ? new DicomValueElement(native.Tag, native.VR, new BulkDataReference(bulk.FilePath, bulk.Offset, length, bulk.SwapUnitSize))
            : new DicomValueElement(native.Tag, native.VR, native.RawValue[..(int)length]);
}
