using System.Text;
using System.Text.Json.Nodes;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Deployment.Tests;

/// <summary>
/// A main.bicep parameter that becomes an app setting the code checks at start-up is checked by the same rule in the
/// template, so a value the app would refuse fails the deployment instead of the running app. The check's Bicep text,
/// as main.bicep has it, is run by the Bicep CLI's own evaluator (<c>bicep build-params</c> on a .bicepparam file that
/// maps it over the inputs) and compared with the code for the same inputs. (A user-defined Bicep function would be
/// simpler to call, but it makes the template languageVersion 2.0, which these tests do not read.)
/// </summary>
[Collection(CompiledTemplateCollection.Name)]
public sealed class SettingChecksTests(CompiledTemplateFixture fixture)
{
    private static readonly string[] PortLists =
    [
        "443", "443,8443", " 443 , 8443 ", "443,,80", "1", "65535", "0443", "443,443",
        "", " ", ",", " , ", "0", "65536", "-1", "+443", "44a", "4 43", "443;8443", "443.0", "99999999999", "https",
    ];

    [Fact]
    public async Task IsWebhookPortList_AcceptsExactlyWhatTheFunctionAppAccepts()
    {
        var bicep = await EvaluateAsync("webhookAllowedPortsValid", "webhookAllowedPorts", PortLists);

        var differences = PortLists.Zip(bicep)
            .Where(pair => pair.Second != FunctionAppAccepts(pair.First))
            .Select(pair => $"'{pair.First}': bicep {(pair.Second ? "accepts" : "refuses")}, the Function app {(FunctionAppAccepts(pair.First) ? "accepts" : "refuses")}")
            .ToList();
        Assert.True(differences.Count == 0, string.Join("\n", differences));

        // Both sides are exercised: the inputs hold lists each accepts and lists each refuses.
        Assert.Contains(true, bicep);
        Assert.Contains(false, bicep);
    }

    [Fact]
    public void WebhookAllowedPorts_ReachesTheFunctionAppOnlyThroughTheCheck()
    {
        // Before, main.bicep passed webhookAllowedPorts to the app unchecked (only @minLength(1)): 'https' or '80;443'
        // deployed, and the Function app then refused to start on Webhooks__AllowedPorts.
        var passed = (string)fixture.Main.Module("functionapp").Deployment!["properties"]!["parameters"]!["webhookAllowedPorts"]!;

        var guard = ArmExpressionParser.Parse(passed) as ArmCall;
        Assert.True(
            guard is
            {
                Name: "if",
                Arguments:
                [
                    ArmCall { Name: "variables", Arguments: [ArmString { Value: "webhookAllowedPortsValid" }] },
                    ArmCall { Name: "createObject", Arguments: [ArmString { Value: "value" }, ArmCall { Name: "parameters", Arguments: [ArmString { Value: "webhookAllowedPorts" }] }] },
                    ArmCall { Name: "createObject", Arguments: [ArmString { Value: "value" }, ArmCall { Name: "fail" }] },
                ],
            },
            "the functionapp module's webhookAllowedPorts is not webhookAllowedPortsValid ? webhookAllowedPorts : fail(...): " + passed);
        Assert.Contains("WEBHOOK_ALLOWED_PORTS", passed, StringComparison.Ordinal);
    }

    private static bool FunctionAppAccepts(string ports)
    {
        try
        {
            _ = new WebhookOptions { AllowedPorts = ports }.ParseAllowedPorts();
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>
    /// Runs main.bicep's <c>var <paramref name="variable"/> = …</c> expression (to its first blank line) for each input
    /// bound to <paramref name="parameter"/>, with the Bicep CLI's evaluator.
    /// </summary>
    private static async Task<bool[]> EvaluateAsync(string variable, string parameter, IReadOnlyList<string> inputs)
    {
        var main = File.ReadAllText(Path.Combine(BicepCli.BicepDirectory, "main.bicep")).ReplaceLineEndings("\n");
        var start = main.IndexOf($"\nvar {variable} = ", StringComparison.Ordinal);
        Assert.True(start >= 0, $"main.bicep declares no variable {variable}");
        start += $"\nvar {variable} = ".Length;
        var end = main.IndexOf("\n\n", start, StringComparison.Ordinal);
        var expression = main[start..end];

        using var dir = TestData.CreateTempDirectory();
        await File.WriteAllTextAsync(Path.Combine(dir.Path, "probe.bicep"), "param results string\noutput results string = results\n");
        var literals = string.Join(", ", inputs.Select(BicepString));
        await File.WriteAllTextAsync(
            Path.Combine(dir.Path, "probe.bicepparam"),
            $"using 'probe.bicep'\nparam results = string(map([{literals}], {parameter} => {expression}))\n");

        var result = await BicepCli.RunAsync(dir.Path, "build-params", "probe.bicepparam", "--stdout");
        Assert.True(result.ExitCode == 0, "bicep build-params failed:\n" + result.Combined);
        var parameters = JsonNode.Parse((string)JsonNode.Parse(result.StandardOutput)!["parametersJson"]!)!;
        var values = JsonNode.Parse((string)parameters["parameters"]!["results"]!["value"]!)!.AsArray().Select(v => (bool)v!).ToArray();
        Assert.Equal(inputs.Count, values.Length);
        return values;
    }

    private static string BicepString(string value)
    {
        var text = new StringBuilder("'");
        foreach (var c in value)
        {
            text.Append(c switch
            {
                '\'' => "\\'",
                '\\' => "\\\\",
                '$' => "\\$",
                _ => c.ToString(),
            });
        }

        return text.Append('\'').ToString();
    }
}
