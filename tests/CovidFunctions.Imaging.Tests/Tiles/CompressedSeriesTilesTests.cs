using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.TestHelpers;
using Xunit.Abstractions;

namespace CovidFunctions.Imaging.Tests.Tiles;

/// <summary>
/// Tiling decodes each slice as it writes it (<see cref="SeriesTiles.WriteAsync(AssembledSeries, IBlobStore, string, Func{string, string}?, int, CancellationToken)"/>
/// through <see cref="AssembledSeries.ReadHuInt16"/>): a compressed input is decoded there and nowhere before. The tiles
/// of real CT files in every transfer syntax the conformance corpus has for them are read back and compared, voxel by
/// voxel, with the HU of an independent decoder (tests/peers/hu_reference.py: dcmtk dcmdjpeg / dcmdjpls / dcmdrle,
/// gdcmconv for JPEG 2000, pydicom for native and deflated, pydicom's modality LUT, rounded as tiles are).
/// </summary>
public sealed class CompressedSeriesTilesTests(ITestOutputHelper output) : IDisposable
{
    private const string Folder = "cornerstone-wado-testimages";
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(3));
    private readonly TempDirectory _temp = TestData.CreateTempDirectory();

    public void Dispose()
    {
        _timeout.Dispose();
        _temp.Dispose();
    }

    /// <summary>
    /// File, and whether its decoding may differ from the peer's. DCT JPEG (processes 1, 2-4, 6-8, 10-12) is lossy and its
    /// inverse DCT is the decoder's own: ours and dcmdjpeg's (IJG) may round a sample apart, one stored unit (which is
    /// Rescale Slope HU: 2.0002 for the 12-bit copies, 32.12 for the 8-bit one). Every other syntax, lossy JPEG-LS and
    /// JPEG 2000 included, decodes to one exact result, so it must equal the peer's to the voxel.
    /// </summary>
    public static TheoryData<string, bool> Files => new()
    {
        { "CTImage.dcm", false },
        { "CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm", false },
        { "CTImage.dcm_BigEndianExplicitTransferSyntax_1.2.840.10008.1.2.2.dcm", false },
        { "CTImage.dcm_DeflatedExplicitVRLittleEndianTransferSyntax_1.2.840.10008.1.2.1.99.dcm", false },
        { "CTImage.dcm_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm", false },
        { "CTImage.dcm_JPEGProcess14TransferSyntax_1.2.840.10008.1.2.4.57.dcm", false },
        { "CTImage.dcm_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm", false },
        { "CTImage.dcm_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm", false },
        { "CTImage.dcm_JPEGLSLossyTransferSyntax_1.2.840.10008.1.2.4.81.dcm", false },
        { "CTImage.dcm_JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm", false },
        { "CTImage.dcm_JPEG2000TransferSyntax_1.2.840.10008.1.2.4.91.dcm", false },
        { "CT1_J2KR", false },
        { "CT2_J2KR", false },
        { "CTImage.dcm_JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm", true },
        { "CTImage.dcm_JPEGProcess2_4TransferSyntax_1.2.840.10008.1.2.4.51.dcm", true },
        { "CTImage.dcm_JPEGProcess6_8TransferSyntax_1.2.840.10008.1.2.4.53.dcm", true },
        { "CTImage.dcm_JPEGProcess10_12TransferSyntax_1.2.840.10008.1.2.4.55.dcm", true },
    };

    [Theory]
    [MemberData(nameof(Files))]
    public async Task The_tiles_of_a_compressed_CT_file_hold_the_HU_an_independent_decoder_reads(string file, bool dct)
    {
        var path = TestData.Shared("dicom", "conformance", Folder, file);
        var peer = HuReference(path);
        using var series = SeriesAssembler.Assemble(path);
        Assert.Equal((1, 512, 512), (series.SliceCount, series.Rows, series.Columns));

        // Stored row-major as the peer reads it: an axial slice with the standard orientation is not flipped by assembly.
        Assert.DoesNotContain(series.Report.Issues, i => i.Kind == "flipped-in-plane");
        var store = new FileSystemBlobStore(_temp.Path);
        var manifest = await SeriesTiles.WriteAsync(series, store, "tiles", uid => "2.25.1", 2, _timeout.Token);
        var reader = await TileSeriesReader.OpenAsync(store, "tiles", _timeout.Token);
        var tile = (await reader.ReadChunkAsync(Assert.Single(manifest.Chunks), _timeout.Token)).As<short>().ToArray();

        Assert.Equal(peer.Hu.Length, tile.Length);
        var (max, differing) = (0, 0);
        for (var i = 0; i < tile.Length; i++)
        {
            var d = Math.Abs(tile[i] - peer.Hu[i]);
            max = Math.Max(max, d);
            differing += d == 0 ? 0 : 1;
        }

        output.WriteLine($"{file}: peer {peer.Tool}, slope {peer.Slope}, max |ΔHU| {max}, {differing} of {tile.Length} voxels differ");
        if (dct)
        {
            // One stored unit, then each side's rounding to whole HU.
            Assert.True(max <= Math.Ceiling(peer.Slope) + 1, $"{file}: max |ΔHU| {max} against {peer.Tool}, more than one stored unit ({peer.Slope} HU)");
            Assert.True(differing * 10 < tile.Length, $"{file}: {differing} voxels differ from {peer.Tool}");
        }
        else
        {
            Assert.True(max == 0, $"{file}: max |ΔHU| {max} against {peer.Tool} ({differing} voxels differ)");
        }
    }

    private static (short[] Hu, string Tool, double Slope) HuReference(string path)
    {
        var start = new ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        start.ArgumentList.Add(Path.Combine(TestData.RepoRoot, "tests", "peers", "hu_reference.py"));
        using var process = Process.Start(start) ?? throw new InvalidOperationException("python3 did not start");
        var stderr = process.StandardError.ReadToEndAsync();
        process.StandardInput.WriteLine(path);
        process.StandardInput.Close();
        var line = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), "hu_reference.py did not finish");
        Assert.True(process.ExitCode == 0, $"hu_reference.py exited {process.ExitCode}: {stderr.Result}");
        var result = JsonNode.Parse(line)!.AsObject();
        try
        {
            Assert.True(result["ok"]!.GetValue<bool>(), $"the peer could not decode {path}: {result["error"]}");
            var bytes = File.ReadAllBytes(result["hu"]!.GetValue<string>());
            var hu = new short[bytes.Length / 2];
            Buffer.BlockCopy(bytes, 0, hu, 0, bytes.Length);
            return (hu, result["tool"]!.GetValue<string>(), result["slope"]!.GetValue<double>());
        }
        finally
        {
            Directory.Delete(result["dir"]!.GetValue<string>(), recursive: true);
        }
    }
}
