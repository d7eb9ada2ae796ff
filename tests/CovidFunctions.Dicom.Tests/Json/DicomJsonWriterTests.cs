using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using CovidFunctions.Dicom.Json;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Json;

/// <summary>The DICOM JSON Model writer against PS3.18 Annex F.2.</summary>
public class DicomJsonWriterTests
{
    private static DicomValueElement Element(ushort group, ushort element, DicomVR vr, byte[] value) =>
        new(new DicomTag(group, element), vr, value);

    private static JsonElement Write(DicomDataset dataset, DicomJsonOptions? options = null) =>
        JsonDocument.Parse(DicomJsonWriter.Serialize(dataset, options)).RootElement;

    [Fact]
    public void Write_StringElements_KeyedByUppercaseHexTagWithVrAndValue()
    {
        var dataset = new DicomDataset([Element(0x0008, 0x0060, DicomVR.CS, "CT"u8.ToArray()), Element(0x0020, 0x000D, DicomVR.UI, "1.2.3\0"u8.ToArray())]);

        var json = Write(dataset);

        Assert.Equal("CS", json.GetProperty("00080060").GetProperty("vr").GetString());
        Assert.Equal("CT", json.GetProperty("00080060").GetProperty("Value")[0].GetString());
        Assert.Equal("1.2.3", json.GetProperty("0020000D").GetProperty("Value")[0].GetString());
    }

    [Fact]
    public void Write_EmptyValue_OmitsValue()
    {
        var json = Write(new DicomDataset([Element(0x0010, 0x0020, DicomVR.LO, [])]));

        var attribute = json.GetProperty("00100020");
        Assert.Equal("LO", attribute.GetProperty("vr").GetString());
        Assert.False(attribute.TryGetProperty("Value", out _));
    }

    [Fact]
    public void Write_MultiValuedWithEmptyValue_WritesNull()
    {
        var json = Write(new DicomDataset([Element(0x0008, 0x0008, DicomVR.CS, @"ORIGINAL\\AXIAL "u8.ToArray())]));

        var values = json.GetProperty("00080008").GetProperty("Value");
        Assert.Equal(3, values.GetArrayLength());
        Assert.Equal("ORIGINAL", values[0].GetString());
        Assert.Equal(JsonValueKind.Null, values[1].ValueKind);
        Assert.Equal("AXIAL", values[2].GetString());
    }

    [Fact]
    public void Write_PersonName_AlphabeticIdeographicPhoneticObjects()
    {
        var dataset = new DicomDataset([Element(0x0008, 0x0005, DicomVR.CS, "ISO_IR 192"u8.ToArray())]);
        dataset.AddOrUpdate(Element(0x0010, 0x0010, DicomVR.PN, Encoding.UTF8.GetBytes("Wang^XiaoDong=王^小東=")));

        var name = Write(dataset).GetProperty("00100010").GetProperty("Value")[0];

        Assert.Equal("Wang^XiaoDong", name.GetProperty("Alphabetic").GetString());
        Assert.Equal("王^小東", name.GetProperty("Ideographic").GetString());
        Assert.False(name.TryGetProperty("Phonetic", out _));
    }

    [Fact]
    public void Write_DecimalAndIntegerStrings_AreJsonNumbers()
    {
        var dataset = new DicomDataset(
        [
            Element(0x0028, 0x0030, DicomVR.DS, @"0.703125\.5 "u8.ToArray()),
            Element(0x0020, 0x0013, DicomVR.IS, " +12 "u8.ToArray()),
            Element(0x0018, 0x0050, DicomVR.DS, "1.25E+1 "u8.ToArray()),
        ]);

        var json = Write(dataset);

        var spacing = json.GetProperty("00280030").GetProperty("Value");
        Assert.Equal(JsonValueKind.Number, spacing[0].ValueKind);
        Assert.Equal("0.703125", spacing[0].GetRawText());
        Assert.Equal(0.5, spacing[1].GetDouble());
        Assert.Equal(12, json.GetProperty("00200013").GetProperty("Value")[0].GetInt32());
        Assert.Equal(12.5, json.GetProperty("00180050").GetProperty("Value")[0].GetDouble());
    }

    [Fact]
    public void Write_UnparsableDecimalString_KeptAsString()
    {
        var json = Write(new DicomDataset([Element(0x0018, 0x0050, DicomVR.DS, "abc "u8.ToArray())]));

        Assert.Equal("abc", json.GetProperty("00180050").GetProperty("Value")[0].GetString());
    }

    [Fact]
    public void Write_BinaryNumbers_AreJsonNumbersAndNonFiniteStrings()
    {
        var fd = new byte[16];
        BinaryPrimitives.WriteDoubleLittleEndian(fd, 1.5);
        BinaryPrimitives.WriteDoubleLittleEndian(fd.AsSpan(8), double.NaN);
        var dataset = new DicomDataset(
        [
            Element(0x0028, 0x0010, DicomVR.US, [0x00, 0x02]),
            Element(0x0028, 0x0106, DicomVR.SS, [0x00, 0x80]),
            Element(0x0018, 0x9087, DicomVR.FD, fd),
        ]);

        var json = Write(dataset);

        Assert.Equal(512, json.GetProperty("00280010").GetProperty("Value")[0].GetInt32());
        Assert.Equal(-32768, json.GetProperty("00280106").GetProperty("Value")[0].GetInt32());
        Assert.Equal(1.5, json.GetProperty("00189087").GetProperty("Value")[0].GetDouble());
        Assert.Equal("NaN", json.GetProperty("00189087").GetProperty("Value")[1].GetString());
    }

