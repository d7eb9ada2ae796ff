using CovidFunctions.Dicom.Imaging;
using CovidFunctions.TestHelpers;
using Xunit.Abstractions;

namespace CovidFunctions.Dicom.Tests.Imaging.Codecs;

/// <summary>
/// The 16 transfer-syntax copies of cornerstone's CTImage.dcm, decoded and compared in Hounsfield units (stored value
/// × Rescale Slope + Rescale Intercept of each copy) with the uncompressed original: lossless copies must be
/// identical; the lossy ones (8-bit and 12-bit JPEG copies were rescaled by the encoder, hence the HU comparison) stay
/// within the bounds measured here.
/// </summary>
public sealed class CtImageTranscodedCopiesTests(ITestOutputHelper output)
{
    private const string Folder = "dicom/conformance/cornerstone-wado-testimages";

    /// <summary>
    /// Copy suffix, transfer syntax, bound on max |ΔHU|, bound on mean |ΔHU|. Measured (rounded up): JPEG-LS near-lossless
    /// 1 / 0.694, JPEG 2000 lossy 5 / 0.571, 8-bit baseline (slope 32.12) 64.2 / 19.81, 12-bit DCT copies (slope 2.0002)
    /// 35.6 / 3.843; the DCT copies agree with dcmdjpeg to one stored unit (see encapsulated-corpus.csv).
    /// </summary>
    public static TheoryData<string, string, double, double> Copies => new()
    {
        { "LittleEndianImplicitTransferSyntax_1.2.840.10008.1.2.dcm", "1.2.840.10008.1.2", 0, 0 },
        { "LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm", "1.2.840.10008.1.2.1", 0, 0 },
        { "BigEndianExplicitTransferSyntax_1.2.840.10008.1.2.2.dcm", "1.2.840.10008.1.2.2", 0, 0 },
        { "DeflatedExplicitVRLittleEndianTransferSyntax_1.2.840.10008.1.2.1.99.dcm", "1.2.840.10008.1.2.1.99", 0, 0 },
        { "RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm", "1.2.840.10008.1.2.5", 0, 0 },
        { "JPEGProcess14TransferSyntax_1.2.840.10008.1.2.4.57.dcm", "1.2.840.10008.1.2.4.57", 0, 0 },
        { "JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm", "1.2.840.10008.1.2.4.70", 0, 0 },
        { "JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm", "1.2.840.10008.1.2.4.80", 0, 0 },
        { "JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm", "1.2.840.10008.1.2.4.90", 0, 0 },
        { "JPEGLSLossyTransferSyntax_1.2.840.10008.1.2.4.81.dcm", "1.2.840.10008.1.2.4.81", 1, 0.70 },
        { "JPEG2000TransferSyntax_1.2.840.10008.1.2.4.91.dcm", "1.2.840.10008.1.2.4.91", 5, 0.58 },
        { "JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm", "1.2.840.10008.1.2.4.50", 65, 19.9 },
        { "JPEGProcess2_4TransferSyntax_1.2.840.10008.1.2.4.51.dcm", "1.2.840.10008.1.2.4.51", 36, 3.85 },
        { "JPEGProcess6_8TransferSyntax_1.2.840.10008.1.2.4.53.dcm", "1.2.840.10008.1.2.4.53", 36, 3.85 },
        { "JPEGProcess10_12TransferSyntax_1.2.840.10008.1.2.4.55.dcm", "1.2.840.10008.1.2.4.55", 36, 3.85 },
    };

    [Theory]
    [MemberData(nameof(Copies))]
    public void DecodeFrame_TranscodedCopy_MatchesUncompressedOriginalInHounsfieldUnits(string suffix, string uid, double maxBound, double meanBound)
    {
        var original = HounsfieldUnits(TestData.Shared(Folder, "CTImage.dcm"), out _);
        var copy = HounsfieldUnits(TestData.Shared(Folder, "CTImage.dcm_" + suffix), out var syntax);

        Assert.Equal(uid, syntax);
        Assert.Equal(original.Length, copy.Length);
        double max = 0, sum = 0;
        for (var i = 0; i < original.Length; i++)
        {
            var d = Math.Abs(copy[i] - original[i]);
            max = Math.Max(max, d);
            sum += d;
        }

        var mean = sum / original.Length;
        output.WriteLine($"{uid}: max |ΔHU| {max:F3}, mean |ΔHU| {mean:F4}");
        Assert.True(max <= maxBound, $"max |ΔHU| {max} > {maxBound}");
        Assert.True(mean <= meanBound, $"mean |ΔHU| {mean} > {meanBound}");
    }

    private static double[] HounsfieldUnits(string path, out string syntax)
    {
        var file = DicomFile.Open(path);
        syntax = file.TransferSyntax.Uid;
        var slope = file.Dataset.TryGetDouble(DicomTags.RescaleSlope, out var s) ? s : 1;
        var intercept = file.Dataset.TryGetDouble(DicomTags.RescaleIntercept, out var b) ? b : 0;
        var pixels = DicomPixelData.Create(file);
        Assert.Equal(1, pixels.FrameCount);
        return [.. pixels.GetFrameSamples(0).Select(v => (v * slope) + intercept)];
    }
}
