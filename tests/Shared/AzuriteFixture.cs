using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Tests.Shared;

/// <summary>
/// A real Azurite for a test assembly: its own free ports and data folder, stopped after the collection. One source
/// file compiled into the Function app and scorer test projects (linked from their csproj), which both reference
/// CovidFunctions.Pipeline.Azure; TestHelpers does not, so it cannot live there.
/// </summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    private readonly TempDirectory _data = TestData.CreateTempDirectory();

    public AzuriteServer Server { get; private set; } = null!;

    public PipelineStorage Storage { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await AzuriteServer.StartAsync(
            new AzuriteServerOptions { DataDirectory = _data.Path, Ports = AzuriteServer.FreePorts() },
            logger: null,
            CancellationToken.None);
        Storage = PipelineStorage.FromConnectionString(Server.ConnectionString);
        await Storage.EnsureCreatedAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        _data.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "azurite";
}