    [Fact]
    public void Write_AttributeTag_IsHexString()
    {
        var json = Write(new DicomDataset([Element(0x0020, 0x9165, DicomVR.AT, [0x28, 0x00, 0x10, 0x00])]));

        Assert.Equal("00280010", json.GetProperty("00209165").GetProperty("Value")[0].GetString());
    }

    [Fact]
    public void Write_Sequence_ArrayOfItemObjects()
    {
        var item = new DicomDataset([Element(0x0008, 0x1150, DicomVR.UI, "1.2.840.10008.5.1.4.1.1.2\0"u8.ToArray())]);
        var dataset = new DicomDataset([new DicomSequence(new DicomTag(0x0008, 0x1140), item), new DicomSequence(new DicomTag(0x0008, 0x1115))]);

        var json = Write(dataset);

        var sequence = json.GetProperty("00081140");
        Assert.Equal("SQ", sequence.GetProperty("vr").GetString());
        Assert.Equal("1.2.840.10008.5.1.4.1.1.2", sequence.GetProperty("Value")[0].GetProperty("00081150").GetProperty("Value")[0].GetString());
        Assert.False(json.GetProperty("00081115").TryGetProperty("Value", out _));
    }

    [Fact]
    public void Write_SmallBinary_InlineBinaryBase64AndLargeBinary_BulkDataUri()
    {
        var small = new byte[] { 1, 2, 3, 4 };
        var large = new byte[2048];
        var dataset = new DicomDataset([Element(0x0009, 0x1001, DicomVR.OB, small), Element(0x0009, 0x1002, DicomVR.OB, large)]);

        var json = Write(dataset);

        Assert.Equal(Convert.ToBase64String(small), json.GetProperty("00091001").GetProperty("InlineBinary").GetString());
        Assert.Equal("bulkdata:00091002", json.GetProperty("00091002").GetProperty("BulkDataURI").GetString());
    }

    [Fact]
    public void Write_PixelData_AlwaysBulkDataUriEvenWhenSmall()
    {
        var json = Write(new DicomDataset([Element(0x7FE0, 0x0010, DicomVR.OW, new byte[8])]));

        Assert.False(json.GetProperty("7FE00010").TryGetProperty("InlineBinary", out _));
        Assert.Equal("bulkdata:7FE00010", json.GetProperty("7FE00010").GetProperty("BulkDataURI").GetString());
    }

    [Fact]
    public void Write_FileWithBulkReferences_FileUriWithOffsetAndLength()
    {
        var path = TestData.Shared("dicom", "conformance", "pydicom-testfiles", "test_files", "CT_small.dcm");
        var file = DicomFile.Open(path, new DicomReadOptions { BulkDataThreshold = 1024 });

        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            DicomJsonWriter.Write(writer, file);
        }

        var json = JsonDocument.Parse(stream.ToArray()).RootElement;
        var uri = json.GetProperty("7FE00010").GetProperty("BulkDataURI").GetString()!;
        Assert.StartsWith("file:///", uri, StringComparison.Ordinal);
        var query = uri[(uri.IndexOf('?', StringComparison.Ordinal) + 1)..].Split('&').Select(p => p.Split('=')).ToDictionary(p => p[0], p => long.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(128 * 128 * 2, query["length"]);
        var bytes = File.ReadAllBytes(path);
        var element = (DicomValueElement)file.Dataset[new DicomTag(0x7FE0, 0x0010)];
        Assert.True(bytes.AsSpan((int)query["offset"], (int)query["length"]).SequenceEqual(element.RawValue.Span));
        Assert.Equal("1.2.840.10008.1.2.1", json.GetProperty("00020010").GetProperty("Value")[0].GetString());
    }

    [Fact]
    public void Write_Iso2022Charset_DecodesPersonNameGroups()
    {
        var path = TestData.Shared("dicom", "conformance", "pydicom-testfiles", "charset_files", "chrH31.dcm");
        var file = DicomFile.Open(path);

        var name = Write(file.Dataset).GetProperty("00100010").GetProperty("Value")[0];

        Assert.Equal("Yamada^Tarou", name.GetProperty("Alphabetic").GetString());
        Assert.Equal("山田^太郎", name.GetProperty("Ideographic").GetString());
        Assert.Equal("やまだ^たろう", name.GetProperty("Phonetic").GetString());
    }

    [Theory]
    [InlineData("0", true)]
    [InlineData("-0.5", true)]
    [InlineData("1e10", true)]
    [InlineData("1.25E+1", true)]
    [InlineData(".5", false)]
    [InlineData("+5", false)]
    [InlineData("1.", false)]
    [InlineData("01", false)]
    [InlineData("NaN", false)]
    public void IsJsonNumber_Grammar_MatchesRfc8259(string text, bool expected)
    {
        Assert.Equal(expected, DicomJsonWriter.IsJsonNumber(text));
    }
}
