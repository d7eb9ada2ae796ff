using System.Text;
using CovidFunctions.Dicom.Text;

namespace CovidFunctions.Dicom.Tests.Text;

/// <summary>
/// Specific Character Set decoding and encoding. The byte vectors are the raw values of pydicom's charset test files
/// (pydicom-testfiles/charset_files, fo-dicom GH1301); the expected strings are what pydicom 2.3 decodes, except where
/// noted (pydicom drops trailing empty PN groups and does not handle ISO 2022 IR 58).
/// </summary>
public class DicomEncodingTests
{
    [Theory]
    [InlineData("ISO 2022 IR 6\\ISO 2022 IR 87", "PN", "1B24422464245E24401B28425E1B2442243F246D24261B284220", "やまだ^たろう")]
    [InlineData("ISO 2022 IR 6\\ISO 2022 IR 87", "PN", "1B24422464245E24401B28425E1B2442243F246D24261B28425C1B24422464245E24401B28425E1B2442243F246D24261B284220", "やまだ^たろう\\やまだ^たろう")]
    [InlineData("ISO 2022 IR 6\\ISO 2022 IR 87", "LT", "1B2442243F246D24261B2842", "たろう")]
    [InlineData("ISO_IR 100", "PN", "C46E6561735E52FC646967657220", "Äneas^Rüdiger")]
    [InlineData("\\ISO 2022 IR 58", "PN", "5A68616E675E5869616F446F6E673D1B242941D5C55E1B242941D0A1B6AB3D20", "Zhang^XiaoDong=张^小东=")]
    [InlineData("ISO_IR 100", "PN", "4275635E4AE972F46D65", "Buc^Jérôme")]
    [InlineData("ISO_IR 100", "PN", "4275635E4AE972F46D655C4275635E4AE972F46D6520", "Buc^Jérôme\\Buc^Jérôme")]
    [InlineData("ISO 2022 IR 13\\ISO 2022 IR 87", "PN", "D4CFC0DE5EC0DBB33D1B24423B3345441B28425E1B244242404F3A1B28423D1B24422464245E24401B28425E1B2442243F246D24261B2842", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう")]
    [InlineData("ISO 2022 IR 13\\ISO 2022 IR 87", "PN", "D4CFC0DE5EC0DBB33D1B24423B3345441B284A5E1B244242404F3A1B284A3D1B24422464245E24401B284A5E1B2442243F246D24261B284A", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう")]
    [InlineData("GB18030", "PN", "57616E675E5869616F446F6E673DCDF55ED0A1B6AB3D", "Wang^XiaoDong=王^小东=")]
    [InlineData("\\ISO 2022 IR 87", "PN", "1B24422464245E24401B28425E1B2442243F246D24261B284220", "やまだ^たろう")]
    [InlineData("\\ISO 2022 IR 87", "PN", "59616D6164615E5461726F753D1B24423B3345441B28425E1B244242404F3A1B28423D1B24422464245E24401B28425E1B2442243F246D24261B2842", "Yamada^Tarou=山田^太郎=やまだ^たろう")]
    [InlineData("ISO_IR 144", "PN", "BBEEDA6365DCD17970D3", "Люкceмбypг")]
    [InlineData("ISO_IR 126", "PN", "C4E9EFEDF5F3E9EFF220", "Διονυσιος")]
    [InlineData("ISO_IR 138", "PN", "F9F8E5EF5EE3E1E5F8E4", "שרון^דבורה")]
    [InlineData("ISO_IR 127", "PN", "E2C8C7E6EA5EE4E6D2C7D120", "قباني^لنزار")]
    [InlineData("\\ISO 2022 IR 149", "PN", "486F6E675E47696C646F6E673D1B242943FBF35E1B242943D1CED4D73D1B242943C8AB5E1B242943B1E6B5BF", "Hong^Gildong=洪^吉洞=홍^길동")]
    [InlineData("\\ISO 2022 IR 149", "PN", "1B242943B1E8C8F1C1DF1B28425C1B242943B1E8C8F1C1DF1B284220", "김희중\\김희중")]
    [InlineData("\\ISO 2022 IR 149", "LT", "1B242943B1E8C8F1C1DF1B284220", "김희중")]
    [InlineData("ISO_IR 192", "PN", "57616E675E5869616F446F6E673DE78E8B5EE5B08FE69DB13D20", "Wang^XiaoDong=王^小東=")]
    public void Decode_PydicomCharsetVectors_MatchesExpected(string terms, string vr, string hex, string expected)
    {
        var encoding = DicomEncoding.FromSpecificCharacterSet(terms.Split('\\'));

        var decoded = encoding.Decode(Convert.FromHexString(hex), vr).TrimEnd(' ', '\0');

        Assert.Equal(expected, decoded);
    }

    [Theory]
    [InlineData("ISO_IR 101", "Łódź^Żółć")]
    [InlineData("ISO_IR 109", "Ħal^Ġużeppi")]
    [InlineData("ISO_IR 110", "Ąžuolas^Ēriks")]
    [InlineData("ISO_IR 148", "Gül^Şahin")]
    [InlineData("ISO_IR 166", "สมชาย^ใจดี")]
    [InlineData("ISO_IR 144", "Люксембург")]
    [InlineData("ISO_IR 13", "ﾔﾏﾀﾞ^ﾀﾛｳ")]
    [InlineData("GBK", "王^小东")]
    [InlineData("GB18030", "王^小东😀")]
    [InlineData("ISO_IR 192", "Wang^XiaoDong=王^小東")]
    [InlineData("\\ISO 2022 IR 100", "Buc^Jérôme")]
    [InlineData("\\ISO 2022 IR 101", "Łódź^Żółć")]
    [InlineData("\\ISO 2022 IR 109", "Ħal^Ġużeppi")]
    [InlineData("\\ISO 2022 IR 110", "Ąžuolas^Ēriks")]
    [InlineData("\\ISO 2022 IR 144", "Люксембург")]
    [InlineData("\\ISO 2022 IR 127", "قباني^لنزار")]
    [InlineData("\\ISO 2022 IR 126", "Διονυσιος")]
    [InlineData("\\ISO 2022 IR 138", "שרון^דבורה")]
    [InlineData("\\ISO 2022 IR 148", "Gül^Şahin")]
    [InlineData("\\ISO 2022 IR 166", "สมชาย^ใจดี")]
    [InlineData("ISO 2022 IR 13\\ISO 2022 IR 87", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう")]
    [InlineData("\\ISO 2022 IR 87\\ISO 2022 IR 159", "Yamada=山田^丂=やまだ")]
    [InlineData("\\ISO 2022 IR 149", "Hong^Gildong=洪^吉洞=홍^길동")]
    [InlineData("\\ISO 2022 IR 58", "Zhang^XiaoDong=张^小东")]
    [InlineData("\\ISO 2022 IR 100\\ISO 2022 IR 144\\ISO 2022 IR 126", "Jérôme^Люкс^Διονυσιος")]
    public void Encode_ThenDecode_RoundTrips(string terms, string text)
    {
        var encoding = DicomEncoding.FromSpecificCharacterSet(terms.Split('\\'));

        var bytes = encoding.Encode(text, "PN");

        Assert.Equal(text, encoding.Decode(bytes, "PN"));
    }

    [Fact]
    public void Encode_Iso2022Japanese_ReturnsToAsciiBeforeDelimiters()
    {
        var encoding = DicomEncoding.FromSpecificCharacterSet(["", "ISO 2022 IR 87"]);

        var bytes = encoding.Encode("Yamada^Tarou=山田^太郎=やまだ^たろう", "PN");

        // The exact bytes of chrH31.dcm's Patient's Name (without the trailing pad).
        Assert.Equal("59616D6164615E5461726F753D1B24423B3345441B28425E1B244242404F3A1B28423D1B24422464245E24401B28425E1B2442243F246D24261B2842", Convert.ToHexString(bytes));
    }

    [Fact]
    public void Encode_Iso2022Korean_MatchesChrI2Bytes()
    {
        var encoding = DicomEncoding.FromSpecificCharacterSet(["", "ISO 2022 IR 149"]);

        var bytes = encoding.Encode("Hong^Gildong=洪^吉洞=홍^길동", "PN");

        Assert.Equal("486F6E675E47696C646F6E673D1B242943FBF35E1B242943D1CED4D73D1B242943C8AB5E1B242943B1E6B5BF", Convert.ToHexString(bytes));
    }

    [Fact]
    public void Decode_G1ResetsAtPnDelimiter_NextGroupUsesInitialSet()
    {
        // ESC - L designates Cyrillic to G1; after '^' G1 is back to the initial Latin-1 (value 1), so 0xE9 is é.
        var encoding = DicomEncoding.FromSpecificCharacterSet(["ISO 2022 IR 100", "ISO 2022 IR 144"]);
        byte[] raw = [0x1B, 0x2D, 0x4C, 0xBB, 0x5E, 0xE9];

        Assert.Equal("Л^é", encoding.Decode(raw, "PN"));
    }

    [Fact]
    public void Decode_BackslashInLongText_IsNotADelimiterButCrLfIs()
    {
        var encoding = DicomEncoding.FromSpecificCharacterSet(["ISO 2022 IR 100", "ISO 2022 IR 144"]);
        byte[] raw = [0x1B, 0x2D, 0x4C, 0xBB, 0x5C, 0xBB, 0x0D, 0x0A, 0xBB];

        // '\' keeps Cyrillic in G1 for LT; after CR LF G1 is Latin-1 again, so 0xBB is '»'.
        Assert.Equal("Л\\Л\r\n»", encoding.Decode(raw, "LT"));
        Assert.Equal("Л\\»", encoding.Decode(raw.AsSpan(0, 6), "LO"));
    }

    [Fact]
    public void JisX0212Table_MappedCount_IsPinned()
    {
        Assert.Equal(6067, JisX0212Table.MappedCount);
        Assert.Equal(94 * 94, JisX0212Table.Cells.Length);
        Assert.Equal(6067, JisX0212Table.Cells.Count(c => c != '\uFFFD'));
    }

    [Fact]
    public void Decode_Default_HighBytesReadAsLatin1()
    {
        Assert.Equal("Jérôme", DicomEncoding.Default.Decode(Encoding.Latin1.GetBytes("Jérôme"), "PN"));
    }

    [Fact]
    public void FromSpecificCharacterSet_EmptyTerms_IsDefault()
    {
        Assert.Same(DicomEncoding.Default, DicomEncoding.FromSpecificCharacterSet([]));
        Assert.Same(DicomEncoding.Default, DicomEncoding.FromSpecificCharacterSet([" "]));
    }

    [Fact]
    public void FromSpecificCharacterSet_UnknownTerm_IsListedAndDecodesAsDefault()
    {
        var encoding = DicomEncoding.FromSpecificCharacterSet(["ISO_IR 999"]);

        Assert.Equal(["ISO_IR 999"], encoding.UnknownTerms);
        Assert.Equal("abc", encoding.Decode("abc"u8, "LO"));
    }

    [Fact]
    public void Encode_CharacterNoTermHas_BecomesQuestionMark()
    {
        var encoding = DicomEncoding.FromSpecificCharacterSet(["ISO_IR 100"]);

        Assert.Equal("a?b", Encoding.ASCII.GetString(encoding.Encode("a王b", "LO")));
    }

    [Fact]
    public void Decode_UnknownEscape_IsKeptAsText()
    {
        var encoding = DicomEncoding.FromSpecificCharacterSet(["", "ISO 2022 IR 87"]);

        Assert.Equal("\u001b%Gx", encoding.Decode([0x1B, 0x25, 0x47, 0x78], "LO"));
    }

    [Fact]
    public void Decode_TruncatedEscapeAndOddJisRun_DoesNotThrow()
    {
        var encoding = DicomEncoding.FromSpecificCharacterSet(["", "ISO 2022 IR 87", "ISO 2022 IR 159"]);
        byte[][] inputs = [[0x1B], [0x1B, 0x24], [0x1B, 0x24, 0x42, 0x30], [0x1B, 0x24, 0x28, 0x44, 0x30], [0x1B, 0x24, 0x42, 0x30, 0x0A, 0x30, 0x21]];

        foreach (var input in inputs)
        {
            Assert.NotNull(encoding.Decode(input, "PN"));
        }
    }
}
