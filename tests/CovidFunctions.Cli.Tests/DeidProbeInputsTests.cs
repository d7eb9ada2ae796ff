using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using CovidFunctions.Dicom;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn deid</c> as a process over the input-side PHI probes of round 2 (the dataset-side ones are
/// AdversarialProbeRound2Tests in Dicom.Tests): a file named after a patient with text appended after its last element,
/// encapsulated Pixel Data that does not decode with text in its fragment, a zip whose entry name and comment carry PHI,
/// and a DICOMDIR whose directory records name the patient. No marker may reach an output file's name or bytes, nor the
/// report's reasons; the report's <c>input</c> names the caller's own paths (documented in deid-conformance.md).
/// </summary>
public sealed class DeidProbeInputsTests
{
    private const string Marker = "HBQCLIPROBEMARKZ";

    [Fact]
    public void Deid_InputSideProbes_LeaveNoMarker_AndKeepTheImage()
    {
        using var temp = TestData.CreateTempDirectory();
        var input = Directory.CreateDirectory(Path.Combine(temp.Path, "in")).FullName;
        var source = TestData.Shared(["dicom", "chest-ct", "covid19-ny-sbu", "A002304", "axial", "19001231-076.dcm"]);

        // 1. Named after the patient, text appended after the dataset. Before: refused as unreadable (the text parsed as an
        //    element longer than the file), so the image was lost.
        File.WriteAllBytes(Path.Combine(input, "DOE_JANE_MRN99887766.dcm"), [.. File.ReadAllBytes(source), .. Encoding.ASCII.GetBytes(Marker + Marker)]);

        // 2. Encapsulated (RLE) Pixel Data whose one fragment is text: does not decode, so it is refused, not copied.
        var undecodable = DicomFile.Open(source);
        undecodable.Dataset.AddOrUpdate(new DicomFragmentSequence(
            new DicomTag(0x7FE0, 0x0010), DicomVR.OB, ReadOnlyMemory<byte>.Empty, [new DicomFragment(Encoding.ASCII.GetBytes(Marker))]));
        undecodable.TransferSyntax = TransferSyntax.Lookup("1.2.840.10008.1.2.5");
        undecodable.Save(Path.Combine(input, "undecodable.dcm"));

        // 3. A zip: PHI in the entry name and in the archive comment.
        using (var zip = ZipFile.Open(Path.Combine(input, "upload.zip"), ZipArchiveMode.Create))
        {
            zip.CreateEntryFromFile(source, "SMITH_JOHN_" + Marker + ".dcm");
            zip.Comment = "patient SMITH JOHN " + Marker;
        }

        // 4. A DICOMDIR: the patient's name in a directory record.
        var record = new DicomDataset();
        record.SetString(new DicomTag(0x0004, 0x1430), DicomVR.CS, "PATIENT");
        record.SetString(new DicomTag(0x0010, 0x0010), DicomVR.PN, Marker + "^DIR");
        var dir = new DicomDataset();
        dir.SetString(new DicomTag(0x0004, 0x1130), DicomVR.CS, "COVIDFN");
        dir.AddOrUpdate(new DicomSequence(new DicomTag(0x0004, 0x1220), [record]));
        var dicomdir = new DicomFile(dir);
        dicomdir.FileMetaInformation.SetString(new DicomTag(0x0002, 0x0002), DicomVR.UI, "1.2.840.10008.1.3.10");
        dicomdir.FileMetaInformation.SetString(new DicomTag(0x0002, 0x0003), DicomVR.UI, "1.2.826.0.1.3680043.2.1125.77");
        dicomdir.Save(Path.Combine(input, "DICOMDIR"));

        var outdir = Path.Combine(temp.Path, "out");
        var report = Path.Combine(temp.Path, "report.json");
        RunDeid(input, outdir, Path.Combine(temp.Path, "deid.key"), report);

        using var json = JsonDocument.Parse(File.ReadAllText(report));
        var entries = json.RootElement.GetProperty("inputs").EnumerateArray()
            .ToDictionary(e => e.GetProperty("input").GetString()!, e => e);
        Assert.Equal("accepted", entries["DOE_JANE_MRN99887766.dcm"].GetProperty("status").GetString());
        Assert.Equal("accepted", entries["upload.zip!/SMITH_JOHN_" + Marker + ".dcm"].GetProperty("status").GetString());
        Assert.Equal("pixel-data-unreadable", entries["undecodable.dcm"].GetProperty("reasonCode").GetString());
        Assert.Equal("unsupported-sop-class", entries["DICOMDIR"].GetProperty("reasonCode").GetString());
        foreach (var entry in entries.Values)
        {
            Assert.DoesNotContain(Marker, entry.TryGetProperty("reason", out var r) ? r.GetString() : string.Empty, StringComparison.Ordinal);
            Assert.DoesNotContain("MRN99887766", entry.TryGetProperty("output", out var o) ? o.GetString() : string.Empty, StringComparison.Ordinal);
        }

        var outputs = Directory.GetFiles(outdir);
        Assert.Single(outputs); // the two accepted inputs are one instance: byte-identical outputs share one file
        var expectedPixels = Assert.IsType<DicomValueElement>(DicomFile.Open(source).Dataset[new DicomTag(0x7FE0, 0x0010)]).RawValue.ToArray();
        foreach (var path in outputs)
        {
            Assert.DoesNotContain("MRN99887766", path, StringComparison.Ordinal);
            Assert.DoesNotContain("SMITH", path, StringComparison.Ordinal);
            var bytes = File.ReadAllBytes(path);
            foreach (var marker in new[] { Marker, "MRN99887766", "DOE_JANE", "SMITH_JOHN", "SMITH JOHN" })
            {
                Assert.True(bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes(marker)) < 0, $"{marker} in {Path.GetFileName(path)}");
                Assert.True(bytes.AsSpan().IndexOf(Encoding.Unicode.GetBytes(marker)) < 0, $"{marker} (UTF-16) in {Path.GetFileName(path)}");
            }

            var pixels = Assert.IsType<DicomValueElement>(DicomFile.Open(path).Dataset[new DicomTag(0x7FE0, 0x0010)]).RawValue.ToArray();
            Assert.Equal(expectedPixels, pixels);
            var (rc, dump) = Run("dcmdump", "-q", path);
            Assert.True(rc == 0 && !dump.Contains("E: ", StringComparison.Ordinal), dump);
        }
    }

    private static void RunDeid(string input, string outdir, string key, string report)
    {
        var (rc, output) = Run("dotnet", Path.Combine(AppContext.BaseDirectory, "covidfn.dll"), "deid", input, outdir, "--key-file", key, "--report", report);
        Assert.True(rc == 0, output); // the undecodable instance and the DICOMDIR are refused
    }

    private static (int ExitCode, string Output) Run(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr);
    }
}
