using System.Text;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

using static CovidFunctions.Pipeline.Tests.Ingest.IngestTestFiles;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>
/// The project's rule for bad input, case by case: a reject names the uploaded file and the reason, the original is
/// kept in quarantine (byte for byte) before the upload is deleted, the study ends rejected and subscribers hear of it
/// once. None of these may escape as an exception (the trigger would retry the same bytes forever).
/// </summary>
public sealed class IngestFailurePathTests
{
    private const string Tenant = "lab";

    [Fact]
    public async Task TruncatedDicom_HeaderOnly_IsRejectedAsUnreadable()
    {
        var whole = File.ReadAllBytes(MidChestSlices(1)[0]);
        var content = whole[..400];
        var (host, outcome) = await IngestOneAsync("cut.dcm", content);
        using (host)
        {
            await AssertRejectedAsync(host, outcome, "cut.dcm", "cut.dcm", content);
        }
    }

    [Fact]
    public async Task TruncatedDicom_PixelDataCut_IsRejectedWithTheFileName()
    {
        var whole = File.ReadAllBytes(MidChestSlices(1)[0]);
        var content = whole[..(whole.Length - 100_000)];
        var (host, outcome) = await IngestOneAsync("short.dcm", content);
        using (host)
        {
            await AssertRejectedAsync(host, outcome, "short.dcm", "short.dcm", content);
        }
    }

    [Fact]
    public async Task CtWithACorruptJpegCodestream_IsRejectedNamingTheFile_NotRetriedForEver()
    {
        // Before: the decode error escaped from the lung-coverage check (outside the reject handling), so ingest threw
        // on every delivery, the study stayed "processing" and the message named the temporary de-identified copy.
        var content = File.ReadAllBytes(TestData.Shared("dicom", "conformance", "dcm4che-testdata", "CT-JPEGLosslessSV1.dcm"));
        var random = new Random(7);
        for (var i = content.Length * 6 / 10; i < content.Length - 16; i += 7)
        {
            content[i] = (byte)random.Next(256);
        }

        var (host, outcome) = await IngestOneAsync("jpeg.dcm", content);
        using (host)
        {
            await AssertRejectedAsync(host, outcome, "jpeg.dcm", "jpeg.dcm: pixel data cannot be decoded", content);
            Assert.Equal("unreadable", outcome.Reason);
        }
    }

    [Fact]
    public async Task ZeroByteBlob_IsRejected_NotLeftInTheUploads()
    {
        var (host, outcome) = await IngestOneAsync("empty.dcm", []);
        using (host)
        {
            await AssertRejectedAsync(host, outcome, "empty.dcm", "empty.dcm", []);
        }
    }

    [Fact]
    public async Task ZipWithNoImages_IsRejectedAsNoImages_NamingItsEntries()
    {
        var zip = Zip([("readme.txt", Encoding.UTF8.GetBytes("hello")), ("data/values.csv", Encoding.UTF8.GetBytes("1,2,3"))]);
        var (host, outcome) = await IngestOneAsync("notes.zip", zip);
        using (host)
        {
            await AssertRejectedAsync(host, outcome, "notes.zip", "notes.zip/readme.txt", zip);
            Assert.Equal("no-images", outcome.Reason);
        }
    }

    [Fact]
    public async Task EmptyZip_IsRejected()
    {
        var zip = Zip([]);
        var (host, outcome) = await IngestOneAsync("nothing.zip", zip);
        using (host)
        {
            await AssertRejectedAsync(host, outcome, "nothing.zip", "nothing.zip", zip);
        }
    }

    [Fact]
    public async Task EncryptedZip_IsRejectedAsRefused()
    {
        var slices = MidChestSlices(2);
        var zip = Encrypted(Zip(slices.Select(f => (Path.GetFileName(f), File.ReadAllBytes(f)))));
        var (host, outcome) = await IngestOneAsync("locked.zip", zip);
        using (host)
        {
            await AssertRejectedAsync(host, outcome, "locked.zip", "locked.zip", zip);
        }
    }

    [Fact]
    public async Task CorruptZip_IsRejectedAsRefused()
    {
        var slices = MidChestSlices(2);
        var whole = Zip(slices.Select(f => (Path.GetFileName(f), File.ReadAllBytes(f))));
        var zip = whole[..(whole.Length / 2)];
        var (host, outcome) = await IngestOneAsync("half.zip", zip);
        using (host)
        {
            await AssertRejectedAsync(host, outcome, "half.zip", "half.zip", zip);
        }
    }

