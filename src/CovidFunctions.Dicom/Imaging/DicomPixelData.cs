namespace CovidFunctions.Dicom.Imaging;

/// <summary>Frame access to the Pixel Data of a file: native or encapsulated.</summary>
public sealed class DicomPixelData
{
    private DicomPixelData(DicomFile file, PixelFormat format)
    {
        File = file;
        Format = format;
    }

    /// <summary>The file.</summary>
    public DicomFile File { get; }

    /// <summary>The pixel module.</summary>
    public PixelFormat Format { get; }

    /// <summary>The number of frames.</summary>
    public int FrameCount => Format.NumberOfFrames;

    /// <summary>Creates frame access for a file with Pixel Data.</summary>
    public static DicomPixelData Create(DicomFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        return new DicomPixelData(file, PixelFormat.FromDataset(file.Dataset));
    }

    /// <summary>The encoded bytes of one frame.</summary>
    public ReadOnlyMemory<byte> GetEncodedFrame(int frame) => throw new NotImplementedException();

    /// <summary>Decodes one frame.</summary>
    public DecodedFrame DecodeFrame(int frame) => throw new NotImplementedException();

    /// <summary>The stored values of one frame, sign-extended and masked to Bits Stored.</summary>
    public int[] GetFrameSamples(int frame) => throw new NotImplementedException();
}
