using System.Text.Json;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.TestHelpers;
using Xunit.Abstractions;

namespace CovidFunctions.Imaging.Tests.Preprocessing;

/// <summary>
/// C# vs Python parity for "lung2d-v1" on the fixtures of src/training/make_parity_fixtures.py
/// (tests/data/preprocessing/fixtures.json): tensors within the fixture tolerance (1e-5), boxes and masks equal.
/// </summary>
public sealed class ParityTests(ITestOutputHelper output)
{
    private static readonly JsonElement Fixtures = JsonDocument.Parse(File.ReadAllText(TestData.Local("preprocessing", "fixtures.json"))).RootElement;

    public static TheoryData<string> ImageNames()
    {
        var data = new TheoryData<string>();
        foreach (var image in Fixtures.GetProperty("images").EnumerateArray())
        {
            data.Add(image.GetProperty("name").GetString()!);
        }

        return data;
    }

    public static TheoryData<string> MaskNames()
    {
        var data = new TheoryData<string>();
        foreach (var mask in Fixtures.GetProperty("mask_back").EnumerateArray())
        {
            data.Add(mask.GetProperty("name").GetString()!);
        }

        return data;
    }

    [Fact]
    public void Fixtures_DeclareThisPreprocessing()
    {
        Assert.Equal(LungPreprocessor.PreprocessingId, Fixtures.GetProperty("preprocessing").GetString());
        Assert.Equal(LungPreprocessor.InputSize, Fixtures.GetProperty("side").GetInt32());
        Assert.True(Fixtures.GetProperty("images").GetArrayLength() >= 10);
    }

    [Theory]
    [MemberData(nameof(ImageNames))]
    public void ToTensor_FixtureImage_MatchesPythonWithinTolerance(string name)
    {
        var fixture = Fixtures.GetProperty("images").EnumerateArray().Single(e => e.GetProperty("name").GetString() == name);
        var input = fixture.GetProperty("input").GetString()!;
        int h = fixture.GetProperty("h").GetInt32(), w = fixture.GetProperty("w").GetInt32();
        GreyImage image;
        if (input.EndsWith(".npy", StringComparison.Ordinal))
        {
            var hu = NpyFormat.Read(TestData.Local("preprocessing", input));
            Assert.Equal([h, w], hu.Shape);
            image = LungPreprocessor.WindowHu(hu.ToSingle(), w, h);
        }
        else
        {
            image = ImageLoader.Load(TestData.Local("preprocessing", input));
        }

        var result = LungPreprocessor.ToTensor(image);
        var expected = NpyFormat.Read(TestData.Local("preprocessing", fixture.GetProperty("tensor").GetString()!)).ToSingle();

        Assert.Equal((h, w), (image.Height, image.Width));
        Assert.Equal(
            new LetterboxBox(fixture.GetProperty("top").GetInt32(), fixture.GetProperty("left").GetInt32(), fixture.GetProperty("nh").GetInt32(), fixture.GetProperty("nw").GetInt32()),
            result.Box);
        Assert.Equal(expected.Length, result.Tensor.Length);
        var maxDiff = 0f;
        for (var i = 0; i < expected.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - result.Tensor[i]));
        }

        output.WriteLine($"{name}: max abs diff {maxDiff:E2}");
        Assert.True(maxDiff <= Fixtures.GetProperty("tolerance").GetDouble(), $"{name}: max abs diff {maxDiff}");
    }

    [Theory]
    [MemberData(nameof(MaskNames))]
    public void MaskToImage_FixtureProbability_MatchesPythonMask(string name)
    {
        var fixture = Fixtures.GetProperty("mask_back").EnumerateArray().Single(e => e.GetProperty("name").GetString() == name);
        int h = fixture.GetProperty("h").GetInt32(), w = fixture.GetProperty("w").GetInt32();
        var prob = NpyFormat.Read(TestData.Local("preprocessing", fixture.GetProperty("prob").GetString()!)).ToSingle();
        var expected = NpyFormat.Read(TestData.Local("preprocessing", fixture.GetProperty("mask").GetString()!));
        var (nh, nw) = LungPreprocessor.ResizedShape(h, w);
        var box = new LetterboxBox((352 - nh) / 2, (352 - nw) / 2, nh, nw);

        var mask = LungPreprocessor.MaskToImage(prob, box, h, w, (float)fixture.GetProperty("threshold").GetDouble());

        Assert.Equal([h, w], expected.Shape);
        Assert.Equal(expected.As<byte>().ToArray(), mask);
    }
}
