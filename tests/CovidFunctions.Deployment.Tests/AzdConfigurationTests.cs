using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CovidFunctions.TestHelpers;
using YamlDotNet.RepresentationModel;

namespace CovidFunctions.Deployment.Tests;

/// <summary>azure.yaml and bicep/main.parameters.json agree with the template and with the files they point to.</summary>
[Collection(CompiledTemplateCollection.Name)]
public sealed partial class AzdConfigurationTests(CompiledTemplateFixture fixture)
{
    private static readonly string Root = TestData.RepoRoot;

    [Fact]
    public void AzureYaml_Infra_PointsAtBicepMain()
    {
        var infra = (YamlMappingNode)AzureYaml()["infra"];

        Assert.Equal("bicep", Scalar(infra, "provider"));
        Assert.True(File.Exists(Path.Combine(Root, Scalar(infra, "path"), Scalar(infra, "module") + ".bicep")));
    }

    [Fact]
    public void AzureYaml_Services_AreTheFunctionAppAndTheScorerContainer()
    {
        var services = (YamlMappingNode)AzureYaml()["services"];
        var func = (YamlMappingNode)services["func"];
        var scorer = (YamlMappingNode)services["scorer"];

        Assert.Equal(2, services.Children.Count);
        Assert.Equal("./src/CovidFunctions.FunctionApp", Scalar(func, "project"));
        Assert.Equal("function", Scalar(func, "host"));
        Assert.Equal("./src/CovidFunctions.Scorer", Scalar(scorer, "project"));
        Assert.Equal("containerapp", Scalar(scorer, "host"));
        var docker = (YamlMappingNode)scorer["docker"];
        var project = Path.Combine(Root, Scalar(scorer, "project"));
        // azd resolves docker.path and docker.context against the service project folder.
        Assert.Equal(Path.Combine(Root, "infra", "scorer", "Dockerfile"), Path.GetFullPath(Path.Combine(project, Scalar(docker, "path"))));
        Assert.Equal(Path.TrimEndingDirectorySeparator(Root), Path.TrimEndingDirectorySeparator(Path.GetFullPath(Path.Combine(project, Scalar(docker, "context")))));
    }

    [Fact]
    public void AzureYaml_ServiceNames_MatchTheAzdServiceTagsInBicep()
    {
        var services = ((YamlMappingNode)AzureYaml()["services"]).Children.Keys.Select(k => ((YamlScalarNode)k).Value!).Order(StringComparer.Ordinal);
        var tagged = new[] { "functionapp", "containerapps" }
            .Select(m => fixture.Main.Resolve(fixture.Main.Module(m).Deployment!["properties"]!["parameters"]!["azdServiceName"]!["value"]))
            .Order(StringComparer.Ordinal);

        Assert.Equal(services, tagged);
    }

    [Fact]
    public void AzureYaml_PostdeployHook_RunsTheScriptThatExists()
    {
        var hook = (YamlMappingNode)((YamlMappingNode)((YamlMappingNode)AzureYaml()["hooks"])["postdeploy"])["posix"];

        Assert.Equal("sh", Scalar(hook, "shell"));
        var script = Path.Combine(Root, Scalar(hook, "run"));
        Assert.True(File.Exists(script), script);
        Assert.StartsWith("#!/bin/sh", File.ReadAllText(script), StringComparison.Ordinal);
    }

    [Fact]
    public void PostdeployScript_RequiredVariables_AreTemplateOutputsOrAzdBuiltIns()
    {
        var outputs = fixture.Main.Root["outputs"]!.AsObject().Select(o => o.Key).ToHashSet(StringComparer.Ordinal);
        string[] azdBuiltIns = ["AZURE_SUBSCRIPTION_ID", "AZURE_ENV_NAME"];

        var required = RequiredVariable().Matches(File.ReadAllText(Path.Combine(Root, "infra", "scripts", "postdeploy.sh"))).Select(m => m.Groups[1].Value).ToList();

        Assert.NotEmpty(required);
        Assert.All(required, v => Assert.True(outputs.Contains(v) || azdBuiltIns.Contains(v), $"{v} is neither a main.bicep output nor set by azd"));
    }

    [Fact]
    public void ParametersFile_Entries_AreDeclaredAndCoverEveryRequiredParameter()
    {
        var declared = fixture.Main.Root["parameters"]!.AsObject();
        var file = JsonNode.Parse(File.ReadAllText(Path.Combine(Root, "bicep", "main.parameters.json")))!["parameters"]!.AsObject();

        Assert.All(file, p => Assert.True(declared.ContainsKey(p.Key), $"{p.Key} is not a main.bicep parameter"));
        foreach (var (name, parameter) in declared)
        {
            if (parameter!["defaultValue"] is null)
            {
                Assert.True(file.ContainsKey(name), $"required parameter {name} missing from main.parameters.json");
            }
        }
    }

    [Fact]
    public void ParametersFile_Defaults_AreAllowedValuesAndMatchTheParameterTypes()
    {
        var declared = fixture.Main.Root["parameters"]!.AsObject();
        var file = JsonNode.Parse(File.ReadAllText(Path.Combine(Root, "bicep", "main.parameters.json")))!["parameters"]!.AsObject();

        foreach (var (name, entry) in file)
        {
            var value = entry!["value"]!;
            var type = (string)declared[name]!["type"]!;
            if (type == "int")
            {
                // azd substitutes ${VAR} as text: an int parameter gets a JSON number, never a "${...}" string.
                Assert.True(value.GetValueKind() == System.Text.Json.JsonValueKind.Number, $"{name} must be a JSON number");
                continue;
            }

            var text = (string)value!;
            var reference = AzdReference().Match(text);
            var effective = reference.Success ? (reference.Groups["default"].Success ? reference.Groups["default"].Value : null) : text;
            if (declared[name]!["allowedValues"] is JsonArray allowed && effective is not null)
            {
                Assert.Contains(effective, allowed.Select(a => (string)a!));
            }

            if (type.StartsWith("secure", StringComparison.Ordinal))
            {
                Assert.True(reference.Success && effective == string.Empty, $"{name}: a secure parameter comes from the environment and defaults to empty");
            }
        }
    }

    private static YamlMappingNode AzureYaml()
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(Path.Combine(Root, "azure.yaml"));
        stream.Load(reader);
        return (YamlMappingNode)stream.Documents.Single().RootNode;
    }

    private static string Scalar(YamlMappingNode node, string key) => ((YamlScalarNode)node[key]).Value!;

    [GeneratedRegex(@"\$\{(\w+):\?")]
    private static partial Regex RequiredVariable();

    [GeneratedRegex(@"^\$\{(?<name>\w+)(=(?<default>[^}]*))?\}$")]
    private static partial Regex AzdReference();
}
