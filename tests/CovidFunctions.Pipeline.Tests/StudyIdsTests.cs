namespace CovidFunctions.Pipeline.Tests;

public sealed class StudyIdsTests
{
    [Fact]
    public void StudyIdIsDeterministicPerTenantAndPath()
    {
        var a = StudyIds.ForUpload("default", "default/chest.zip");
        Assert.Equal(a, StudyIds.ForUpload("default", "/default/chest.zip/"));
        Assert.NotEqual(a, StudyIds.ForUpload("other", "default/chest.zip"));
        Assert.NotEqual(a, StudyIds.ForUpload("default", "default/chest2.zip"));
        Assert.Matches("^s[0-9a-f]{24}$", a);
    }

    [Theory]
    [InlineData("default", true)]
    [InlineData("lab-7", true)]
    [InlineData("Lab", false)]
    [InlineData("../x", false)]
    [InlineData("", false)]
    [InlineData("-x", false)]
    public void TenantsAreSafePathSegments(string tenant, bool valid) => Assert.Equal(valid, StudyIds.IsValidTenant(tenant));
}
