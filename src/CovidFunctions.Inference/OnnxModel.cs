using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;

namespace CovidFunctions.Inference;

/// <summary>
/// One ONNX graph with one <see cref="InferenceSession"/> (thread-safe <c>Run</c>). Input <c>image</c>:
/// N×1×352×352 float32 in [0, 1]. Sessions are created once per (file, options) per process through
/// <see cref="GetOrCreate"/>.
/// </summary>
public sealed class OnnxModel : IDisposable
{
    /// <summary>Model input side (lung2d-v1).</summary>
    public const int Side = Imaging.Preprocessing.LungPreprocessor.InputSize;

    /// <summary>Values per slice.</summary>
    public const int Plane = Side * Side;

    /// <summary>Input name of every graph.</summary>
    public const string InputName = "image";

    private static readonly ConcurrentDictionary<string, Lazy<OnnxModel>> Cache = new(StringComparer.Ordinal);

    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly int _maxBatch;
    private string? _cacheKey;
    private bool _disposed;

    private OnnxModel(string path, InferenceSession session, string provider, int maxBatch)
    {
        Path = path;
        _session = session;
        Provider = provider;
        _maxBatch = maxBatch;
        OutputNames = [.. session.OutputMetadata.Keys];
        OutputShapes = session.OutputMetadata.ToDictionary(o => o.Key, o => (IReadOnlyList<int>)[.. o.Value.Dimensions], StringComparer.Ordinal);
        if (!session.InputMetadata.ContainsKey(InputName))
        {
            throw new InferenceException($"Model {path} has no input '{InputName}' (has: {string.Join(", ", session.InputMetadata.Keys)}).") { ModelPath = path };
        }
    }

    /// <summary>The ONNX file.</summary>
    public string Path { get; }

    /// <summary>The execution provider in use: <c>CUDA</c> or <c>CPU</c>.</summary>
    public string Provider { get; }

    /// <summary>Output names in graph order.</summary>
    public IReadOnlyList<string> OutputNames { get; }

    /// <summary>Each output's dimensions as the graph declares them (−1 for a symbolic one such as the batch).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<int>> OutputShapes { get; }

    /// <summary>The process-wide session for <paramref name="path"/> with <paramref name="options"/>, created on first use.</summary>
    public static OnnxModel GetOrCreate(string path, InferenceOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var full = System.IO.Path.GetFullPath(path);
        var key = $"{full}|{options.IntraOpThreads}|{options.InterOpThreads}|{options.PreferCuda}|{options.CudaDeviceId}|{options.MaxBatch}|arena={options.CpuMemArena}";
        var lazy = Cache.GetOrAdd(key, _ => new Lazy<OnnxModel>(
            () =>
            {
                var created = Create(full, options, logger ?? NullLogger.Instance);
                created._cacheKey = key;
                return created;
            },
            LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return lazy.Value;
        }
        catch
        {
            Cache.TryRemove(key, out _);
            throw;
        }
    }

    /// <summary>Creates a new, unshared session (tests and benchmarks); prefer <see cref="GetOrCreate"/>.</summary>
    public static OnnxModel Create(string path, InferenceOptions options, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        options.Validate();
        if (!File.Exists(path))
        {
            throw new InferenceException($"Model file not found: {path}") { ModelPath = path };
        }

        var sw = Stopwatch.StartNew();
        var name = System.IO.Path.GetFileName(path);
        OnnxModel? model = null;
        if (options.PreferCuda)
        {
            InferenceSession? session = null;
            try
            {
                using var cudaOptions = SessionOptionsFor(options);
                using var cuda = new OrtCUDAProviderOptions();
                cuda.UpdateOptions(new Dictionary<string, string>(CudaProviderOptions(options), StringComparer.Ordinal));
                cudaOptions.AppendExecutionProvider_CUDA(cuda);
                session = new InferenceSession(path, cudaOptions);
                model = new OnnxModel(path, session, "CUDA", options.MaxBatch);
                session = null;

                // The warm-up belongs to the provider choice: the CUDA libraries can load and the session be created,
                // yet the first run fail (driver too old for the toolkit, cuDNN mismatch, no memory): then CPU it is.
                WarmUpOrDispose(model, options, logger);
            }
            catch (Exception ex) when (ex is OnnxRuntimeException or InferenceException or EntryPointNotFoundException or DllNotFoundException or InvalidOperationException or TypeInitializationException)
            {
                Log.CudaUnavailable(logger, ex.GetType().Name + ": " + FirstLine(ex.Message));
                session?.Dispose();
                model?.Dispose();
                model = null;
            }
        }

        if (model is null)
        {
            InferenceSession session;
            try
            {
                using var cpuOptions = SessionOptionsFor(options);
                session = new InferenceSession(path, cpuOptions);
            }
            catch (OnnxRuntimeException ex)
            {
                throw new InferenceException($"Cannot load model {path}: {FirstLine(ex.Message)}", ex) { ModelPath = path };
            }

            try
            {
                model = new OnnxModel(path, session, "CPU", options.MaxBatch);
            }
            catch
            {
                session.Dispose();
                throw;
            }

            WarmUpOrDispose(model, options, logger);
        }

        Log.SessionCreated(logger, name, model.Provider, sw.ElapsedMilliseconds);
        return model;
    }

    /// <summary>
    /// The CUDA execution provider settings (ONNX Runtime's <c>OrtCUDAProviderOptions</c> keys): the device, and cuDNN's
    /// convolution algorithm chosen by HEURISTIC (no per-shape benchmarking, which the default EXHAUSTIVE repeats for
    /// every new batch size: a partial last batch would pay it on the request path).
    /// </summary>
    public static IReadOnlyDictionary<string, string> CudaProviderOptions(InferenceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["device_id"] = options.CudaDeviceId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["cudnn_conv_algo_search"] = "HEURISTIC",
        };
    }

