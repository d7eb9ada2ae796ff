using CovidFunctions.Pipeline.Ingest;

namespace CovidFunctions.Pipeline.Tests.Ingest;

public sealed class UploadUnitPlannerTests
{
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly PipelineOptions Options = new() { FolderStableAge = TimeSpan.FromSeconds(60) };
    private static readonly StudyIdKey Key = TestStudyIdKeys.Fixed;

    [Fact]
    public void Plan_BlobsDirectlyUnderTenant_AreSingleBlobUnits()
    {
        var units = UploadUnitPlanner.Plan(
            [Blob("lab/chest.zip", 0), Blob("lab/one.dcm", 0), Blob("lab/vol.nii", 0), Blob("lab/vol2.nii.gz", 0)], Now, Options, Key);

        Assert.Equal(["lab/chest.zip", "lab/one.dcm", "lab/vol.nii", "lab/vol2.nii.gz"], units.Select(u => u.UploadPath));
        Assert.All(units, u =>
        {
            Assert.Equal(UploadUnitKind.SingleBlob, u.Kind);
            Assert.Equal("lab", u.Tenant);
            Assert.Null(u.Rejection);
            Assert.Null(u.MarkerPath);
            Assert.Equal([u.UploadPath], u.BlobPaths);
            Assert.Equal(StudyIds.ForUpload(Key, "lab", u.UploadPath), u.StudyId);
        });
        Assert.Equal("chest.zip", units[0].RelativeName("lab/chest.zip"));
    }

    [Fact]
    public void Plan_FolderWithMarker_IsReadyAtOnce_WithoutTheMarkerInItsBlobs()
    {
        var units = UploadUnitPlanner.Plan(
            [Blob("lab/study1/a/1.dcm", 0), Blob("lab/study1/2.dcm", 0), Blob("lab/study1/.complete", 0)], Now, Options, Key);

        var unit = Assert.Single(units);
        Assert.Equal(UploadUnitKind.Folder, unit.Kind);
        Assert.Equal("lab/study1/", unit.UploadPath);
        Assert.Equal(["lab/study1/2.dcm", "lab/study1/a/1.dcm"], unit.BlobPaths);
        Assert.Equal("lab/study1/.complete", unit.MarkerPath);
        Assert.Equal(StudyIds.ForUpload(Key, "lab", "lab/study1/"), unit.StudyId);
        Assert.Equal("a/1.dcm", unit.RelativeName("lab/study1/a/1.dcm"));
    }

    [Fact]
    public void Plan_FolderWithoutMarker_ReadyOnlyWhenTheNewestBlobIsOlderThanTheStableAge()
    {
        UploadBlob[] blobs = [Blob("lab/s/1.dcm", 600), Blob("lab/s/2.dcm", 59)];
        Assert.Empty(UploadUnitPlanner.Plan(blobs, Now, Options, Key));

        var later = UploadUnitPlanner.Plan(blobs, Now.AddSeconds(1), Options, Key);
        var unit = Assert.Single(later);
        Assert.Equal(2, unit.Blobs.Count);
        Assert.Null(unit.MarkerPath);
    }

    [Fact]
    public void Plan_NestedMarker_DoesNotCloseTheFolder()
    {
        Assert.Empty(UploadUnitPlanner.Plan([Blob("lab/s/1.dcm", 0), Blob("lab/s/sub/.complete", 0)], Now, Options, Key));
    }

    [Fact]
    public void Plan_MarkerAlone_IsAUnitWithNoBlobs()
    {
        var unit = Assert.Single(UploadUnitPlanner.Plan([Blob("lab/s/.complete", 0)], Now, Options, Key));
        Assert.Empty(unit.Blobs);
        Assert.Equal("lab/s/.complete", unit.MarkerPath);
    }

    [Fact]
    public void Plan_InvalidTenants_AreRejectedUnits_NotIgnored()
    {
        var units = UploadUnitPlanner.Plan(
            [Blob("Bad_Tenant/x.zip", 0), Blob("root.dcm", 0), Blob("UPPER/f/1.dcm", 0), Blob("UPPER/f/.complete", 0)], Now, Options, Key);

        Assert.Equal(["Bad_Tenant/x.zip", "UPPER/f/", "root.dcm"], units.Select(u => u.UploadPath));
        Assert.All(units, u =>
        {
            Assert.Equal(UploadUnitPlanner.InvalidTenantReason, u.Rejection);
            Assert.Matches("^s[0-9a-f]{24}$", u.StudyId);
        });
        Assert.Equal("Bad_Tenant", units[0].Tenant);
        Assert.Equal(string.Empty, units[2].Tenant);
    }

    [Fact]
    public void Plan_IsDeterministic_AndIgnoresDuplicateListings()
    {
        UploadBlob[] blobs = [Blob("lab/b.zip", 0), Blob("lab/a.zip", 0), Blob("lab/a.zip", 0)];
        var first = UploadUnitPlanner.Plan(blobs, Now, Options, Key);
        var second = UploadUnitPlanner.Plan(blobs.Reverse(), Now, Options, Key);
        Assert.Equal(first.Select(u => u.StudyId), second.Select(u => u.StudyId));
        Assert.Equal(2, first.Count);
    }

    [Fact]
    public void Plan_FolderUnitPaths_AlwaysEndInASlash_AndPrefixTheirBlobs()
    {
        // What naming a quarantined blob by UploadArchive.RelativeName (the path below a prefix ending in '/') relies on.
        var blobs = new[]
        {
            "lab/a/1.dcm", "lab/a/deep/er/2.dcm", "/lab/lead/3.dcm", "lab//empty/4.dcm", "lab/b/.complete", "lab/b/x",
            "lab/c d/ü.dcm", "lab/e./5.dcm", "_bad tenant/f/6.dcm", "lab/g/", "lab/scan.zip", "root.zip",
        }.Select(p => new UploadBlob(p, Now.AddHours(-1), 1));

        var units = UploadUnitPlanner.Plan(blobs, Now, new PipelineOptions(), TestStudyIdKeys.Fixed);

        var folders = units.Where(u => u.Kind == UploadUnitKind.Folder).ToList();
        Assert.True(folders.Count >= 7);
        Assert.All(folders, u =>
        {
            Assert.EndsWith("/", u.UploadPath, StringComparison.Ordinal);
            Assert.All(u.BlobPaths, p => Assert.StartsWith(u.UploadPath, p, StringComparison.Ordinal));
            Assert.All(u.BlobPaths, p => Assert.Equal(UploadArchive.RelativeName(u.UploadPath, p), u.RelativeName(p)));
        });
        Assert.All(units.Where(u => u.Kind == UploadUnitKind.SingleBlob), u => Assert.Equal(UploadArchive.RelativeName(u.UploadPath, u.UploadPath), u.RelativeName(u.UploadPath)));
    }

    [Fact]
    public void ForSingleBlob_FolderBlob_IsNull()
    {
        Assert.Null(UploadUnitPlanner.ForSingleBlob(Blob("lab/s/1.dcm", 0), Key));
        var unit = UploadUnitPlanner.ForSingleBlob(Blob("lab/chest.zip", 0), Key);
        Assert.NotNull(unit);
        Assert.Equal(StudyIds.ForUpload(Key, "lab", "lab/chest.zip"), unit.StudyId);
    }

    private static UploadBlob Blob(string path, int ageSeconds) => new(path, Now.AddSeconds(-ageSeconds), 10);
}
