using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Inference.Tests;

/// <summary>
/// The shipped graph on real UCSD val slices: provider choice and its log, sessions shared and disposed, batches split
/// at MaxBatch with every output mapped back to its input, concurrent runs on one session, the manifest's class list.
/// </summary>
public sealed class SessionTests
{
    private const float Tolerance = 1e-4f;

    private static string ModelsDir => Path.Combine(TestData.RepoRoot, "models");

    private static string ModelPath => ModelManifest.Load(ModelsDir).PathOf("dfsn_dtcn");

    /// <summary>The first <paramref name="count"/> validation slices of UCSD COVID-CT (both classes), preprocessed.</summary>
    private static PreprocessedBatch ValSlices(int count)
    {
        var root = TestData.Shared("cls", "ucsd-covid-ct");
        var files = File.ReadLines(Path.Combine(root, "splits", "index.csv"))
            .Skip(1)
            .Select(l => l.Split(','))
            .Where(f => f[2] == "val")
            .GroupBy(f => f[1])
            .SelectMany(g => g.Take((count + 1) / 2))
            .Take(count)
            .Select(f => Path.Combine(root, f[0]))
            .ToList();
        Assert.Equal(count, files.Count);
        return LungPreprocessor.ToTensor(files.Select(ImageLoader.Load).ToList());
    }

