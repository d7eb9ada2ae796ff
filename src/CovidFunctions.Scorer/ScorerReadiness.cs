namespace CovidFunctions.Scorer;

/// <summary>What /readyz reports: ready once the models are loaded and one warm-up batch has run.</summary>
public sealed class ScorerReadiness
{
    private int _inFlight;
    private volatile bool _ready;
    private volatile bool _draining;

    public bool IsReady => _ready && !_draining;

    public bool IsDraining => _draining;

    /// <summary>The execution provider the models run on (known after warm-up).</summary>
    public string? Provider { get; private set; }

    public double? WarmUpSeconds { get; private set; }

    public int InFlight => Volatile.Read(ref _inFlight);

    public long Completed => Interlocked.Read(ref _completed);

    private long _completed;

    internal void MarkReady(string provider, double warmUpSeconds)
    {
        Provider = provider;
        WarmUpSeconds = warmUpSeconds;
        _ready = true;
    }

    internal void MarkDraining() => _draining = true;

    internal void Started() => Interlocked.Increment(ref _inFlight);

    internal void Finished()
    {
        Interlocked.Decrement(ref _inFlight);
        Interlocked.Increment(ref _completed);
    }
}
