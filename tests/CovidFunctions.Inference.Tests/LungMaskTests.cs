namespace CovidFunctions.Inference.Tests;

public sealed class LungMaskTests
{
    [Fact]
    public void KeepEnclosedAndFillHoles_AirInsideTheBodyIsLung_AirAroundItIsNot_EnclosedDensityIsLung()
    {
        // 40×40 slice: outside air, a body square from 5 to 34, two "lungs" inside it, a dense spot inside one lung.
        const int size = 40;
        var air = new byte[size * size];
        for (var y = 0; y < size; y++)
        {
            for (var x = 0; x < size; x++)
            {
                var inBody = x is >= 5 and < 35 && y is >= 5 and < 35;
                var inLung = y is >= 10 and < 30 && (x is >= 8 and < 18 || x is >= 22 and < 32);
                var consolidation = y is >= 14 and < 16 && x is >= 10 and < 12;
                air[(y * size) + x] = (!inBody || (inLung && !consolidation)) ? (byte)1 : (byte)0;
            }
        }

        LungMask.KeepEnclosedAndFillHoles(air, size, size);

        Assert.Equal(2 * 10 * 20, LungMask.Area(air));
        Assert.Equal(1, air[(15 * size) + 10]); // the enclosed consolidation
        Assert.Equal(0, air[0]); // air around the body
        Assert.Equal(0, air[(20 * size) + 20]); // mediastinum between the lungs
    }
}
