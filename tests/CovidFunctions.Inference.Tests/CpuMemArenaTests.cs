using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Inference.Tests;

/// <summary>
/// <see cref="InferenceOptions.CpuMemArena"/> reaches ONNX Runtime: the session options carry it, sessions differing
/// only in it are distinct process-wide sessions, and it changes no output on real slices.
/// </summary>
public sealed class CpuMemArenaTests
{
    private static string ModelPath => ModelManifest.Load(Path.Combine(TestData.RepoRoot, "models")).PathOf("dfsn_dtcn");

    [Fact]
    public void Default_IsOn_AndTheSessionOptionsCarryTheSetting()
    {
        Assert.True(new InferenceOptions().CpuMemArena);

        using var off = OnnxModel.SessionOptionsFor(new InferenceOptions { CpuMemArena = false });
        using var on = OnnxModel.SessionOptionsFor(new InferenceOptions());

        Assert.False(off.EnableCpuMemArena);
        Assert.True(on.EnableCpuMemArena);
    }

    [Fact]
    public void GetOrCreate_ArenaOnAndOff_AreSeparateSessionsWithTheSameOutputs()
    {
        // Options of their own (IntraOpThreads 1, MaxBatch 2), so no other test's shared session is touched.
        var off = new InferenceOptions { PreferCuda = false, IntraOpThreads = 1, MaxBatch = 2, CpuMemArena = false };
        var on = off with { CpuMemArena = true };
        var root = TestData.Shared("cls", "ucsd-covid-ct");
        var files = File.ReadLines(Path.Combine(root, "splits", "index.csv"))
            .Skip(1)
            .Select(l => l.Split(','))
            .Where(f => f[2] == "val")
            .Take(3)
            .Select(f => Path.Combine(root, f[0]))
            .ToList();
        var slices = LungPreprocessor.ToTensor(files.Select(ImageLoader.Load).ToList());

        var withoutArena = OnnxModel.GetOrCreate(ModelPath, off);
        var withArena = OnnxModel.GetOrCreate(ModelPath, on);

        Assert.NotSame(withoutArena, withArena);
        Assert.Same(withoutArena, OnnxModel.GetOrCreate(ModelPath, off with { }));
        var expected = withArena.Run(slices.Tensor, slices.Count);
        var actual = withoutArena.Run(slices.Tensor, slices.Count);
        foreach (var (name, values) in expected)
        {
            Assert.Equal(values, actual[name]);
        }
    }
}
