using System.Text.RegularExpressions;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Scorer.Tests;

/// <summary>
/// Event ids across the whole product, every src project, read from the sources (tests/Shared/LogEventIds.cs): the
/// per-host LogEventIdTests see only what one process loads, but every host's logs reach one workspace in Azure. Here
/// (the scorer's tests) because the scan is checked against what reflection finds in the assemblies the scorer loads.
/// </summary>
public sealed class ProductLogEventIdTests
{
    private static readonly IReadOnlyList<LogEventIds.SourceEvent> Scanned = LogEventIds.SourceEvents(TestData.RepoRoot);

    [Fact]
    public void Every_event_id_names_one_event_across_the_product_and_each_block_of_100_belongs_to_one_assembly()
    {
        // The scan reaches every project with events (Dicom has none), the hosts included.
        Assert.Superset(
            new HashSet<string>
            {
                "CovidFunctions.Cli", "CovidFunctions.FunctionApp", "CovidFunctions.Scorer", "CovidFunctions.Pipeline",
                "CovidFunctions.Pipeline.Azure", "CovidFunctions.Imaging", "CovidFunctions.Inference",
            },
            Scanned.Select(e => e.Project).ToHashSet());

        LogEventIds.AssertProductWide(Scanned);
    }

    [Fact]
    public void The_source_scan_finds_the_ids_reflection_finds_in_the_assemblies_the_scorer_loads()
    {
        // A scan that missed an attribute form would let the product-wide check pass for nothing.
        var assemblies = LogEventIds.ProductAssemblies(typeof(ScorerWorker).Assembly);
        foreach (var assembly in assemblies)
        {
            var name = assembly.GetName().Name!;
            var reflected = LogEventIds.Events([assembly]).Select(e => e.Id).Order().ToArray();
            var scanned = Scanned.Where(e => e.AssemblyName == name).Select(e => e.Id).Order().ToArray();
            Assert.True(reflected.SequenceEqual(scanned), $"{name}: reflection {string.Join(",", reflected)}; scan {string.Join(",", scanned)}");
        }

        Assert.Contains(assemblies, a => a.GetName().Name == "CovidFunctions.Imaging");
    }

    [Fact]
    public void A_shared_id_has_one_message_template_wherever_it_is_declared()
    {
        // One query over the workspace finds a shared event from every host; a template that differs between hosts
        // (4102 said "{Status} ({Reason})" in the Function app and "{Status} {Reason}" in covidfn) splits its messages.
        var sources = Directory.EnumerateFiles(Path.Combine(TestData.RepoRoot, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .SelectMany(File.ReadLines)
            .ToArray();
        foreach (var (id, declaredBy) in LogEventIds.SharedIds)
        {
            var templates = sources
                .Where(line => Regex.IsMatch(line, $@"\bEventId\s*=\s*{id}\b"))
                .Select(line => Regex.Match(line, "Message\\s*=\\s*\"(?<m>[^\"]*)\"").Groups["m"].Value)
                .ToArray();
            Assert.Equal(declaredBy.Length, templates.Length);
            Assert.All(templates, t => Assert.NotEmpty(t));
            Assert.Single(templates.Distinct(StringComparer.Ordinal));
        }
    }

    [Fact]
    public void The_check_refuses_a_reused_id_a_shared_block_outside_the_list_and_a_shared_id_in_a_third_assembly()
    {
        static LogEventIds.SourceEvent Event(string project, int id) => new(project, project, "x.cs", 1, "M" + id, id);

        LogEventIds.AssertProductWide([Event("A", 5001), Event("A", 5002), Event("CovidFunctions.Cli", 4102), Event("CovidFunctions.FunctionApp", 4102)]);
        Assert.ThrowsAny<Exception>(() => LogEventIds.AssertProductWide([Event("A", 5001), Event("B", 9001), Event("B", 5001)]));
        Assert.ThrowsAny<Exception>(() => LogEventIds.AssertProductWide([Event("A", 5001), Event("B", 5011)]));
        Assert.ThrowsAny<Exception>(() => LogEventIds.AssertProductWide([Event("CovidFunctions.Cli", 4102), Event("CovidFunctions.FunctionApp", 4102), Event("CovidFunctions.Scorer", 4102)]));
        Assert.ThrowsAny<Exception>(() => LogEventIds.AssertProductWide([Event("CovidFunctions.Inference", 3001), Event("CovidFunctions.Scorer", 3002)]));
    }
}
