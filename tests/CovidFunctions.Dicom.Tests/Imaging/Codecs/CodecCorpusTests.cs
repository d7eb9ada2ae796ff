using System.Buffers.Binary;
using CovidFunctions.Dicom.Imaging;
using CovidFunctions.TestHelpers;
using Xunit.Abstractions;

namespace CovidFunctions.Dicom.Tests.Imaging.Codecs;

/// <summary>
/// Every encapsulated file of the shared corpus, decoded through <see cref="DicomFile"/> and <see cref="DicomPixelData"/>
/// and compared with an independent decoder (dcmtk, GDCM or pydicom, see tests/peers/pixel_reference.py): lossless
/// syntaxes must match exactly; lossy JPEG within the error recorded in tests/data/codecs/encapsulated-corpus.csv.
/// </summary>
public sealed class CodecCorpusTests(PixelReferenceFixture peers, ITestOutputHelper output) : IClassFixture<PixelReferenceFixture>
{
    public static IEnumerable<object[]> Decodable => EncapsulatedCorpus.Rows("decode");

    public static IEnumerable<object[]> Unsupported => EncapsulatedCorpus.Rows("unsupported");

    public static IEnumerable<object[]> Corrupt => EncapsulatedCorpus.Rows("corrupt");

    public static IEnumerable<object[]> Unreadable => EncapsulatedCorpus.Rows("unreadable");

    [Theory]
    [MemberData(nameof(Decodable))]
    public void DecodeFrame_DecodableCorpusFile_MatchesPeerWithinRecordedError(string path)
    {
        var entry = EncapsulatedCorpus.Get(path);
        var pixels = DicomPixelData.Create(DicomFile.Open(TestData.Shared(path)));
        Assert.Equal(entry.TransferSyntax, pixels.TransferSyntax.Uid);
        Assert.Equal(entry.Frames, pixels.FrameCount);

        var decoded = new List<byte>();
        for (var frame = 0; frame < pixels.FrameCount; frame++)
        {
            var result = pixels.DecodeFrame(frame);
            Assert.Equal(0, result.PlanarConfiguration);
            Assert.Equal(ExpectedLength(pixels.Format, result), result.Data.Length);
            decoded.AddRange(result.Data);
        }

        if (entry.Peer.Length == 0)
        {
            return; // no independent decoder handles this file (see the csv note); decoding without error is the check
        }

        var reference = peers.Reference(path);
        var (maxAbs, meanAbs) = Difference([.. decoded], reference, pixels.Format);
        output.WriteLine($"{path}: max |diff| {maxAbs}, mean |diff| {meanAbs:F6} vs {entry.Peer}");
        Assert.True(maxAbs <= entry.MaxAbs, $"max |diff| {maxAbs} > recorded {entry.MaxAbs}");
        Assert.True(meanAbs <= entry.MeanAbs + 1e-6, $"mean |diff| {meanAbs} > recorded {entry.MeanAbs}");
    }

