namespace CovidFunctions.Inference;

/// <summary>Settings of the inference sessions. Defaults are the values used by the CLI and the scorer.</summary>
public sealed record InferenceOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Inference";

    /// <summary>Environment variable that overrides the models directory.</summary>
    public const string ModelsDirectoryVariable = "COVIDFN_MODELS_DIR";

    /// <summary>Folder holding <c>manifest.json</c> and the ONNX files; null: <c>COVIDFN_MODELS_DIR</c>, else
    /// <c>models/</c> next to the executable.</summary>
    public string? ModelsDirectory { get; init; }

    /// <summary>Threads inside one operator (ONNX Runtime intra-op); 0 lets ONNX Runtime choose (one per core).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>Threads across operators (inter-op); 1 runs the graph sequentially, which suits these chain-like graphs.</summary>
    public int InterOpThreads { get; init; } = 1;

    /// <summary>Try the CUDA execution provider first (falls back to CPU when its libraries do not load).</summary>
    public bool PreferCuda { get; init; } = true;

    /// <summary>CUDA device id.</summary>
    public int CudaDeviceId { get; init; }

    /// <summary>Largest batch sent to one <c>Run</c>; bigger inputs are split.</summary>
    public int MaxBatch { get; init; } = 8;

    /// <summary>
    /// ONNX Runtime's CPU memory arena (<c>SessionOptions.EnableCpuMemArena</c>) for the session's host-memory tensors.
    /// The arena keeps every block it ever grew: on the CPU provider a session that has run several batch sizes holds
    /// ~0.75 GB more resident for good than without it, but without it every run was 11–19 % slower on a quiet machine
    /// (docs/benchmarks.md, "Inference"). On by default (ONNX Runtime's own default): speed is a measured target; turn
    /// it off for a memory-bound CPU host. The CUDA provider's device memory has its own arena, which this does not touch.
    /// </summary>
    public bool CpuMemArena { get; init; } = true;

    /// <summary>Run one dummy batch right after the session is created (CUDA kernels and allocations happen there).</summary>
    public bool WarmUp { get; init; } = true;

    /// <summary>
    /// Horizontal-flip test-time augmentation: every slice is also run mirrored left-right and the outputs are
    /// averaged (class probabilities; lesion maps after mirroring back). Twice the compute. Off by default: on the
    /// UCSD validation split it changed accuracy by one image of 118 and AUC by −0.003 (docs/model-card.md).
    /// </summary>
    public bool FlipTestTimeAugmentation { get; init; }

    /// <summary>Which graphs serve both outputs: <c>Combined</c> (one pass of <c>dfsn_dtcn.onnx</c>) or <c>Separate</c>
    /// (<c>dfsn.onnx</c> + <c>dtcn.onnx</c>); null: the manifest's <c>default_models</c>.</summary>
    public ModelLayout? Layout { get; init; }

    /// <summary>
    /// On inputs with HU (CT volumes, DICOM series), keep lesion output inside the lungs: mask pixels outside the
    /// enclosed-air lung estimate dilated by <see cref="LungRestriction.MarginMm"/> are dropped, and the slice ranking
    /// of the study rule uses the map restricted the same way (<see cref="LungRestriction"/>). 2-D images are never
    /// restricted. On by default: the network, trained on lung crops, otherwise marks body wall, table and bowel.
    /// </summary>
    public bool RestrictLesionsToLungs { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> naming the setting when a value is out of range.</summary>
    public void Validate()
    {
        if (IntraOpThreads < 0)
        {
            throw new ArgumentException($"{SectionName}:{nameof(IntraOpThreads)} must be >= 0 (got {IntraOpThreads}).");
        }

        if (InterOpThreads < 0)
        {
            throw new ArgumentException($"{SectionName}:{nameof(InterOpThreads)} must be >= 0 (got {InterOpThreads}).");
        }

        if (MaxBatch is < 1 or > 1024)
        {
            throw new ArgumentException($"{SectionName}:{nameof(MaxBatch)} must be in 1..1024 (got {MaxBatch}).");
        }

        if (CudaDeviceId < 0)
        {
            throw new ArgumentException($"{SectionName}:{nameof(CudaDeviceId)} must be >= 0 (got {CudaDeviceId}).");
        }
    }
}

/// <summary>How the two networks are served.</summary>
public enum ModelLayout
{
    /// <summary>One graph, one backbone pass: outputs <c>lesion_prob</c> and <c>class_prob</c> (frozen-backbone DTCN).</summary>
    Combined,

    /// <summary>Two graphs: DFSN for <c>lesion_prob</c>, the fine-tuned DTCN for <c>class_prob</c>.</summary>
    Separate,
}