    [Fact]
    public async Task NestedZip_IsRejectedSayingThatItIsAZipInAZip()
    {
        // Before: "outer.zip/inner.zip: not readable as DICOM ((3DE0,F22C) UN declares 151840268 bytes ...)".
        var inner = Zip(MidChestSlices(3).Select(f => (Path.GetFileName(f), File.ReadAllBytes(f))));
        var outer = Zip([("inner.zip", inner)]);
        var (host, outcome) = await IngestOneAsync("outer.zip", outer);
        using (host)
        {
            await AssertRejectedAsync(host, outcome, "outer.zip", "outer.zip/inner.zip: a zip inside a zip is not opened", outer);
            Assert.DoesNotContain("DICOM", outcome.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ZipWithMixedContent_ScreensTheDicomSeries_KeepsTheRestInQuarantine()
    {
        var slices = MidChestSlices(3);
        var png = File.ReadAllBytes(TestData.Shared("cls", "ucsd-covid-ct", "COVID", "2020.02.26.20027938-p6-80_2_0.png"));
        var notes = Encoding.UTF8.GetBytes("notes");
        var zip = Zip([.. slices.Select(f => ($"ct/{Path.GetFileName(f)}", File.ReadAllBytes(f))), ("key.png", png), ("notes.txt", notes)]);
        var (host, outcome) = await IngestOneAsync("mixed.zip", zip);
        using (host)
        {
            Assert.Equal(IngestStatus.Ingested, outcome.Status);
            Assert.Equal(3, outcome.SliceCount);
            Assert.Equal(png, await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/skipped/mixed.zip/key.png"));
            Assert.Equal(notes, await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/skipped/mixed.zip/notes.txt"));
        }
    }

    [Fact]
    public async Task TruncatedNifti_IsRejectedNamingTheFile()
    {
        var whole = File.ReadAllBytes(TestData.Shared("seg", "mosmed-masks", "masks", "study_0266_mask.nii.gz"));
        var content = whole[..(whole.Length / 2)];
        var (host, outcome) = await IngestOneAsync("half.nii.gz", content);
        using (host)
        {
            await AssertRejectedAsync(host, outcome, "half.nii.gz", "half.nii.gz", content);
        }
    }

    [Fact]
    public async Task NiftiWithBadDimensions_IsRejectedNamingTheFile()
    {
        // A valid 348-byte NIfTI-1 header that declares a 0×0×0 volume.
        var header = new byte[352];
        BitConverter.GetBytes(348).CopyTo(header, 0);
        BitConverter.GetBytes((short)3).CopyTo(header, 40); // dim[0]
        BitConverter.GetBytes((short)4).CopyTo(header, 70); // datatype int16
        BitConverter.GetBytes((short)16).CopyTo(header, 72); // bitpix
        BitConverter.GetBytes(352f).CopyTo(header, 108); // vox_offset
        "n+1\0"u8.ToArray().CopyTo(header, 344);
        var (host, outcome) = await IngestOneAsync("flat.nii", header);
        using (host)
        {
            await AssertRejectedAsync(host, outcome, "flat.nii", "flat.nii", header);
        }
    }

    [Fact]
    public async Task SeriesRepeatingAPosition_IsRejectedByThePlausibilityCheck()
    {
        using var host = new IngestTestHost();
        var slices = MidChestSlices(3);
        var originals = new List<(string, byte[])>();
        foreach (var (file, i) in slices.Select((f, i) => (f, i)))
        {
            originals.Add(($"{i}.dcm", File.ReadAllBytes(file)));
        }

        // The same instance twice under two names: de-identified, both keep the one position.
        originals.Add(("3.dcm", File.ReadAllBytes(slices[1])));
        foreach (var (name, content) in originals)
        {
            await host.UploadAsync($"{Tenant}/dup/{name}", content);
        }

        await host.UploadAsync($"{Tenant}/dup/{PipelineNames.CompleteMarker}", []);
        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal((IngestStatus.Rejected, "duplicate-positions"), (outcome.Status, outcome.Reason));
        var reason = await ReadReasonAsync(host, outcome.StudyId);
        Assert.Contains($"{Tenant}/dup: series 2", reason.Detail, StringComparison.Ordinal);
        Assert.Contains("repeat a position", reason.Detail, StringComparison.Ordinal);
        foreach (var (name, content) in originals)
        {
            Assert.Equal(content, await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/original/{name}"));
        }

        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        Assert.Equal([(Tenant, outcome.StudyId, StudyEventTypes.Rejected)], host.Notifier.Events);
    }

    [Fact]
    public async Task UploadOverTheSizeLimit_IsQuarantinedAsTooLarge_WithoutBeingRead()
    {
        // Before: no limit; ingest copied any upload to local disk whatever its size.
        using var host = new IngestTestHost(new PipelineOptions { MaxUploadBytes = 100_000 });
        var content = File.ReadAllBytes(MidChestSlices(1)[0]);
        await host.UploadAsync($"{Tenant}/big.dcm", content);
        var unit = UploadUnitPlanner.ForSingleBlob(new UploadBlob($"{Tenant}/big.dcm", host.Time.Now, content.Length), host.StudyIdKey)!;

        var outcome = await host.Handler.IngestAsync(unit, default);

        await AssertRejectedAsync(host, outcome, "big.dcm", $"upload {Tenant}/big.dcm: {content.Length} bytes in 1 blob(s), over the limit of 100000 bytes", content);
        Assert.Equal("too-large", outcome.Reason);
    }

    [Fact]
    public async Task UploadWithinTheSizeLimit_IsIngested()
    {
        using var host = new IngestTestHost(new PipelineOptions { MaxUploadBytes = 10_000_000 });
        var content = File.ReadAllBytes(MidChestSlices(1)[0]);
        await host.UploadAsync($"{Tenant}/small.dcm", content);
        var unit = UploadUnitPlanner.ForSingleBlob(new UploadBlob($"{Tenant}/small.dcm", host.Time.Now, content.Length), host.StudyIdKey)!;

        Assert.Equal(IngestStatus.Ingested, (await host.Handler.IngestAsync(unit, default)).Status);
    }

    private static async Task<(IngestTestHost Host, IngestOutcome Outcome)> IngestOneAsync(string name, byte[] content)
    {
        var host = new IngestTestHost();
        await host.UploadAsync($"{Tenant}/{name}", content);
        var unit = Assert.Single(await host.PlanAsync());
        var outcome = await host.Handler.IngestAsync(unit, default);
        return (host, outcome);
    }

    private static async Task AssertRejectedAsync(IngestTestHost host, IngestOutcome outcome, string name, string detailNames, byte[] content)
    {
        Assert.True(outcome.Status == IngestStatus.Rejected, $"{outcome.Status}: {outcome.Reason} {outcome.Detail}");
        var reason = await ReadReasonAsync(host, outcome.StudyId);
        Assert.Equal(outcome.Reason, reason.Reason);
        Assert.Contains(detailNames, reason.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(Path.GetTempPath(), reason.Detail, StringComparison.Ordinal);
        Assert.Equal(content, await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/original/{name}"));
        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        Assert.Empty(await IngestTestHost.ListAsync(host.Slices, string.Empty));
        var study = await host.Studies.GetAsync(Tenant, outcome.StudyId, default);
        Assert.Equal(StudyStatus.Rejected, study!.Status);
        Assert.Equal([(Tenant, outcome.StudyId, StudyEventTypes.Rejected)], host.Notifier.Events);
        Assert.Empty(host.Orchestrations.StartCalls);
    }

    private static async Task<QuarantineReason> ReadReasonAsync(IngestTestHost host, string studyId) =>
        PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{studyId}/reason.json")));

    /// <summary>The zip with the "encrypted" flag (general purpose bit 0) set on every local and central header.</summary>
    private static byte[] Encrypted(byte[] zip)
    {
        var bytes = (byte[])zip.Clone();
        for (var i = 0; i + 4 <= bytes.Length; i++)
        {
            if (bytes[i] == 0x50 && bytes[i + 1] == 0x4B && bytes[i + 2] == 3 && bytes[i + 3] == 4)
            {
                bytes[i + 6] |= 1;
            }
            else if (bytes[i] == 0x50 && bytes[i + 1] == 0x4B && bytes[i + 2] == 1 && bytes[i + 3] == 2)
            {
                bytes[i + 8] |= 1;
            }
        }

        return bytes;
    }
}
