namespace CovidFunctions.Cli.Tests;

public class CliVersionTests
{
    [Fact]
    public void ExitCodes_BadInput_IsTwo()
    {
        Assert.Equal(2, ExitCodes.BadInput);
    }
}
