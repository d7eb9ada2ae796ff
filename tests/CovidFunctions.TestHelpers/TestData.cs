namespace CovidFunctions.TestHelpers;

/// <summary>
/// Resolves test inputs. Real data lives in <c>../shared/data</c> beside the repository (never copied into it);
/// synthetic fixtures the project generates itself live in <c>tests/data</c>.
/// </summary>
public static class TestData
{
    private static readonly Lazy<string> RepoRootLazy = new(FindRepoRoot);

    /// <summary>The repository root (the folder holding CovidFunctions.sln).</summary>
    public static string RepoRoot => RepoRootLazy.Value;

    /// <summary>The shared data folder: <c>COVIDFN_SHARED_DATA</c> if set, else <c>../shared/data</c> from the repo root.</summary>
    public static string SharedData =>
        Environment.GetEnvironmentVariable("COVIDFN_SHARED_DATA") is { Length: > 0 } configured
            ? configured
            : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "data"));

    /// <summary>A path under the shared data folder; throws with the path when it is missing.</summary>
    public static string Shared(params string[] relative)
    {
        var path = Path.Combine([SharedData, .. relative]);
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            throw new FileNotFoundException($"Shared test data not found: {path}. Tests read ../shared/data beside the repository.", path);
        }

        return path;
    }

    /// <summary>A path under the repository's own <c>tests/data</c> folder (synthetic, committed fixtures).</summary>
    public static string Local(params string[] relative) => Path.Combine([RepoRoot, "tests", "data", .. relative]);

    /// <summary>A fresh temporary directory for one test; the caller deletes it (or leaves it to the OS on failure).</summary>
    public static TempDirectory CreateTempDirectory() => new();

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "CovidFunctions.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("CovidFunctions.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A per-test temporary directory, deleted on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "covidfn-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A file still open on a failing test: leave it for the OS temp cleaner.
        }
    }
}
