using CovidFunctions.Dicom.Deidentification;

namespace CovidFunctions.Dicom.Tests.Deidentification;

public sealed class DateShifterTests
{
    [Theory]
    [InlineData("20200301", -1, "20200229")]
    [InlineData("20201231", 1, "20210101")]
    [InlineData("2020", 10, "2020")]
    [InlineData("202003", -1, "202002")]
    [InlineData("20200101\\20200201", 31, "20200201\\20200303")]
    [InlineData("20200101-20200110", 1, "20200102-20200111")]
    [InlineData("-20200110", 1, "-20200111")]
    [InlineData("2020.03.01", 1, "20200302")]
    [InlineData("", 5, "")]
    public void ShiftDA_Values_ShiftByDaysKeepingPrecision(string input, int days, string expected) =>
        Assert.Equal(expected, DateShifter.ShiftDA(input, days));

    [Theory]
    [InlineData("20200301120000.123456", -1, "20200229120000.123456")]
    [InlineData("20200301120000-0500", 2, "20200303120000-0500")]
    [InlineData("20200301120000+0100", 2, "20200303120000+0100")]
    [InlineData("2020030112", 1, "2020030212")]
    [InlineData("20200101000000-20200102000000", 1, "20200102000000-20200103000000")]
    public void ShiftDT_Values_ShiftDatePartKeepTimeAndOffset(string input, int days, string expected) =>
        Assert.Equal(expected, DateShifter.ShiftDT(input, days));

    [Theory]
    [InlineData("PHIDATE")]
    [InlineData("20201340")]
    [InlineData("2020130")]
    public void ShiftDA_NotADate_ReturnsNull(string input) => Assert.Null(DateShifter.ShiftDA(input, 3));

    [Fact]
    public void Shift_IntervalBetweenTwoDates_IsPreserved()
    {
        var a = DateOnly.ParseExact(DateShifter.ShiftDA("20200314", -200)!, "yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture);
        var b = DateOnly.ParseExact(DateShifter.ShiftDA("20210102", -200)!, "yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(new DateOnly(2021, 1, 2).DayNumber - new DateOnly(2020, 3, 14).DayNumber, b.DayNumber - a.DayNumber);
    }
}
