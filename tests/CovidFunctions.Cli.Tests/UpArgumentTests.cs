using CovidFunctions.Cli.Commands;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn up</c>'s numeric options are checked before anything starts, and the message names the option that is
/// wrong. Before, <c>--port 70000</c> answered "--port must be 1-65533, --chunk-size at least 1, --demo-slices 8-1000"
/// whichever was wrong, and <c>--api-port</c> was not checked at all: <c>--api-port 70710</c> (a typo) started Azurite,
/// the sidecar and the scorer, then ran without the results API and so without webhooks (exit 0, one yellow line), and
/// a negative port silently meant "no API".
/// </summary>
public sealed class UpArgumentTests
{
    [Theory]
    [InlineData(70000, 7071, 64, null, "--port 70000")]
    [InlineData(0, 70710, 64, null, "--api-port 70710")]
    [InlineData(0, -1, 64, null, "--api-port -1")]
    [InlineData(0, 7071, 4, null, "--demo-slices 4")]
    [InlineData(0, 7071, 64, 0, "--chunk-size 0")]
    public async Task A_value_out_of_range_exits_2_naming_only_that_option_before_anything_starts(int port, int apiPort, int demoSlices, int? chunkSize, string named)
    {
        using var temp = TestData.CreateTempDirectory();
        var dataDir = Path.Combine(temp.Path, "data");
        using var output = new StringWriter();
        using var error = new StringWriter();

        // A valid --port (0 in the data) is a free one, so an up that wrongly starts cannot meet another Azurite; the
        // token stops such an up (exit 1, not 2) instead of leaving it running.
        port = port == 0 ? AzuriteServer.FreePorts().Blob : port;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var exit = await UpCommand.RunAsync(
            new UpCommand.UpArguments(dataDir, port, Demo: false, demoSlices, ExitWhenDone: true, Models: null, Threads: null, Storage: null, chunkSize, apiPort),
            output, error, stop.Token);

        Assert.Equal(ExitCodes.BadInput, exit);
        var message = error.ToString();
        Assert.Contains(named, message, StringComparison.Ordinal);
        foreach (var other in new[] { "--port ", "--api-port ", "--demo-slices ", "--chunk-size " }.Where(o => !named.StartsWith(o, StringComparison.Ordinal)))
        {
            Assert.DoesNotContain(other, message, StringComparison.Ordinal);
        }

        Assert.False(Directory.Exists(dataDir), "up created its data folder (and key) for arguments it refuses");
    }
}
