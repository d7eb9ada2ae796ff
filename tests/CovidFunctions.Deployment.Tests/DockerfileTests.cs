using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Deployment.Tests;

/// <summary>
/// infra/scorer/Dockerfile checked without a Docker engine (none exists in CI): parsed, then held to the image
/// contract: pinned bases, CUDA matching ONNX Runtime GPU, non-root, health check, graceful stop, no secrets.
/// </summary>
public sealed partial class DockerfileTests
{
    /// <summary>
    /// ONNX Runtime release (major.minor) to the CUDA major its GPU packages are built for. 1.31: the CUDA provider
    /// links libcublasLt.so.13 / libcudart.so.13 and loads libcudnn.so.9 (read from the package's native library).
    /// </summary>
    private static readonly Dictionary<string, int> OnnxRuntimeCudaMajor = new(StringComparer.Ordinal)
    {
        ["1.31"] = 13,
    };

    private static string DockerfilePath => Path.Combine(TestData.RepoRoot, "infra", "scorer", "Dockerfile");

    private static Dockerfile Image => Dockerfile.Parse(File.ReadAllText(DockerfilePath));

    [Fact]
    public void Parse_ContinuationsAndComments_JoinsLinesAndDropsComments()
    {
        var parsed = Dockerfile.Parse("ARG BASE=img:1.0\nFROM ${BASE} AS one\n# note\nRUN a \\\n  # inside\n  b\nFROM one\nUSER 1\n");

        Assert.Equal(["img:1.0", "one"], parsed.Stages.Select(s => s.Image));
        Assert.Equal("one", parsed.Stages[0].Name);
        Assert.Equal("a b", Assert.Single(parsed.Stages[0].Instructions).Arguments);
    }

    [Fact]
    public void Stages_Image_AreSdkBuildThenCudaRuntime()
    {
        var image = Image;

        Assert.True(image.Stages.Count >= 2, "multi-stage build expected");
        var build = Assert.Single(image.Stages, s => s.Name == "build");
        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:10.", build.Image, StringComparison.Ordinal);
        Assert.Matches(@"^nvidia/cuda:\d+\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+$", image.FinalStage.Image);
        Assert.Contains(image.FinalStage.All("COPY"), c => c.Arguments.StartsWith("--from=build ", StringComparison.Ordinal));
        Assert.Contains(image.FinalStage.All("COPY"), c => c.Arguments.Contains("/usr/share/dotnet", StringComparison.Ordinal));
    }

    [Fact]
    public void BaseImages_EveryExternalFrom_IsPinnedByVersionTag()
    {
        var image = Image;
        var stageNames = image.Stages.Select(s => s.Name).OfType<string>().ToHashSet(StringComparer.Ordinal);

        foreach (var stage in image.Stages.Where(s => !stageNames.Contains(s.Image)))
        {
            Assert.DoesNotContain("$", stage.Image, StringComparison.Ordinal);
            var match = ImageReference().Match(stage.Image);
            Assert.True(match.Success, $"{stage.Image}: expected registry/name:tag or @sha256 digest");
            var tag = match.Groups["tag"].Value;
            Assert.True(match.Groups["digest"].Success || (tag != "latest" && char.IsAsciiDigit(tag[0])), $"{stage.Image}: tag must start with a version");
        }
    }

