using System.Text.RegularExpressions;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Deployment.Tests;

/// <summary>Every Bicep file compiles and lints with zero diagnostics under bicep/bicepconfig.json.</summary>
[Collection(CompiledTemplateCollection.Name)]
public sealed class BicepLintTests(CompiledTemplateFixture fixture)
{
    private static IReadOnlyList<string> BicepFiles =>
        Directory.GetFiles(BicepCli.BicepDirectory, "*.bicep", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();

    [Fact]
    public void BuildMain_WithRepositoryConfig_HasNoDiagnostics()
    {
        Assert.Equal(0, fixture.Build.ExitCode);
        Assert.Empty(BicepCli.Diagnostics(fixture.Build));
    }

    [Fact]
    public async Task BuildEveryFile_WithRepositoryConfig_CompilesEachWithoutDiagnostics()
    {
        using var output = TestData.CreateTempDirectory();

        var result = await BicepCli.RunAsync(BicepCli.BicepDirectory, "build", "--pattern", "**/*.bicep", "--outdir", output.Path);

        Assert.True(result.ExitCode == 0, result.Combined);
        Assert.Empty(BicepCli.Diagnostics(result));
        var built = Directory.GetFiles(output.Path, "*.json", SearchOption.AllDirectories).Select(Path.GetFileNameWithoutExtension).Order(StringComparer.Ordinal);
        Assert.Equal(BicepFiles.Select(Path.GetFileNameWithoutExtension).Order(StringComparer.Ordinal), built);
    }

    [Fact]
    public async Task LintEveryFile_WithRepositoryConfig_ReportsNothing()
    {
        var result = await BicepCli.RunAsync(BicepCli.BicepDirectory, "lint", "--pattern", "**/*.bicep");

        Assert.True(result.ExitCode == 0, result.Combined);
        Assert.Empty(BicepCli.Diagnostics(result));
        Assert.True(BicepFiles.Count >= 10, "expected main.bicep and its modules under bicep/");
    }

    [Fact]
    public async Task Lint_FileWithUnusedParameterAndUnknownProperty_IsReported()
    {
        // The gate itself: the repository config turns such findings into diagnostics the tests above would catch.
        using var dir = TestData.CreateTempDirectory();
        File.Copy(Path.Combine(BicepCli.BicepDirectory, "bicepconfig.json"), Path.Combine(dir.Path, "bicepconfig.json"));
        File.WriteAllText(
            Path.Combine(dir.Path, "bad.bicep"),
            """
            param unused string
            param location string = resourceGroup().location
            resource registry 'Microsoft.ContainerRegistry/registries@2025-11-01' = {
              name: 'crbadexample'
              location: location
              sku: { name: 'Basic' }
              properties: { notAProperty: true }
            }
            output key string = listKeys(registry.id, '2025-11-01').keys[0].value
            """);

        var result = await BicepCli.RunAsync(dir.Path, "lint", "bad.bicep");

        var diagnostics = string.Join('\n', BicepCli.Diagnostics(result));
        Assert.Contains("no-unused-params", diagnostics, StringComparison.Ordinal);
        Assert.Contains("BCP037", diagnostics, StringComparison.Ordinal);
        Assert.Contains("outputs-should-not-contain-secrets", diagnostics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Format_EveryFile_IsAlreadyInBicepFormat()
    {
        // bicep format rewrites in place; run it on a copy and compare.
        using var copy = TestData.CreateTempDirectory();
        foreach (var file in BicepFiles.Append(Path.Combine(BicepCli.BicepDirectory, "bicepconfig.json")))
        {
            var target = Path.Combine(copy.Path, Path.GetRelativePath(BicepCli.BicepDirectory, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }

        var result = await BicepCli.RunAsync(copy.Path, "format", "--pattern", "**/*.bicep");

        Assert.True(result.ExitCode == 0, result.Combined);
        Assert.All(BicepFiles, file => Assert.True(
            File.ReadAllText(file) == File.ReadAllText(Path.Combine(copy.Path, Path.GetRelativePath(BicepCli.BicepDirectory, file))),
            $"{Path.GetRelativePath(BicepCli.BicepDirectory, file)} is not formatted: run bicep format on it"));
    }

    [Fact]
    public void Modules_AnyFile_UseNoPublicRegistryModules()
    {
        foreach (var file in BicepFiles)
        {
            var modules = Regex.Matches(File.ReadAllText(file), @"^module\s+\w+\s+'([^']+)'", RegexOptions.Multiline);
            Assert.All(modules, m => Assert.Matches(@"^(\./)?(modules/)?[\w.-]+\.bicep$", m.Groups[1].Value));
        }
    }
}
