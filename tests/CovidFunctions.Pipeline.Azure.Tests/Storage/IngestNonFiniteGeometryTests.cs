using System.Buffers.Binary;
using System.Text;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Nifti;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// A NIfTI chest CT whose sform puts the origin at +∞, end to end on Azurite. It passes the HU and lung checks, and its
/// slice positions and spacing would be NaN. Before dde0782 the reader kept such a transform, and only describing the
/// series for the Studies row threw (JSON cannot hold NaN): the fail-at-once path (5df75e5) made that one failed study at
/// the first attempt, and before that it was retried <see cref="PipelineOptions.MaxIngestAttempts"/> times and given up.
/// Now the NIfTI reader refuses a transform that cannot place the volume, so the upload is a reject
/// (<c>unreadable</c>) naming the file and the field, on its first attempt, with its original in quarantine and one
/// <c>study.rejected</c>. The fail-at-once path stays as a safety net for our own defects; no known input reaches it.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class IngestNonFiniteGeometryTests(AzuriteFixture azurite)
{
    private readonly DeidKey _key = DeidKey.Generate();

    private IBlobStore Uploads => azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);

    private IBlobStore Quarantine => azurite.Storage.BlobContainers.Get(PipelineNames.QuarantineContainer);

    [Fact]
    public async Task A_nifti_chest_CT_with_a_non_finite_origin_is_rejected_on_its_first_attempt_naming_the_file_with_its_original_in_quarantine_and_one_event()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/chest.nii";
        var volume = NonFiniteOriginChestNifti();
        await Uploads.WriteAsync(path, new MemoryStream(volume), CancellationToken.None);
        var unit = UploadUnitPlanner.ForSingleBlob(new UploadBlob(path, DateTimeOffset.UtcNow, volume.Length), StudyIdKey.From(_key))!;
        var notifier = new RecordingNotifier();

        var outcome = await Handler(notifier).IngestAsync(unit, CancellationToken.None);

        Assert.Equal((IngestStatus.Rejected, "unreadable"), (outcome.Status, outcome.Reason));
        Assert.Contains("chest.nii", outcome.Detail, StringComparison.Ordinal);
        Assert.Contains("srow_x[3] = +Inf is not a finite number", outcome.Detail, StringComparison.Ordinal);
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Rejected, null, null), (row.Status, row.IngestedAt, row.UploadPath));
        Assert.StartsWith("unreadable: ", row.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain(path, row.Reason, StringComparison.Ordinal);
        Assert.False(await Uploads.ExistsAsync(path, CancellationToken.None));
        Assert.Equal(volume, await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/original/chest.nii"));
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/reason.json")));
        Assert.Equal(("unreadable", outcome.Detail), (reason.Reason, reason.Detail));
        Assert.Empty(await azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer).ListAsync($"{tenant}/", CancellationToken.None).ToListAsync());
        Assert.Equal([(tenant, unit.StudyId, StudyEventTypes.Rejected)], notifier.Events);

        // A re-delivery keeps the reject (its row's status and reason, the quarantine) and asks for study.rejected again,
        // which the webhook notifier delivers once (its delivery id names the study's attempt, the row's CreatedAt, which
        // a re-delivery keeps). It also counts one more ingest attempt on the row, as a re-delivery of any reject does.
        var again = await Handler(notifier).IngestAsync(unit, CancellationToken.None);
        Assert.Equal(IngestStatus.Rejected, again.Status);
        var after = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((row.Status, row.Reason, row.UploadPath, row.CreatedAt), (after.Status, after.Reason, after.UploadPath, after.CreatedAt));
        Assert.All(notifier.Events, e => Assert.Equal((tenant, unit.StudyId, StudyEventTypes.Rejected), e));
    }

    /// <summary>
    /// A synthetic NIfTI-1 chest CT phantom (float32 HU, 192 × 192 × 8 at 1.8 × 1.8 × 5 mm: air around a body of soft
    /// tissue holding two lungs of −850 HU, about 90 cm² each) whose sform (code 1) puts the origin's x at +∞: a volume
    /// that passes the HU and lung checks and that the NIfTI reader now refuses.
    /// </summary>
    internal static byte[] NonFiniteOriginChestNifti()
    {
        const int Size = 192;
        const int Slices = 8;
        var data = new byte[Size * Size * Slices * sizeof(float)];
        for (var z = 0; z < Slices; z++)
        {
            for (var y = 0; y < Size; y++)
            {
                for (var x = 0; x < Size; x++)
                {
                    static double Square(double v) => v * v;
                    var body = (Square(x - (Size / 2.0)) / Square(0.42 * Size)) + (Square(y - (Size / 2.0)) / Square(0.35 * Size)) < 1;
                    var lung = Square(x - (0.35 * Size)) + Square(y - (Size / 2.0)) < Square(0.12 * Size)
                        || Square(x - (0.65 * Size)) + Square(y - (Size / 2.0)) < Square(0.12 * Size);
                    var hu = !body ? -1000f : lung ? -850f : 40f;
                    BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(((((z * Size) + y) * Size) + x) * sizeof(float)), hu);
                }
            }
        }

        var header = new NiftiHeader
        {
            Dim = [3, Size, Size, Slices, 1, 1, 1, 1],
            DataType = NiftiDataType.Float32,
            PixDim = [1, 1.8, 1.8, 5, 0, 0, 0, 0],
            SformCode = 1,
            SRow = [1.8, 0, 0, double.PositiveInfinity, 0, 1.8, 0, 0, 0, 0, 5, 0],
        };
        using var file = new MemoryStream();
        NiftiFile.Write(file, new NiftiImage(header, data));
        return file.ToArray();
    }

    private IngestHandler Handler(IStudyNotifier notifier) => IngestOnAzurite.NewHandler(azurite, _key, new StartedOrchestrations(), notifier: notifier);
}