    [Fact]
    public void CudaVersion_RuntimeBase_MatchesTheOnnxRuntimeGpuRelease()
    {
        var props = XDocument.Load(Path.Combine(TestData.RepoRoot, "Directory.Packages.props"));
        var versions = props.Descendants("PackageVersion")
            .Where(e => ((string?)e.Attribute("Include"))?.StartsWith("Microsoft.ML.OnnxRuntime", StringComparison.Ordinal) == true)
            .ToDictionary(e => (string)e.Attribute("Include")!, e => (string)e.Attribute("Version")!);
        // The GPU pin when the scorer adds it, else the CPU pin of the same release train.
        var ortVersion = versions.FirstOrDefault(v => v.Key.Contains(".Gpu", StringComparison.Ordinal)).Value ?? versions["Microsoft.ML.OnnxRuntime"];
        var release = string.Join('.', ortVersion.Split('.').Take(2));

        Assert.True(OnnxRuntimeCudaMajor.TryGetValue(release, out var cudaMajor), $"ONNX Runtime {release}: add its CUDA major to the table after checking its GPU requirements");
        var tag = Image.FinalStage.Image.Split(':')[1];
        Assert.Equal(cudaMajor, int.Parse(tag.Split('.')[0], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains("-cudnn-", tag, StringComparison.Ordinal);
    }

    [Fact]
    public void Publish_BuildStage_TargetsLinuxX64WithTheGpuPackage()
    {
        var build = Image.Stages.Single(s => s.Name == "build");
        var publish = Assert.Single(build.All("RUN"), r => r.Arguments.Contains("dotnet publish", StringComparison.Ordinal));

        Assert.Contains("src/CovidFunctions.Scorer/CovidFunctions.Scorer.csproj", publish.Arguments, StringComparison.Ordinal);
        Assert.Matches(@"(--runtime|-r) linux-x64\b", publish.Arguments);
        Assert.Contains("-p:UseOnnxRuntimeGpu=true", publish.Arguments, StringComparison.Ordinal);
        Assert.Contains("--configuration Release", publish.Arguments, StringComparison.Ordinal);
    }

    [Fact]
    public void FinalStage_User_IsAFixedNonRootUid()
    {
        var users = Image.FinalStage.All("USER").ToList();

        Assert.NotEmpty(users);
        var last = users[^1].Arguments.Split(':')[0];
        Assert.True(int.TryParse(last, out var uid) && uid >= 1000, $"USER {last}: use a numeric uid >= 1000 so runAsNonRoot can verify it");
        var after = Image.FinalStage.Instructions.SkipWhile(i => i != users[^1]).Skip(1);
        Assert.DoesNotContain(after, i => i.Keyword is "RUN" or "USER");
    }

    [Fact]
    public void FinalStage_Lifecycle_HasModelsHealthcheckStopSignalAndExecEntrypoint()
    {
        var final = Image.FinalStage;

        Assert.Contains(final.All("COPY"), c => c.Arguments.TrimEnd().EndsWith(" /app/models/", StringComparison.Ordinal));
        var health = Assert.Single(final.All("HEALTHCHECK"));
        Assert.Contains("CMD", health.Arguments, StringComparison.Ordinal);
        Assert.DoesNotContain("NONE", health.Arguments, StringComparison.Ordinal);
        Assert.Contains("http://127.0.0.1:8080/healthz", health.Arguments, StringComparison.Ordinal);
        Assert.Equal("SIGTERM", Assert.Single(final.All("STOPSIGNAL")).Arguments);
        var entrypoint = JsonSerializer.Deserialize<string[]>(Assert.Single(final.All("ENTRYPOINT")).Arguments);
        Assert.Equal(["dotnet", "/app/CovidFunctions.Scorer.dll"], entrypoint!);
        Assert.Empty(final.All("CMD"));
    }

    [Fact]
    public void Instructions_EveryStage_CarryNoSecretsAndFetchNothingUnpinned()
    {
        foreach (var instruction in Image.Instructions)
        {
            if (instruction.Keyword is "ENV" or "ARG")
            {
                foreach (Match name in EnvName().Matches(instruction.Arguments))
                {
                    Assert.DoesNotMatch(SecretName(), name.Groups[1].Value);
                }
            }

            Assert.DoesNotMatch(SecretValue(), instruction.Arguments);
            Assert.False(instruction.Keyword == "ADD", $"line {instruction.Line}: use COPY (ADD fetches URLs and unpacks archives)");
            Assert.DoesNotMatch(@"\b(curl|wget)\b[^|]*\|\s*(sh|bash)\b", instruction.Arguments);
        }
    }

    [Fact]
    public void Dockerignore_BesideDockerfile_ExcludesBuildOutputs()
    {
        var ignore = File.ReadAllLines(DockerfilePath + ".dockerignore");

        Assert.Contains("**/bin/", ignore);
        Assert.Contains("**/obj/", ignore);
        Assert.Contains("!src/**", ignore);
    }

    [GeneratedRegex(@"^(?:[a-z0-9.-]+(?::\d+)?/)?[a-z0-9._/-]+(?::(?<tag>[A-Za-z0-9._-]+))?(?<digest>@sha256:[a-f0-9]{64})?$")]
    private static partial Regex ImageReference();

    [GeneratedRegex(@"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)")]
    private static partial Regex EnvName();

    [GeneratedRegex("(?i)(password|secret|token|apikey|api_key|accountkey|connectionstring|sas|privatekey)")]
    private static partial Regex SecretName();

    [GeneratedRegex("(?i)(AccountKey=|SharedAccessKey=|-----BEGIN|sig=)")]
    private static partial Regex SecretValue();
}
