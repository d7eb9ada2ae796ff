using System.Text;
using CovidFunctions.Dicom;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;

using static CovidFunctions.Pipeline.Tests.Ingest.IngestTestFiles;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>
/// An instance whose de-identification fails with an exception nobody expected (a defect of the engine on that file,
/// stood in for by a throwing call around the real engine) is left out as <c>internal-error</c>, as <c>covidfn deid</c>
/// does, and the rest of the study is screened; with no instance left, the study is rejected with that reason. The
/// exception's message (which may quote the file's values) is written nowhere. Cancellation and local disk failures are
/// not the instance's fault: they still fail the attempt, to be retried.
/// </summary>
public sealed class IngestInternalErrorTests
{
    private const string Tenant = "lab";

    /// <summary>A value the stand-in defect puts in its exception's message: it must not reach any record.</summary>
    private const string QuotedValue = "Doe^Jane 19700101";

    /// <summary>The real engine, except that it throws for the instances whose (original) SOP Instance UID is in <paramref name="failing"/>.</summary>
    private static Func<DeidentificationEngine, Func<DicomFile, DeidOutcome>> FailingOn(IReadOnlySet<string> failing, Func<Exception> exception) =>
        engine => file => failing.Contains(file.Dataset.GetString(DicomTags.SOPInstanceUID) ?? string.Empty) ? throw exception() : engine.DeidentifyFile(file);

    private static string SopInstanceUidOf(string path) =>
        DicomFile.Open(path, DicomReadOptions.HeaderOnly).Dataset.GetString(DicomTags.SOPInstanceUID)!;

