using CovidFunctions.Cli.Commands;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn up</c>'s progress line counts slices in words that agree with the count: a one-slice study (a single
/// 2-D image, or <c>Imaging__MinSlices=1</c>) was shown as "1 slices" (walkthrough audit).
/// </summary>
public sealed class UpProgressLineTests
{
    [Theory]
    [InlineData(StudyStatus.Completed, 1, "1 slice;")]
    [InlineData(StudyStatus.Completed, 2, "2 slices;")]
    [InlineData(StudyStatus.Processing, 1, "(1 slice)")]
    [InlineData(StudyStatus.Processing, 30, "(30 slices)")]
    public void The_slice_count_takes_the_singular_for_one_slice(string status, int slices, string expected)
    {
        using var temp = TestData.CreateTempDirectory();
        var study = new StudyRecord
        {
            Tenant = "lab-a",
            StudyId = "s0000000000000000000000p1",
            Status = status,
            CreatedAt = new DateTimeOffset(2026, 11, 28, 14, 0, 0, TimeSpan.Zero),
            IngestedAt = new DateTimeOffset(2026, 11, 28, 14, 0, 5, TimeSpan.Zero),
            SliceCount = slices,
            Label = status == StudyStatus.Completed ? "normal" : null,
        };

        var line = UpCommand.Describe(study, new FileSystemBlobContainers(temp.Path));

        Assert.Contains(expected, line, StringComparison.Ordinal);
    }
}
