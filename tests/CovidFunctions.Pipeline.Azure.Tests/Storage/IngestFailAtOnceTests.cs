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
/// The fail-at-once ingest path (a study-level defect a retry cannot change: <c>ingest-failed</c> on the first attempt,
/// 9b7f788) end to end on Azurite, reached by a real input: a NIfTI chest CT whose sform puts the origin at +∞. Nothing
/// refuses it on the way: the reader keeps the transform as written, the volume is reoriented (its axes are finite), its
/// values are Hounsfield units and its lungs are found (areas need the spacing only); but its slice positions and slice
/// spacing are NaN, which JSON cannot hold, so describing the series for the Studies row (and, after it, the tile
/// manifest) throws <see cref="ArgumentException"/> on every attempt. Before, that throw was outside the classified
/// sections and the upload was retried <see cref="PipelineOptions.MaxIngestAttempts"/> times, then given up. A defect of
/// ours (the reader should refuse such a transform as a reject naming the file); the safety net turns it into one failed
/// study at the first attempt, with the original kept.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class IngestFailAtOnceTests(AzuriteFixture azurite)
{
    private readonly DeidKey _key = DeidKey.Generate();

    private IBlobStore Uploads => azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);

    private IBlobStore Quarantine => azurite.Storage.BlobContainers.Get(PipelineNames.QuarantineContainer);

    [Fact]
    public async Task A_nifti_chest_CT_with_a_non_finite_origin_fails_on_its_first_attempt_with_its_original_in_quarantine_and_one_event()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/chest.nii";
        var volume = NonFiniteOriginChestNifti();
        await Uploads.WriteAsync(path, new MemoryStream(volume), CancellationToken.None);
        var unit = UploadUnitPlanner.ForSingleBlob(new UploadBlob(path, DateTimeOffset.UtcNow, volume.Length), StudyIdKey.From(_key))!;
        var notifier = new RecordingNotifier();

        var outcome = await Handler(notifier).IngestAsync(unit, CancellationToken.None);

        Assert.Equal((IngestStatus.Failed, IngestHandler.IngestFailedReason), (outcome.Status, outcome.Reason));
        Assert.StartsWith($"upload {path}: ingest failed while the series was described, on a defect a retry cannot change (the same upload fails the same way): ArgumentException: ", outcome.Detail, StringComparison.Ordinal);
        Assert.EndsWith("; not retried (attempt 1 of 3)", outcome.Detail, StringComparison.Ordinal);
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Failed, 1, null, null), (row.Status, row.IngestAttempts, row.IngestedAt, row.UploadPath));
        Assert.StartsWith("ArgumentException: ", row.IngestError, StringComparison.Ordinal);
        Assert.DoesNotContain(path, row.Reason, StringComparison.Ordinal);
        Assert.False(await Uploads.ExistsAsync(path, CancellationToken.None));
        Assert.Equal(volume, await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/original/chest.nii"));
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/reason.json")));
        Assert.Equal((IngestHandler.IngestFailedReason, outcome.Detail, path), (reason.Reason, reason.Detail, reason.UploadPath));
        Assert.Empty(await azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer).ListAsync($"{tenant}/", CancellationToken.None).ToListAsync());
        Assert.Equal([(tenant, unit.StudyId, StudyEventTypes.Failed)], notifier.Events);

        // A re-delivery settles it as it is: no new attempt, no second event.
        var again = await Handler(notifier).IngestAsync(unit, CancellationToken.None);
        Assert.Equal(IngestStatus.Failed, again.Status);
        Assert.Equal(row, await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None));
        Assert.Single(notifier.Events);
    }

    /// <summary>
    /// A synthetic NIfTI-1 chest CT phantom (float32 HU, 192 × 192 × 8 at 1.8 × 1.8 × 5 mm: air around a body of soft
    /// tissue holding two lungs of −850 HU, about 90 cm² each) whose sform (code 1) puts the origin's x at +∞: a volume
    /// that passes every check up to tiling.
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