    [Fact]
    public async Task One_instance_the_engine_fails_on_is_kept_as_internal_error_and_the_others_are_screened()
    {
        var slices = MidChestSlices(4);
        var poisoned = slices[^1];
        using var host = new IngestTestHost(deidentifyFile: FailingOn(new HashSet<string> { SopInstanceUidOf(poisoned) }, () => new InvalidOperationException($"defect near {QuotedValue}")));
        var unit = await UploadFolderAsync(host, slices);

        // Before: the InvalidOperationException failed the attempt (thrown to the trigger), and so every retry, until the
        // last attempt failed the whole study.
        var outcome = await host.Handler.IngestAsync(unit, default);
        Assert.True(outcome.Status == IngestStatus.Ingested, $"{outcome.Status}: {outcome.Reason} {outcome.Detail}");
        Assert.Equal(3, outcome.SliceCount);

        var reasonJson = Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/skipped/reason.json"));
        var reason = PipelineJson.Deserialize<QuarantineReason>(reasonJson);
        Assert.Equal(IngestHandler.NotScreenedReason, reason.Reason);
        var kept = Assert.Single(reason.Files!);
        Assert.Equal(Path.GetFileName(poisoned), kept.Name);
        Assert.Equal($"{IngestHandler.InternalErrorReason}: failed unexpectedly while it was de-identified (InvalidOperationException); it was not screened", kept.Why);
        Assert.Equal(await File.ReadAllBytesAsync(poisoned), await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/skipped/{kept.Name}"));

        var study = (await host.Studies.GetAsync(Tenant, outcome.StudyId, default))!;
        Assert.Equal((StudyStatus.Processing, 1, null), (study.Status, study.IngestAttempts, study.IngestError));
        Assert.Contains(IngestHandler.InternalErrorReason, study.SeriesJson, StringComparison.Ordinal);
        Assert.DoesNotContain(QuotedValue, reasonJson + study.SeriesJson + study.Reason, StringComparison.Ordinal);
        Assert.Single(host.Orchestrations.Started);
    }

    [Fact]
    public async Task When_the_engine_fails_on_every_instance_the_study_is_rejected_as_internal_error_with_the_originals_kept()
    {
        var slices = MidChestSlices(2);
        using var host = new IngestTestHost(deidentifyFile: FailingOn(slices.Select(SopInstanceUidOf).ToHashSet(), () => new NullReferenceException($"defect near {QuotedValue}")));
        var unit = await UploadFolderAsync(host, slices);

        var outcome = await host.Handler.IngestAsync(unit, default);
        Assert.True(outcome.Status == IngestStatus.Rejected, $"{outcome.Status}: {outcome.Reason} {outcome.Detail}");
        Assert.Equal(IngestHandler.InternalErrorReason, outcome.Reason);

        var reasonJson = Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/reason.json"));
        var reason = PipelineJson.Deserialize<QuarantineReason>(reasonJson);
        Assert.Equal(IngestHandler.InternalErrorReason, reason.Reason);
        Assert.StartsWith($"upload {Tenant}/series/: no DICOM instance could be screened: 2 failed unexpectedly in ingest", reason.Detail, StringComparison.Ordinal);
        Assert.All(slices, s => Assert.Contains($"{Path.GetFileName(s)}: internal-error: failed unexpectedly while it was de-identified (NullReferenceException)", reason.Detail, StringComparison.Ordinal));
        foreach (var slice in slices)
        {
            Assert.Equal(await File.ReadAllBytesAsync(slice), await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/original/{Path.GetFileName(slice)}"));
        }

        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        Assert.Empty(await IngestTestHost.ListAsync(host.Slices, string.Empty));
        var study = (await host.Studies.GetAsync(Tenant, outcome.StudyId, default))!;
        Assert.Equal(StudyStatus.Rejected, study.Status);
        Assert.StartsWith($"{IngestHandler.InternalErrorReason}: ", study.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain(QuotedValue, reasonJson + study.Reason + study.IngestError, StringComparison.Ordinal);
        Assert.Equal([(Tenant, outcome.StudyId, StudyEventTypes.Rejected)], host.Notifier.Events);
        Assert.Empty(host.Orchestrations.StartCalls);
    }

    [Fact]
    public async Task A_local_disk_failure_while_an_instance_is_processed_still_fails_the_attempt_to_be_retried()
    {
        var slices = MidChestSlices(2);
        using var host = new IngestTestHost(deidentifyFile: FailingOn(new HashSet<string> { SopInstanceUidOf(slices[0]) }, () => new IOException("No space left on device")));
        var unit = await UploadFolderAsync(host, slices);

        await Assert.ThrowsAsync<IOException>(() => host.Handler.IngestAsync(unit, default));
        var study = (await host.Studies.GetAsync(Tenant, unit.StudyId, default))!;
        Assert.Equal((StudyStatus.Processing, 1), (study.Status, study.IngestAttempts));
        Assert.StartsWith("IOException: ", study.IngestError, StringComparison.Ordinal);
        Assert.Equal(3, (await IngestTestHost.ListAsync(host.Uploads, string.Empty)).Count);
        Assert.Empty(await IngestTestHost.ListAsync(host.Quarantine, string.Empty));
    }

    [Fact]
    public async Task A_host_stop_while_an_instance_is_processed_propagates_and_does_not_count_the_attempt()
    {
        var slices = MidChestSlices(2);
        using var stop = new CancellationTokenSource();
        using var host = new IngestTestHost(deidentifyFile: FailingOn(new HashSet<string> { SopInstanceUidOf(slices[0]) }, () =>
        {
            stop.Cancel();
            return new OperationCanceledException(stop.Token);
        }));
        var unit = await UploadFolderAsync(host, slices);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => host.Handler.IngestAsync(unit, stop.Token));
        var study = (await host.Studies.GetAsync(Tenant, unit.StudyId, default))!;
        Assert.Equal((StudyStatus.Processing, 0, null), (study.Status, study.IngestAttempts, study.IngestError));
        Assert.Equal(3, (await IngestTestHost.ListAsync(host.Uploads, string.Empty)).Count);
        Assert.Empty(await IngestTestHost.ListAsync(host.Quarantine, string.Empty));
    }

    private static async Task<UploadUnit> UploadFolderAsync(IngestTestHost host, List<string> slices)
    {
        foreach (var slice in slices)
        {
            await host.UploadFileAsync($"{Tenant}/series/{Path.GetFileName(slice)}", slice);
        }

        await host.UploadAsync($"{Tenant}/series/{PipelineNames.CompleteMarker}", []);
        return Assert.Single(await host.PlanAsync());
    }
}
