using CovidFunctions.Imaging.Series;

namespace CovidFunctions.Imaging.Tests.Series;

public sealed class NaturalSortComparerTests
{
    [Fact]
    public void Order_NumbersByValueCaseIgnoredZerosBreakTies()
    {
        string[] names = ["img10.png", "img2.png", "IMG3.png", "img1.png", "img01.png", "img1.jpg", "img", "img100a.png", "img100.png", "a/img2.png"];

        var sorted = names.Order(NaturalSortComparer.Instance).ToArray();

        Assert.Equal(["a/img2.png", "img", "img1.jpg", "img1.png", "img01.png", "img2.png", "IMG3.png", "img10.png", "img100.png", "img100a.png"], sorted);
    }

    [Fact]
    public void Compare_LongDigitRunsDoNotOverflowAndEqualNamesAreEqual()
    {
        var c = NaturalSortComparer.Instance;

        Assert.True(c.Compare("s99999999999999999999999.png", "s100000000000000000000000.png") < 0);
        Assert.Equal(0, c.Compare("slice-7.png", "slice-7.png"));
        Assert.True(c.Compare("a.png", "A.png") > 0); // equal ignoring case: ordinal decides ('A' < 'a')
    }
}
