using CovidFunctions.Cli.Commands;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn status ID</c> on a real Azurite for ids that cannot be a Table Storage key ('/', '\', '#', '?', control
/// characters): the answer is the unknown-study answer (exit 1, "no study 'ID'"), with and without <c>--tenant</c>.
/// Before, the point read of such a key failed in storage and the command printed "storage refused the query".
/// </summary>
public sealed class StatusCommandUnknownIdTests(StatusCommandUnknownIdTests.Storage azurite) : IClassFixture<StatusCommandUnknownIdTests.Storage>
{
    [Theory]
    [InlineData("a/b")]
    [InlineData("a\\b")]
    [InlineData("a#b")]
    [InlineData("a?b")]
    [InlineData("a\u0001b")]
    [InlineData("a\u007fb")]
    [InlineData("s0000000000000000000000a1/x")]
    public async Task AnIdThatCannotBeATableKey_IsAnUnknownStudy(string id)
    {
        foreach (var tenant in new[] { null, "lab-a", "default" })
        {
            var unknown = await StatusAsync(azurite.ConnectionString, "s0000000000000000000000ff", tenant);
            var odd = await StatusAsync(azurite.ConnectionString, id, tenant);

            Assert.Equal(ExitCodes.InternalError, unknown.ExitCode);
            Assert.Equal(unknown.ExitCode, odd.ExitCode);
            Assert.Equal(unknown.Error.Replace("s0000000000000000000000ff", id, StringComparison.Ordinal), odd.Error);
            Assert.DoesNotContain("storage", odd.Error, StringComparison.Ordinal);
            Assert.Equal(string.Empty, odd.Output);
        }

        // The study itself is still found.
        var known = await StatusAsync(azurite.ConnectionString, "s0000000000000000000000a1", null);
        Assert.Equal(ExitCodes.Success, known.ExitCode);
    }

    private static async Task<(int ExitCode, string Output, string Error)> StatusAsync(string connection, string id, string? tenant)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await StatusCommand.RunAsync(id, tenant, json: true, connection, dataDir: null, output, error, CancellationToken.None);
        return (exit, output.ToString(), error.ToString());
    }

    /// <summary>One Azurite for the class, with one study in tenant lab-a.</summary>
    public sealed class Storage : IAsyncLifetime
    {
        private TempDirectory? _data;
        private AzuriteServer? _server;

        public string ConnectionString => _server!.ConnectionString;

        public async Task InitializeAsync()
        {
            _data = TestData.CreateTempDirectory();
            _server = await AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = _data.Path, Ports = AzuriteServer.FreePorts() }, null, CancellationToken.None);
            var storage = PipelineStorage.FromConnectionString(_server.ConnectionString);
            await storage.EnsureCreatedAsync(CancellationToken.None);
            await storage.Studies.TryCreateAsync(new StudyRecord { Tenant = "lab-a", StudyId = "s0000000000000000000000a1", CreatedAt = DateTimeOffset.UtcNow }, CancellationToken.None);
        }

        public async Task DisposeAsync()
        {
            if (_server is not null)
            {
                await _server.DisposeAsync();
            }

            _data?.Dispose();
        }
    }
}