    [Fact]
    public void Create_PreferCudaWithoutTheCudaBuild_UsesCpuAndLogsTheReasonOnce()
    {
        var logger = new CapturingLogger();

        using var model = OnnxModel.Create(ModelPath, new InferenceOptions { PreferCuda = true }, logger);

        Assert.Equal("CPU", model.Provider);
        var fallback = Assert.Single(logger.Entries, e => e.EventId == 3001);
        Assert.Equal(LogLevel.Information, fallback.Level);
        Assert.Contains("CUDA execution provider is not enabled in this build", fallback.Message, StringComparison.Ordinal);
        var created = Assert.Single(logger.Entries, e => e.EventId == 3000);
        Assert.Contains("dfsn_dtcn.onnx created on CPU", created.Message, StringComparison.Ordinal);
        var warmUp = Assert.Single(logger.Entries, e => e.EventId == 3002);
        Assert.Contains("on CPU", warmUp.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_WarmUpOff_RunsNothingAtCreation()
    {
        var logger = new CapturingLogger();

        using var model = OnnxModel.Create(ModelPath, new InferenceOptions { PreferCuda = false, WarmUp = false }, logger);

        Assert.DoesNotContain(logger.Entries, e => e.EventId is 3001 or 3002);
        Assert.Single(logger.Entries, e => e.EventId == 3000);
    }

    [Fact]
    public void CudaProviderOptions_SearchHeuristicOnTheConfiguredDevice()
    {
        var settings = OnnxModel.CudaProviderOptions(new InferenceOptions { CudaDeviceId = 1 });

        Assert.Equal("HEURISTIC", settings["cudnn_conv_algo_search"]);
        Assert.Equal("1", settings["device_id"]);
    }

    [Fact]
    public void GetOrCreate_AfterTheSharedInstanceIsDisposed_CreatesAWorkingSession()
    {
        // Options of their own (IntraOpThreads 1), so no other test's shared session is disposed here.
        var options = new InferenceOptions { PreferCuda = false, IntraOpThreads = 1, MaxBatch = 3 };
        var first = OnnxModel.GetOrCreate(ModelPath, options);
        first.Dispose();

        var second = OnnxModel.GetOrCreate(ModelPath, options);

        Assert.NotSame(first, second);
        Assert.Equal(3, second.Run(new float[OnnxModel.Plane], 1)["class_prob"].Length);
        Assert.Throws<ObjectDisposedException>(() => first.Run(new float[OnnxModel.Plane], 1));
    }

    [Fact]
    public void Run_SevenSlicesSplitAtMaxBatch3_EachOutputMatchesThatSliceRunAlone()
    {
        var batch = ValSlices(7);
        using var split = OnnxModel.Create(ModelPath, new InferenceOptions { PreferCuda = false, MaxBatch = 3, WarmUp = false }, NullLogger.Instance);

        var together = split.Run(batch.Tensor, 7); // batches of 3, 3 and 1
        for (var n = 0; n < 7; n++)
        {
            var alone = split.Run(batch.Tensor.AsMemory(n * OnnxModel.Plane, OnnxModel.Plane), 1);
            AssertClose(alone["class_prob"], together["class_prob"].AsSpan(n * 3, 3).ToArray(), $"class_prob of slice {n}");
            AssertClose(alone["lesion_prob"], together["lesion_prob"].AsSpan(n * OnnxModel.Plane, OnnxModel.Plane).ToArray(), $"lesion_prob of slice {n}");
        }

        // The slices are not all alike, so a shifted mapping would have failed above.
        Assert.Contains(Enumerable.Range(1, 6), n => Math.Abs(together["class_prob"][n * 3] - together["class_prob"][0]) > 0.05f);
    }

    [Fact]
    public void Predict_ConcurrentCallsOnOneSession_EachGetsItsOwnSlicesResults()
    {
        var batch = ValSlices(6);
        var models = ScreeningModels.Load(new InferenceOptions { ModelsDirectory = ModelsDir, PreferCuda = false, MaxBatch = 2 });
        var inputs = Enumerable.Range(0, 6).Select(n => batch.Tensor.AsMemory(n * OnnxModel.Plane, OnnxModel.Plane)).ToList();
        var sequential = inputs.Select(x => models.Predict(x, 1)[0]).ToList();

        var concurrent = new SlicePrediction[6];
        Parallel.For(0, 6, new ParallelOptions { MaxDegreeOfParallelism = 6 }, n => concurrent[n] = models.Predict(inputs[n], 1)[0]);

        for (var n = 0; n < 6; n++)
        {
            AssertClose([.. sequential[n].ClassProbabilities], [.. concurrent[n].ClassProbabilities], $"class probabilities of slice {n}");
            AssertClose(sequential[n].LesionProbability, concurrent[n].LesionProbability, $"lesion map of slice {n}");
        }
    }

    [Fact]
    public void Load_ManifestListsFewerClassesThanTheModelGives_ThrowsNamingBoth()
    {
        using var dir = TestData.CreateTempDirectory();
        var manifest = File.ReadAllText(Path.Combine(ModelsDir, ModelManifest.FileName))
            .Replace("\"cap\",", "", StringComparison.Ordinal)
            .Replace("\"file\": \"dfsn_dtcn.onnx\"", $"\"file\": \"{ModelPath}\"", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(dir.Path, ModelManifest.FileName), manifest);

        var ex = Assert.Throws<InferenceException>(() => ScreeningModels.Load(new InferenceOptions { ModelsDirectory = dir.Path, PreferCuda = false, WarmUp = false }));

        Assert.Contains("gives 3 class probabilities", ex.Message, StringComparison.Ordinal);
        Assert.Contains("lists 2 classes (covid, normal)", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ModelFileMissing_ThrowsNamingTheFile()
    {
        using var dir = TestData.CreateTempDirectory();
        File.Copy(Path.Combine(ModelsDir, ModelManifest.FileName), Path.Combine(dir.Path, ModelManifest.FileName));

        var ex = Assert.Throws<InferenceException>(() => ScreeningModels.Load(new InferenceOptions { ModelsDirectory = dir.Path }));

        Assert.Equal(Path.Combine(dir.Path, "dfsn_dtcn.onnx"), ex.ModelPath);
        Assert.Contains("dfsn_dtcn.onnx", ex.Message, StringComparison.Ordinal);
    }

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        var diff = OnnxModelTests.MaxAbsDiff(expected, actual);
        Assert.True(diff <= Tolerance, $"{what}: max abs diff {diff} > {Tolerance}");
    }

    private sealed class CapturingLogger : ILogger
    {
        private readonly List<(int EventId, LogLevel Level, string Message)> _entries = [];

        public IReadOnlyList<(int EventId, LogLevel Level, string Message)> Entries
        {
            get
            {
                lock (_entries)
                {
                    return [.. _entries];
                }
            }
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_entries)
            {
                _entries.Add((eventId.Id, logLevel, formatter(state, exception)));
            }
        }
    }
}
