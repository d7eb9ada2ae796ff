using CovidFunctions.Pipeline.Scoring;

namespace CovidFunctions.Pipeline.Tests.Scoring;

public sealed class LungRegionTests
{
    [Fact]
    public void KeepsEnclosedAirWithItsVesselsAndDropsTheAirAroundThePatient()
    {
        const int w = 40, h = 30;
        var hu = new short[w * h];
        bool InBody(int x, int y) => Math.Pow((x - 20) / 18.0, 2) + Math.Pow((y - 15) / 13.0, 2) <= 1;
        bool InLung(int x, int y) => x is >= 8 and < 18 && y is >= 8 and < 22;
        for (var y = 0; y < h; y++)
        {
            for (var x = 0; x < w; x++)
            {
                hu[(y * w) + x] = (short)(!InBody(x, y) ? -1024 : InLung(x, y) ? -850 : 40);
            }
        }

        hu[(15 * w) + 12] = 60; // a vessel inside the lung: filled as a hole
        hu[(15 * w) + 30] = -900; // a pocket of gas in soft tissue: counted (the rule's known overestimate)

        var lung = LungRegion.Estimate(hu, w, h);

        Assert.Equal((10 * 14) + 1, lung.Count(v => v != 0));
        Assert.Equal(255, lung[(15 * w) + 12]);
        Assert.Equal(0, lung[0]);
        Assert.Equal(0, lung[(15 * w) + 19]);
    }

    [Fact]
    public void DropsTheEnclosedAirOfAHollowTableUnderThePatient()
    {
        const int w = 60, h = 50;
        var hu = new short[w * h];
        bool InBody(int x, int y) => Math.Pow((x - 30) / 25.0, 2) + Math.Pow((y - 20) / 15.0, 2) <= 1;
        bool InLung(int x, int y) => x is >= 15 and < 27 && y is >= 12 and < 28;
        bool InTableShell(int x, int y) => x is >= 6 and < 54 && y is >= 40 and < 47;
        bool InTableAir(int x, int y) => x is >= 8 and < 52 && y is >= 42 and < 45;
        for (var y = 0; y < h; y++)
        {
            for (var x = 0; x < w; x++)
            {
                hu[(y * w) + x] = (short)(InBody(x, y) ? (InLung(x, y) ? -850 : 40)
                    : InTableShell(x, y) ? (InTableAir(x, y) ? -1000 : 200) : -1024);
            }
        }

        var lung = LungRegion.Estimate(hu, w, h);

        Assert.Equal(12 * 16, lung.Count(v => v != 0)); // the lung only: the table's air (44 x 3) is not in the body
        Assert.Equal(0, lung[(43 * w) + 30]);
    }
}