    [Theory]
    [MemberData(nameof(Unsupported))]
    public void DecodeFrame_UnsupportedCorpusFile_ThrowsUnsupportedTransferSyntaxException(string path)
    {
        var entry = EncapsulatedCorpus.Get(path);
        var pixels = DicomPixelData.Create(DicomFile.Open(TestData.Shared(path)));

        var ex = Assert.Throws<UnsupportedTransferSyntaxException>(() => pixels.DecodeFrame(0));

        Assert.Equal(entry.TransferSyntax, ex.TransferSyntaxUid);
        Assert.Contains(entry.TransferSyntax, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Corrupt))]
    public void DecodeFrame_CorruptCorpusFile_ThrowsDicomFormatExceptionForBadFrames(string path)
    {
        var pixels = DicomPixelData.Create(DicomFile.Open(TestData.Shared(path)));
        var failures = 0;
        for (var frame = 0; frame < pixels.FrameCount; frame++)
        {
            try
            {
                pixels.DecodeFrame(frame);
            }
            catch (DicomFormatException ex)
            {
                failures++;
                Assert.Contains(pixels.TransferSyntax.Uid, ex.Message, StringComparison.Ordinal);
            }
        }

        Assert.True(failures > 0, "the file was listed as corrupt but every frame decoded");
    }

    [Theory]
    [MemberData(nameof(Unreadable))]
    public void Open_UnreadableCorpusFile_ThrowsDicomFormatException(string path) =>
        Assert.Throws<DicomFormatException>(() => DicomFile.Open(TestData.Shared(path)));

    [Fact]
    public void CorpusList_EveryEncapsulatedSharedFile_IsListedWithItsSyntax()
    {
        var listed = EncapsulatedCorpus.Entries.Where(e => e.Outcome != "unreadable")
            .ToDictionary(e => e.Path, e => e.TransferSyntax, StringComparer.Ordinal);
        var found = new List<string>();
        var problems = new List<string>();
        foreach (var file in PixelReferencePeer.CandidateFiles())
        {
            DicomFile dicom;
            try
            {
                dicom = DicomFile.Open(file);
            }
            catch (Exception ex) when (ex is DicomException or EndOfStreamException or InvalidDataException)
            {
                continue; // not DICOM, or unreadable: the reader tests' concern (unreadable encapsulated files are listed as such)
            }

            if (!dicom.TransferSyntax.IsEncapsulated || !dicom.Dataset.Contains(new DicomTag(0x7FE0, 0x0010))
                || dicom.Dataset[new DicomTag(0x7FE0, 0x0010)] is not DicomFragmentSequence)
            {
                continue;
            }

            var relative = PixelReferencePeer.Relative(file);
            found.Add(relative);
            if (!listed.TryGetValue(relative, out var syntax) || syntax != dicom.TransferSyntax.Uid)
            {
                problems.Add($"{relative} ({dicom.TransferSyntax.Uid}) is missing from encapsulated-corpus.csv or listed with {syntax}");
            }
        }

        problems.AddRange(listed.Keys.Except(found, StringComparer.Ordinal).Select(p => $"{p} is listed but not an encapsulated file of the corpus"));
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    private static int ExpectedLength(PixelFormat format, DecodedFrame frame) =>
        format.BitsAllocated == 1
            ? ((format.Rows * format.Columns * format.SamplesPerPixel) + 7) / 8
            : format.Rows * format.Columns * (frame.PhotometricInterpretation == format.PhotometricInterpretation ? format.SamplesPerPixel : 3) * (format.BitsAllocated / 8);

    /// <summary>Largest and mean absolute sample difference; signed 16-bit samples compare as signed values.</summary>
    private static (long Max, double Mean) Difference(byte[] actual, byte[] expected, PixelFormat format)
    {
        Assert.Equal(expected.Length, actual.Length);
        if (format.BitsAllocated == 1)
        {
            return (actual.AsSpan().SequenceEqual(expected) ? 0 : 1, actual.AsSpan().SequenceEqual(expected) ? 0 : 1);
        }

        var bytes = format.BitsAllocated / 8;
        long max = 0;
        double sum = 0;
        var count = actual.Length / bytes;
        for (var i = 0; i < actual.Length; i += bytes)
        {
            long a, e;
            switch (bytes)
            {
                case 1:
                    (a, e) = (actual[i], expected[i]);
                    break;
                case 2 when format.IsSigned:
                    (a, e) = (BinaryPrimitives.ReadInt16LittleEndian(actual.AsSpan(i)), BinaryPrimitives.ReadInt16LittleEndian(expected.AsSpan(i)));
                    break;
                case 2:
                    (a, e) = (BinaryPrimitives.ReadUInt16LittleEndian(actual.AsSpan(i)), BinaryPrimitives.ReadUInt16LittleEndian(expected.AsSpan(i)));
                    break;
                default:
                    (a, e) = (BinaryPrimitives.ReadUInt32LittleEndian(actual.AsSpan(i)), BinaryPrimitives.ReadUInt32LittleEndian(expected.AsSpan(i)));
                    break;
            }

            var d = Math.Abs(a - e);
            max = Math.Max(max, d);
            sum += d;
        }

        return (max, sum / count);
    }
}
