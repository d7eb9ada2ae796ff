using CovidFunctions.Cli.Commands;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// What <c>status</c> (and <c>submit</c>, <c>webhooks</c>, <c>usage</c>, which open the storage the same way) says when
/// no storage answers. Before, every case read "no local storage answers at 127.0.0.1:P/Q/R; start the pipeline with
/// `covidfn up` first", even when a <c>covidfn up</c> was running and the command was only run outside its data folder
/// (README: "in the same working directory, or give the commands up's --data-dir"), or when the data folder named was one
/// whose up had stopped. Found walking through README's second-terminal commands (H5, session 21).
/// </summary>
public sealed class StorageNotAnsweringTests
{
    [Fact]
    public async Task DataFolderOfAStoppedUp_IsNamed_WithHowToStartItAgain()
    {
        using var dir = new TempDirectory();

        // What a covidfn up records at start, on ports nothing listens on now (its up has stopped).
        var ports = new AzuritePorts(TestNetwork.FreePort(), TestNetwork.FreePort(), TestNetwork.FreePort());
        await File.WriteAllTextAsync(Path.Combine(dir.Path, LocalStorage.ConnectionFileName), AzuriteServer.ConnectionStringFor(ports));

        using var output = new StringWriter();
        using var error = new StringWriter();
        var rc = await StatusCommand.RunAsync(null, null, json: false, connection: null, dataDir: dir.Path, output, error, CancellationToken.None);

        Assert.Equal(ExitCodes.InternalError, rc);
        var line = error.ToString().Trim();
        Assert.Contains($"the covidfn up of {dir.Path} is not running", line, StringComparison.Ordinal);
        Assert.Contains($"127.0.0.1:{ports.Blob}/{ports.Queue}/{ports.Table}", line, StringComparison.Ordinal);
        Assert.Contains($"covidfn up --data-dir {dir.Path}", line, StringComparison.Ordinal);
    }

    [Fact]
    public void FolderThatNoUpUsed_PointsAtTheDataFolder()
    {
        // The default ports answer or not depending on the machine, so the line itself is checked here.
        var line = LocalStorageConnection.NothingAnswers("status", AzuritePorts.Default, "/home/u/.covidfn", LocalStorageConnection.StorageSource.Default);

        Assert.StartsWith("status: no local storage answers at 127.0.0.1:10000/10001/10002", line, StringComparison.Ordinal);
        Assert.Contains("/home/u/.covidfn is not the data folder of a covidfn up (no storage.connection)", line, StringComparison.Ordinal);
        Assert.Contains("--data-dir", line, StringComparison.Ordinal);
    }
}
