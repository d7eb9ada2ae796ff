using System.IO.Compression;
using System.Text;
using System.Text.Json;
using CovidFunctions.Dicom;
using CovidFunctions.Imaging.Phantoms;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>
/// A slice whose image attributes cannot be used (Rows present but empty, the intercept missing where its series has
/// it) is left out of its series: the rest is screened, the study notes name the file (masked in the row) and why, and
/// the original is kept in <c>quarantine/…/skipped/</c> as other instances not screened are. Before (9b7f788), the
/// empty Rows threw from the assembler's header scan and failed the whole study. The study fails only when nothing
/// screenable remains, saying why.
/// </summary>
public sealed class IngestDefectiveInstanceTests
{
    private const string Tenant = "lab";
    private const string DefectNote = "defective image attributes, left out of its series: ";

    [Fact]
    public async Task A_slice_with_empty_Rows_and_one_without_its_intercept_are_left_out_kept_in_quarantine_and_the_rest_is_screened()
    {
        using var host = new IngestTestHost();
        var phantom = Phantom(12);
        var folder = host.Scratch("slices");
        var paths = phantom.WriteFolder(folder);
        Spoil(paths[5], ds => ds.AddOrUpdate(new DicomValueElement(DicomTags.Rows, DicomVR.US, Array.Empty<byte>())));
        Spoil(paths[7], ds => ds.Remove(DicomTags.RescaleIntercept));
        foreach (var path in paths)
        {
            await host.UploadFileAsync($"{Tenant}/Doe_Jane/{Path.GetFileName(path)}", path);
        }

        await host.UploadAsync($"{Tenant}/Doe_Jane/{PipelineNames.CompleteMarker}", []);

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal((IngestStatus.Ingested, 10), (outcome.Status, outcome.SliceCount));
        var study = (await host.Studies.GetAsync(Tenant, outcome.StudyId, default))!;
        Assert.Equal(StudyStatus.Processing, study.Status);
        using var series = JsonDocument.Parse(study.SeriesJson!);
        var notes = series.RootElement.GetProperty("skippedInstances").EnumerateArray().Select(n => n.GetString()!).ToList();
        notes.Sort(StringComparer.Ordinal);
        Assert.Equal(2, notes.Count);
        Assert.Equal($"[name]: {DefectNote}RescaleIntercept (0028,1052) missing, which the other 10 image(s) of its series have", notes[0]);
        Assert.Equal($"[name]: {DefectNote}Rows (0028,0010) is empty", notes[1]);
        Assert.DoesNotContain(notes, n => n.Contains("Doe_Jane", StringComparison.Ordinal) || n.Contains("CT000", StringComparison.Ordinal));
        Assert.Equal(2, series.RootElement.GetProperty("notScreenedFiles").GetInt32());

        // The originals not screened are in quarantine byte for byte, each named in reason.json with why.
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/skipped/reason.json")));
        Assert.Equal(IngestHandler.NotScreenedReason, reason.Reason);
        var kept = reason.Files!.ToDictionary(f => f.Name, f => f.Why, StringComparer.Ordinal);
        Assert.Equal(
            new Dictionary<string, string>
            {
                [CtPhantom.FileName(5)] = DefectNote + "Rows (0028,0010) is empty",
                [CtPhantom.FileName(7)] = DefectNote + "RescaleIntercept (0028,1052) missing, which the other 10 image(s) of its series have",
            },
            kept);
        foreach (var index in new[] { 5, 7 })
        {
            Assert.Equal(await File.ReadAllBytesAsync(paths[index]), await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/skipped/{CtPhantom.FileName(index)}"));
        }

        Assert.Single(host.Orchestrations.Started);
    }

    [Fact]
    public async Task A_study_whose_every_slice_is_defective_is_rejected_saying_which_and_why()
    {
        using var host = new IngestTestHost();
        var folder = host.Scratch("slices");
        var paths = Phantom(4).WriteFolder(folder);
        foreach (var path in paths)
        {
            Spoil(path, ds => ds.SetValues(DicomTags.PixelSpacing, DicomVR.DS, 0.0, 0.0));
        }

        using (var zip = new MemoryStream())
        {
            using (var archive = new ZipArchive(zip, ZipArchiveMode.Create, leaveOpen: true))
            {
                foreach (var path in paths)
                {
                    archive.CreateEntryFromFile(path, $"chest/{Path.GetFileName(path)}");
                }
            }

            await host.UploadAsync($"{Tenant}/Doe_Jane.zip", zip.ToArray());
        }

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal((IngestStatus.Rejected, "no-images"), (outcome.Status, outcome.Reason));
        Assert.Contains("4 DICOM image(s) left out for defective image attributes: ", outcome.Detail, StringComparison.Ordinal);
        Assert.Contains($"chest/{CtPhantom.FileName(0)}: {DefectNote}PixelSpacing (0028,0030) is 2 value(s) (0\\0); it is two distances in mm, each more than 0", outcome.Detail, StringComparison.Ordinal);
        var study = (await host.Studies.GetAsync(Tenant, outcome.StudyId, default))!;
        Assert.Equal(StudyStatus.Rejected, study.Status);
        Assert.Contains("PixelSpacing (0028,0030) is 2 value(s)", study.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain("Doe_Jane", study.Reason, StringComparison.Ordinal);
    }

    private static CtPhantom Phantom(int slices) =>
        new(new CtPhantomOptions { Matrix = 128, Slices = slices, LesionCount = 0, Finding = PhantomFinding.None });

    private static void Spoil(string path, Action<DicomDataset> spoil)
    {
        var file = DicomFile.Open(path);
        spoil(file.Dataset);
        file.Save(path);
    }
}
