namespace CovidFunctions.Inference.Tests;

public sealed class LungMaskTests
{
    [Fact]
    public void FromHu_AirInsideTheBodyIsLung_AirAroundItAndTinyPocketsAreNot_EnclosedDensityIsLung()
    {
        // 40×40 slice: outside air (−1000), a body square (40 HU) from 5 to 34, two "lungs" (−800) inside it.
        const int size = 40;
        var hu = new float[size * size];
        for (var y = 0; y < size; y++)
        {
            for (var x = 0; x < size; x++)
            {
                var inBody = x is >= 5 and < 35 && y is >= 5 and < 35;
                var inLung = y is >= 10 and < 30 && (x is >= 8 and < 18 || x is >= 22 and < 32);
                var consolidation = y is >= 14 and < 16 && x is >= 10 and < 12;
                var gasBubble = y == 7 && x == 20;
                hu[(y * size) + x] = consolidation ? 30 : inLung || gasBubble ? -800 : inBody ? 40 : -1000;
            }
        }

        var mask = LungMask.FromHu(hu, size, size);

        Assert.Equal(2 * 10 * 20, LungMask.Area(mask));
        Assert.Equal(1, mask[(15 * size) + 10]); // the enclosed consolidation
        Assert.Equal(0, mask[(7 * size) + 20]); // a one-pixel gas pocket
        Assert.Equal(0, mask[0]);
        Assert.Equal(0, mask[(20 * size) + 20]);
    }
}
