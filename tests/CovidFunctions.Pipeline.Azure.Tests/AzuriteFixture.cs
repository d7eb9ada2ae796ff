using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Azure.Tests;

/// <summary>One real Azurite (the pinned npm package) on free ports and a temporary folder, shared by the tests of the "Azurite" collection.</summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    private TempDirectory? _data;

    public AzuriteServer Server { get; private set; } = null!;

    public PipelineStorage Storage { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _data = TestData.CreateTempDirectory();
        Server = await AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = _data.Path, Ports = AzuriteServer.FreePorts() }, null, CancellationToken.None);
        Storage = PipelineStorage.FromConnectionString(Server.ConnectionString);
        await Storage.EnsureCreatedAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        _data?.Dispose();
    }

    /// <summary>A tenant no other test uses (tests share the containers and tables).</summary>
    public static string NewTenant() => "t" + Guid.NewGuid().ToString("N")[..12];

    /// <summary>A queue name no other test uses.</summary>
    public static string NewQueue() => "q" + Guid.NewGuid().ToString("N")[..16];
}

[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "Azurite";
}
