namespace CovidFunctions.Dicom.Tests.Fuzz;

/// <summary>
/// What the fuzz drivers (<see cref="DicomFuzzTests"/>, <see cref="DeidFuzzTests"/>) share: the run's size from the
/// environment (COVIDFN_FUZZ_CASES=N runs N cases with no time bound, COVIDFN_FUZZ_SEED=S changes the seed; otherwise the
/// driver's default cases within the CI budget) and one case run on its own thread under a deadline, so a hang is reported
/// as a failure instead of stalling the test run.
/// </summary>
internal static class FuzzDriver
{
    /// <summary>How long a CI run (no COVIDFN_FUZZ_CASES) may take.</summary>
    public static readonly TimeSpan CiBudget = TimeSpan.FromSeconds(60);

    /// <summary>How long one case may take before it counts as a hang.</summary>
    public static readonly TimeSpan CaseDeadline = TimeSpan.FromSeconds(10);

    /// <summary>Cases, seed and time budget for this run.</summary>
    public static (int Cases, int Seed, TimeSpan Budget) Settings(int defaultCases, int defaultSeed)
    {
        var requested = int.TryParse(Environment.GetEnvironmentVariable("COVIDFN_FUZZ_CASES"), out var n) && n > 0 ? n : (int?)null;
        var seed = int.TryParse(Environment.GetEnvironmentVariable("COVIDFN_FUZZ_SEED"), out var s) ? s : defaultSeed;
        return (requested ?? defaultCases, seed, requested is null ? CiBudget : TimeSpan.MaxValue);
    }

    /// <summary>Runs one case on its own thread; null when it gave no result within <see cref="CaseDeadline"/>.</summary>
    public static async Task<DicomFuzzTests.Outcome?> RunCaseAsync(Func<DicomFuzzTests.Outcome> exercise)
    {
        var task = Task.Factory.StartNew(exercise, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            return await task.WaitAsync(CaseDeadline);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }
}
