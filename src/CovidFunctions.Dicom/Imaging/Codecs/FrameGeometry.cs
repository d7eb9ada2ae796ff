namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// The size of one decoded frame, computed once from a <see cref="PixelFormat"/> and checked before any codec
/// allocates: codecs trust the DICOM header for the output size, never the sizes a compressed stream declares.
/// </summary>
internal readonly record struct FrameGeometry(int Rows, int Columns, int SamplesPerPixel, int BytesPerSample)
{
    /// <summary>Bits Allocated 1 (segmentation masks, overlays in pixel data): samples packed 8 per byte, least significant bit first.</summary>
    public bool IsBitPacked => BytesPerSample == 0;

    /// <summary>Largest frame accepted (1 GiB); a header claiming more is treated as corrupt, not allocated.</summary>
    public const long MaxFrameBytes = 1L << 30;

    public int PixelCount => Rows * Columns;

    /// <summary>Bytes of one native frame; a bit-packed frame is rounded up to whole bytes and starts at bit 0.</summary>
    public int FrameBytes => IsBitPacked ? ((Rows * Columns * SamplesPerPixel) + 7) / 8 : Rows * Columns * SamplesPerPixel * BytesPerSample;

    /// <summary>Validates the format for a codec that emits 8-, 16- or 32-bit samples.</summary>
    public static FrameGeometry From(PixelFormat format, string transferSyntaxUid)
    {
        ArgumentNullException.ThrowIfNull(format);
        if (format.Rows <= 0 || format.Columns <= 0)
        {
            throw CodecErrors.Corrupt(transferSyntaxUid, $"invalid frame size {format.Rows}x{format.Columns}");
        }

        if (format.SamplesPerPixel is not (1 or 3 or 4))
        {
            throw CodecErrors.Corrupt(transferSyntaxUid, $"unsupported Samples per Pixel {format.SamplesPerPixel}");
        }

        if (format.BitsAllocated is not (1 or 8 or 16 or 32) || (format.BitsAllocated == 1 && format.SamplesPerPixel != 1))
        {
            throw CodecErrors.Corrupt(transferSyntaxUid, $"unsupported Bits Allocated {format.BitsAllocated} with {format.SamplesPerPixel} samples for a compressed frame");
        }

        if (format.BitsStored <= 0 || format.BitsStored > format.BitsAllocated)
        {
            throw CodecErrors.Corrupt(transferSyntaxUid, $"Bits Stored {format.BitsStored} does not fit Bits Allocated {format.BitsAllocated}");
        }

        var bytesPerSample = format.BitsAllocated / 8;
        var total = ((long)format.Rows * format.Columns * format.SamplesPerPixel * format.BitsAllocated) / 8;
        if (total > MaxFrameBytes)
        {
            throw CodecErrors.Corrupt(transferSyntaxUid, $"frame of {total} bytes exceeds the {MaxFrameBytes}-byte limit");
        }

        return new FrameGeometry(format.Rows, format.Columns, format.SamplesPerPixel, bytesPerSample);
    }
}
