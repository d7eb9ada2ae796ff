using CovidFunctions.Dicom.Imaging;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Fuzz;

/// <summary>Reproducers found by <see cref="DicomFuzzTests"/>, kept in tests/data/fuzz-regressions.</summary>
public class FuzzRegressionTests
{
    public static IEnumerable<object[]> Reproducers() =>
        Directory.EnumerateFiles(TestData.Local("fuzz-regressions"), "*.dcm").Order(StringComparer.Ordinal).Select(p => new object[] { Path.GetFileName(p) });

    [Theory]
    [MemberData(nameof(Reproducers))]
    public void Exercise_Reproducer_FinishesWithoutUnexpectedException(string name)
    {
        var outcome = DicomFuzzTests.Exercise(File.ReadAllBytes(TestData.Local("fuzz-regressions", name)));

        Assert.Null(outcome.Unexpected);
    }

    /// <summary>
    /// Found by the fuzzer: an invalid pixel module (Samples per Pixel 9; Rows missing) made
    /// <see cref="DicomPixelData.Create"/> throw the base <see cref="DicomException"/>; the contract for malformed
    /// input is <see cref="DicomFormatException"/>.
    /// </summary>
    [Theory]
    [InlineData("issue2-pixel-samples-per-pixel-9.dcm")]
    [InlineData("issue2-pixel-rows-missing.dcm")]
    public void Issue2_PixelModuleInvalid_ThrowsDicomFormatException(string name)
    {
        var file = DicomFile.Open(TestData.Local("fuzz-regressions", name));

        Assert.Throws<DicomFormatException>(() => DicomPixelData.Create(file).DecodeFrame(0));
    }
}
