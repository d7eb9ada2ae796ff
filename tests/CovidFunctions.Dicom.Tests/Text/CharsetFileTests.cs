using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Text;

/// <summary>
/// Every file of pydicom's charset_files read through our reader: Patient's Name decoded with the file's Specific
/// Character Set. Expected values are the ones pydicom's own tests assert (test_charset.py / FileInfo.txt), written
/// here with the trailing empty component groups that pydicom's str() drops.
/// </summary>
public class CharsetFileTests
{
    [Theory]
    [InlineData("chrArab.dcm", "قباني^لنزار")]
    [InlineData("chrFren.dcm", "Buc^Jérôme")]
    [InlineData("chrFrenMulti.dcm", "Buc^Jérôme")]
    [InlineData("chrGerm.dcm", "Äneas^Rüdiger")]
    [InlineData("chrGreek.dcm", "Διονυσιος")]
    [InlineData("chrH31.dcm", "Yamada^Tarou=山田^太郎=やまだ^たろう")]
    [InlineData("chrH32.dcm", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう")]
    [InlineData("chrHbrw.dcm", "שרון^דבורה")]
    [InlineData("chrI2.dcm", "Hong^Gildong=洪^吉洞=홍^길동")]
    [InlineData("chrJapMulti.dcm", "やまだ^たろう")]
    [InlineData("chrJapMultiExplicitIR6.dcm", "やまだ^たろう")]
    [InlineData("chrKoreanMulti.dcm", "김희중")]
    [InlineData("chrRuss.dcm", "Люкceмбypг")]
    [InlineData("chrX1.dcm", "Wang^XiaoDong=王^小東=")]
    [InlineData("chrX2.dcm", "Wang^XiaoDong=王^小东=")]
    public void GetStrings_CharsetFile_PatientNameMatchesPydicom(string name, string expected)
    {
        var file = DicomFile.Open(TestData.Shared("dicom", "conformance", "pydicom-testfiles", "charset_files", name));

        var value = file.Dataset.GetStrings(new DicomTag(0x0010, 0x0010))[0];

        Assert.Equal(expected, value);
    }

    [Fact]
    public void GetStrings_SequenceItemWithOwnCharset_DecodesWithItemCharset()
    {
        // chrSQEncoding: dataset ISO_IR 192, the item of (0032,1064) declares ISO 2022 IR 13 \ ISO 2022 IR 87.
        var file = DicomFile.Open(TestData.Shared("dicom", "conformance", "pydicom-testfiles", "charset_files", "chrSQEncoding.dcm"));

        var item = file.Dataset.GetSequence(new DicomTag(0x0032, 0x1064)).Items[0];

        Assert.Equal("ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう", item.GetStrings(new DicomTag(0x0010, 0x0010))[0]);
    }

    [Fact]
    public void GetStrings_SequenceItemInheritingCharset_DecodesWithDatasetCharset()
    {
        // chrSQEncoding1: the dataset declares ISO 2022 IR 13 \ ISO 2022 IR 87, the item does not.
        var file = DicomFile.Open(TestData.Shared("dicom", "conformance", "pydicom-testfiles", "charset_files", "chrSQEncoding1.dcm"));

        var item = file.Dataset.GetSequence(new DicomTag(0x0032, 0x1064)).Items[0];

        Assert.Equal("ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう", item.GetStrings(new DicomTag(0x0010, 0x0010))[0]);
    }

    [Fact]
    public void CharsetFolder_EveryFile_ReadsAndDecodesWithoutReplacementCharacters()
    {
        var folder = TestData.Shared("dicom", "conformance", "pydicom-testfiles", "charset_files");
        var files = Directory.EnumerateFiles(folder, "*.dcm").ToList();
        Assert.True(files.Count >= 17);

        foreach (var path in files)
        {
            var file = DicomFile.Open(path);
            foreach (var element in file.Dataset)
            {
                if (element.VR.IsString)
                {
                    Assert.DoesNotContain('\uFFFD', string.Concat(file.Dataset.GetStrings(element.Tag)));
                }
            }
        }
    }
}
