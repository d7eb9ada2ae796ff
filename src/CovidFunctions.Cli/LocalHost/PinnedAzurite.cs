using CovidFunctions.Pipeline.Azure.Local;

namespace CovidFunctions.Cli.LocalHost;

/// <summary>
/// Where <c>covidfn up</c> finds the pinned Azurite it starts when none answers: <c>infra/azurite</c> of the repository
/// checkout (beside <c>CovidFunctions.sln</c>), above the executable or the working directory. A published covidfn
/// copied elsewhere has none; before, <c>up</c> then stopped with the library's "pass AzuriteServerOptions.RepoRoot",
/// which a user cannot do. The message says what a user can do instead.
/// </summary>
public static class PinnedAzurite
{
    /// <summary>The repository root above one of <paramref name="searchFrom"/> (in order) that holds <c>CovidFunctions.sln</c> and <c>infra/azurite</c>.</summary>
    /// <exception cref="InvalidOperationException">None of them is inside such a checkout; the message names the folders searched, the ports and the ways out.</exception>
    public static string FindRepoRoot(IReadOnlyList<string> searchFrom, AzuritePorts ports)
    {
        ArgumentNullException.ThrowIfNull(searchFrom);
        ArgumentNullException.ThrowIfNull(ports);
        foreach (var start in searchFrom)
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "CovidFunctions.sln")) && Directory.Exists(Path.Combine(dir.FullName, "infra", "azurite")))
                {
                    return dir.FullName;
                }
            }
        }

        throw new InvalidOperationException(
            $"no Azurite answers on 127.0.0.1:{ports.Blob}-{ports.Table}, and the pinned one that covidfn up starts (infra/azurite of the CovidFunctions repository) " +
            $"is not in a checkout above {string.Join(" or ", searchFrom.Distinct(StringComparer.Ordinal))}. Run covidfn up from inside the repository checkout, " +
            $"start Azurite yourself on ports {ports.Blob}-{ports.Table} (--port; it is reused), or set {LocalStorage.ConnectionVariable} to a Storage connection string.");
    }
}