    /// <summary>One dummy slice through a new session (when <see cref="InferenceOptions.WarmUp"/>); a failure disposes it.</summary>
    private static void WarmUpOrDispose(OnnxModel model, InferenceOptions options, ILogger logger)
    {
        if (!options.WarmUp)
        {
            return;
        }

        try
        {
            var warm = Stopwatch.StartNew();
            model.Run(new float[Plane], 1);
            Log.WarmUp(logger, System.IO.Path.GetFileName(model.Path), model.Provider, warm.ElapsedMilliseconds);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The session settings every session starts from (the CUDA provider is appended to them when preferred); the
    /// caller disposes them.
    /// </summary>
    public static SessionOptions SessionOptionsFor(InferenceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var so = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = options.InterOpThreads > 1 ? ExecutionMode.ORT_PARALLEL : ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = options.IntraOpThreads,
            InterOpNumThreads = options.InterOpThreads,

            // Host memory only: the CUDA provider allocates device memory from its own arena either way.
            EnableCpuMemArena = options.CpuMemArena,
        };
        return so;
    }

    private static string FirstLine(string message)
    {
        var i = message.IndexOf('\n', StringComparison.Ordinal);
        return i < 0 ? message : message[..i];
    }

    /// <summary>Checks an N×1×352×352 input: length, finite values, range [0, 1] (small tolerance).</summary>
    public static void ValidateInput(ReadOnlySpan<float> input, int count)
    {
        if (count < 1)
        {
            throw new InferenceException($"Batch size must be >= 1 (got {count}).");
        }

        if (input.Length != (long)count * Plane)
        {
            throw new InferenceException($"Input has {input.Length} values; expected {count}×1×{Side}×{Side} = {(long)count * Plane}. Preprocess with LungPreprocessor (lung2d-v1) first.");
        }

        for (var i = 0; i < input.Length; i++)
        {
            var v = input[i];
            if (!float.IsFinite(v))
            {
                throw new InferenceException($"Input value at slice {i / Plane}, pixel {i % Plane} is not finite ({v}).");
            }

            if (v < -1e-3f || v > 1.001f)
            {
                throw new InferenceException($"Input value at slice {i / Plane}, pixel {i % Plane} is {v}, outside [0, 1]: the tensor is not lung2d-v1 preprocessed.");
            }
        }
    }

    /// <summary>
    /// Runs the graph on <paramref name="count"/> slices (split into batches of at most MaxBatch) and returns every
    /// output concatenated over the batch, by output name.
    /// </summary>
    public IReadOnlyDictionary<string, float[]> Run(ReadOnlyMemory<float> input, int count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ValidateInput(input.Span, count);
        var results = new Dictionary<string, float[]>(StringComparer.Ordinal);
        for (var start = 0; start < count; start += _maxBatch)
        {
            var n = Math.Min(_maxBatch, count - start);
            var chunk = input.Slice(start * Plane, n * Plane).ToArray();
            using var value = OrtValue.CreateTensorValueFromMemory(chunk, [n, 1, Side, Side]);
            IDisposableReadOnlyCollection<OrtValue> outputs;
            try
            {
                outputs = _session.Run(_runOptions, [InputName], [value], [.. OutputNames]);
            }
            catch (OnnxRuntimeException ex)
            {
                throw new InferenceException($"ONNX Runtime failed on {System.IO.Path.GetFileName(Path)} (batch {n}): {FirstLine(ex.Message)}", ex) { ModelPath = Path };
            }

            using (outputs)
            {
                for (var k = 0; k < OutputNames.Count; k++)
                {
                    var data = outputs[k].GetTensorDataAsSpan<float>();
                    var perSlice = data.Length / n;
                    if (!results.TryGetValue(OutputNames[k], out var all))
                    {
                        all = new float[(long)perSlice * count];
                        results[OutputNames[k]] = all;
                    }

                    data.CopyTo(all.AsSpan(start * perSlice, data.Length));
                }
            }
        }

        return results;
    }

    /// <summary>
    /// Frees the session. A process-wide instance (<see cref="GetOrCreate"/>) leaves the cache first, so a later
    /// <see cref="GetOrCreate"/> creates a new session instead of handing out this disposed one.
    /// </summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_cacheKey is { } key && Cache.TryGetValue(key, out var lazy) && lazy.IsValueCreated && ReferenceEquals(lazy.Value, this))
        {
            Cache.TryRemove(new KeyValuePair<string, Lazy<OnnxModel>>(key, lazy));
        }

        _session.Dispose();
        _runOptions.Dispose();
    }
}
