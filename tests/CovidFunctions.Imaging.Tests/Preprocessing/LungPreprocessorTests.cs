using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Preprocessing;

public sealed class LungPreprocessorTests
{
    [Theory]
    [InlineData(512, 512, 352, 352)]
    [InlineData(300, 400, 264, 352)]
    [InlineData(400, 300, 352, 264)]
    [InlineData(1, 1000, 1, 352)]
    [InlineData(100, 100, 352, 352)]
    [InlineData(3, 2, 352, 235)] // 2 × 352/3 = 234.67
    public void ResizedShape_VariousSizes_LongerSideIsS(int h, int w, int nh, int nw)
    {
        Assert.Equal((nh, nw), LungPreprocessor.ResizedShape(h, w));
    }

    [Fact]
    public void ResizedShape_HalfwayValue_RoundsAwayFromZero()
    {
        // 5 × 4/8 = 2.5 → 3 (banker's rounding would give 2).
        Assert.Equal((3, 4), LungPreprocessor.ResizedShape(5, 8, 4));
    }

    [Theory]
    [InlineData(25, 35)]
    [InlineData(70, 90)]
    [InlineData(37, 53)]
    [InlineData(5, 200)]
    [InlineData(1, 1)]
    public void Resize_AgainstPilBilinearOnFloatImages_MatchesWithin1e6(int h, int w)
    {
        var src = NpyFormat.Read(TestData.Local("imaging", "resize_src_37x53.npy")).ToSingle();
        var expected = NpyFormat.Read(TestData.Local("imaging", $"resize_37x53_to_{h}x{w}.npy")).ToSingle();

        var actual = LungPreprocessor.Resize(src, 37, 53, h, w);

        Assert.Equal(expected.Length, actual.Length);
        var maxDiff = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(maxDiff <= 1e-6f, $"max abs diff {maxDiff}");
    }

    [Fact]
    public void Resize_SameSize_IsIdentity()
    {
        var src = Enumerable.Range(0, 12).Select(i => i * 0.1f).ToArray();
        Assert.Equal(src, LungPreprocessor.Resize(src, 3, 4, 3, 4));
    }

    [Fact]
    public void Resize_ConstantImage_StaysConstant()
    {
        var src = Enumerable.Repeat(0.25f, 17 * 29).ToArray();
        var result = LungPreprocessor.Resize(src, 17, 29, 200, 9);
        Assert.All(result, v => Assert.Equal(0.25f, v, 6));
    }

    [Fact]
    public void WindowHu_LungWindow_MapsEndsAndClamps()
    {
        short[] hu = [-1350, -600, 150, -2000, 3000, -1000];
        var image = LungPreprocessor.WindowHu(hu, 6, 1);
        Assert.Equal(0f, image.Pixels[0]);
        Assert.Equal(0.5f, image.Pixels[1]);
        Assert.Equal(1f, image.Pixels[2]);
        Assert.Equal(0f, image.Pixels[3]);
        Assert.Equal(1f, image.Pixels[4]);
        Assert.Equal(350f / 1500f, image.Pixels[5], 6);
    }

    [Fact]
    public void WindowHu_CustomWindow_UsesLevelAndWidth()
    {
        float[] hu = [0, 40, 80];
        var image = LungPreprocessor.WindowHu(hu, 3, 1, new WindowSettings(40, 80));
        Assert.Equal([0f, 0.5f, 1f], image.Pixels);
    }

    [Fact]
    public void ToTensor_WideImage_LetterboxedVerticallyCentred()
    {
        var image = new GreyImage(400, 300, Enumerable.Repeat(1f, 400 * 300).ToArray());

        var result = LungPreprocessor.ToTensor(image);

        Assert.Equal(new LetterboxBox(44, 0, 264, 352), result.Box);
        Assert.Equal(352 * 352, result.Tensor.Length);
        Assert.Equal(0f, result.Tensor[(43 * 352) + 100]);
        Assert.Equal(1f, result.Tensor[(44 * 352) + 100], 6);
        Assert.Equal(1f, result.Tensor[(307 * 352) + 351], 6);
        Assert.Equal(0f, result.Tensor[308 * 352]);
    }

    [Fact]
    public void ToTensor_Batch_StacksPlanesInOrder()
    {
        var a = new GreyImage(10, 10, Enumerable.Repeat(0.2f, 100).ToArray());
        var b = new GreyImage(20, 10, Enumerable.Repeat(0.7f, 200).ToArray());

        var batch = LungPreprocessor.ToTensor([a, b]);

        Assert.Equal(2, batch.Count);
        Assert.Equal(2 * 352 * 352, batch.Tensor.Length);
        Assert.Equal(0.2f, batch.Tensor[(176 * 352) + 176], 6);
        Assert.Equal(0.7f, batch.Tensor[(352 * 352) + (176 * 352) + 176], 6);
        Assert.Equal(new LetterboxBox(88, 0, 176, 352), batch.Boxes[1]);
    }

    [Fact]
    public void MaskToImage_SquareOfHighProbability_MapsBackToSourceGrid()
    {
        // A 512×384 image: box (44, 0, 264, 352) … here h=384,w=512 → nh=264, nw=352, top=44.
        var box = new LetterboxBox(44, 0, 264, 352);
        var prob = new float[352 * 352];
        for (var y = 44 + 66; y < 44 + 132; y++)
        {
            for (var x = 88; x < 176; x++)
            {
                prob[(y * 352) + x] = 0.9f;
            }
        }

        var mask = LungPreprocessor.MaskToImage(prob, box, 384, 512, 0.5f);

        Assert.Equal(384 * 512, mask.Length);
        Assert.All(mask, v => Assert.True(v is 0 or 255));
        // Box rows 66–131 of 264 → image rows 96–191 of 384; columns 88–175 of 352 → 128–255 of 512.
        Assert.Equal(255, mask[(140 * 512) + 190]);
        Assert.Equal(0, mask[(20 * 512) + 20]);
        var count = mask.Count(v => v == 255);
        Assert.InRange(count, 96 * 128 * 0.95, 96 * 128 * 1.05);
    }

    [Fact]
    public void MaskToImage_BoxOutsideTensor_Throws()
    {
        var prob = new float[352 * 352];
        Assert.Throws<ArgumentOutOfRangeException>(() => LungPreprocessor.MaskToImage(prob, new LetterboxBox(100, 0, 300, 352), 10, 10));
    }
}
