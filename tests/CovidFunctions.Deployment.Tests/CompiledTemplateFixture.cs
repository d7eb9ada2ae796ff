using CovidFunctions.TestHelpers;

namespace CovidFunctions.Deployment.Tests;

/// <summary>Compiles bicep/main.bicep once per test run; the tests read the ARM JSON it produces.</summary>
public sealed class CompiledTemplateFixture : IAsyncLifetime
{
    private readonly TempDirectory _output = TestData.CreateTempDirectory();
    private ArmTemplate? _main;

    internal ArmTemplate Main => _main ?? throw new InvalidOperationException("fixture not initialised");

    internal ProcessResult Build { get; private set; } = new(-1, string.Empty, string.Empty);

    public async Task InitializeAsync()
    {
        var outFile = Path.Combine(_output.Path, "main.json");
        Build = await BicepCli.RunAsync(BicepCli.BicepDirectory, "build", "main.bicep", "--outfile", outFile);
        if (Build.ExitCode != 0 || !File.Exists(outFile))
        {
            throw new InvalidOperationException("bicep build main.bicep failed:\n" + Build.Combined);
        }

        _main = ArmTemplate.Load(outFile);
    }

    public Task DisposeAsync()
    {
        _output.Dispose();
        return Task.CompletedTask;
    }
}

[CollectionDefinition(Name)]
public sealed class CompiledTemplateCollection : ICollectionFixture<CompiledTemplateFixture>
{
    public const string Name = "compiled main.bicep";
}
