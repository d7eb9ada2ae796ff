using CovidFunctions.Dicom.Imaging;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Imaging.Codecs;

/// <summary>
/// Real frames of each codec, bit-flipped, truncated or overwritten with a fixed seed: a corrupt frame must end in a
/// <see cref="DicomFormatException"/> (or decode), never another exception, a crash or a hang.
/// </summary>
public sealed class CodecMutationTests
{
    private const string Ct = "dicom/conformance/cornerstone-wado-testimages";

    public static TheoryData<string> Frames => new()
    {
        $"{Ct}/CTImage.dcm_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm",
        $"{Ct}/CTImage.dcm_JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm",
        $"{Ct}/CTImage.dcm_JPEGProcess10_12TransferSyntax_1.2.840.10008.1.2.4.55.dcm",
        $"{Ct}/CTImage.dcm_JPEGProcess14TransferSyntax_1.2.840.10008.1.2.4.57.dcm",
        $"{Ct}/CTImage.dcm_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm",
        $"{Ct}/CTImage.dcm_JPEG2000TransferSyntax_1.2.840.10008.1.2.4.91.dcm",
        "dicom/conformance/pydicom-testfiles/test_files/SC_rgb_dcmtk_+eb+cy+n1.dcm",
        "dicom/conformance/pydicom-data/data/US1_J2KR.dcm",
        "dicom/conformance/pydicom-data/data/JLSL_RGB_ILV0.dcm",
    };

    [Theory]
    [MemberData(nameof(Frames))]
    public void Decode_MutatedFrame_ThrowsOnlyDicomFormatException(string path)
    {
        var pixels = DicomPixelData.Create(DicomFile.Open(TestData.Shared(path)));
        var codec = PixelCodecs.Get(pixels.TransferSyntax.Uid);
        var valid = pixels.GetEncodedFrame(0).ToArray();
        var random = new Random(2026);
        for (var trial = 0; trial < 60; trial++)
        {
            var mutated = (byte[])valid.Clone();
            switch (trial % 3)
            {
                case 0:
                    for (var flips = 0; flips < 1 + random.Next(8); flips++)
                    {
                        mutated[random.Next(mutated.Length)] ^= (byte)(1 << random.Next(8));
                    }

                    break;
                case 1:
                    mutated = mutated[..random.Next(mutated.Length)];
                    break;
                default:
                    random.NextBytes(mutated.AsSpan(random.Next(mutated.Length - 64), 64));
                    break;
            }

            try
            {
                var frame = codec.Decode(mutated, pixels.Format);
                Assert.NotEmpty(frame.Data);
            }
            catch (DicomFormatException)
            {
                // the expected failure for a corrupt frame
            }
        }
    }

    [Fact]
    public void Decode_TruncatedJpegLsFrame_ThrowsBeforeCharLs()
    {
        // CharLS 2.4.1 (Debian 12) loops forever on this truncation (team-charls/charls#334); the codec must refuse it.
        var pixels = DicomPixelData.Create(DicomFile.Open(TestData.Shared(Ct, "CTImage.dcm_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm")));
        var truncated = pixels.GetEncodedFrame(0)[..75003].ToArray();

        var ex = Assert.Throws<DicomFormatException>(() => PixelCodecs.Get(pixels.TransferSyntax.Uid).Decode(truncated, pixels.Format));

        Assert.Contains("EOI", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_JpegWithZeroSamplingFactor_ThrowsDicomFormatException()
    {
        var pixels = DicomPixelData.Create(DicomFile.Open(TestData.Shared("dicom/conformance/pydicom-testfiles/test_files/SC_rgb_dcmtk_+eb+cy+n1.dcm")));
        var frame = pixels.GetEncodedFrame(0).ToArray();
        var sof = frame.AsSpan().IndexOf(new byte[] { 0xFF, 0xC0 });
        frame[sof + 2 + 2 + 6 + 1] = 0x00; // first component's H/V sampling byte

        Assert.Throws<DicomFormatException>(() => PixelCodecs.Get(pixels.TransferSyntax.Uid).Decode(frame, pixels.Format));
    }
}
