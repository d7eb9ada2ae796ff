using CovidFunctions.Imaging;
using CovidFunctions.Imaging.Series;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Inference.Tests;

public sealed class SeriesScreeningInputTests
{
    [Fact]
    public void FloatVolumeWithNaNVoxels_IsRefusedAsBadInputBeforeScreening()
    {
        // Refused when the volume is assembled (the CLI's segment/classify and pipeline ingest both assemble first),
        // naming the file and the first bad voxel: before, NaN went through the lung window to the model's input check,
        // which named the slice's place in its batch of 8 and came out as an internal error, not exit 2.
        using var dir = TestData.CreateTempDirectory();
        var chest = NiftiTestVolumes.ChestOnMaskGeometry(TestData.Shared("seg", "mosmed-masks", "masks", "study_0276_mask.nii.gz"), dir.Path);
        var path = Path.Combine(dir.Path, "float_with_nan.nii.gz");
        NiftiTestVolumes.WriteAsFloat32WithOneNaNPerSlice(chest, path);

        var ex = Assert.Throws<SeriesAssemblyException>(() => SeriesAssembler.Assemble(path));

        Assert.Equal("non-finite", ex.Reason);
        Assert.Equal(path, ex.FilePath);
        Assert.StartsWith("NIfTI volume float_with_nan.nii.gz holds ", ex.Message, StringComparison.Ordinal);
        Assert.Contains(" non-finite voxel(s) (NaN or ±Inf), the first on slice 1 of ", ex.Message, StringComparison.Ordinal);
        Assert.IsAssignableFrom<ImagingException>(ex);
    }
}
