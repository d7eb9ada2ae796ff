using System.Security.Cryptography;
using System.Text;
using CovidFunctions.Dicom.Deidentification;

namespace CovidFunctions.Pipeline.Tests;

public sealed class StudyIdsTests
{
    [Fact]
    public void StudyIdIsDeterministicPerKeyTenantAndPath()
    {
        var key = TestStudyIdKeys.Fixed;
        var a = StudyIds.ForUpload(key, "default", "default/chest.zip");
        Assert.Equal(a, StudyIds.ForUpload(key, "default", "/default/chest.zip/"));
        Assert.Equal(a, StudyIds.ForUpload(StudyIdKey.From(DeidKey.FromBytes(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray())), "default", "default/chest.zip"));
        Assert.NotEqual(a, StudyIds.ForUpload(key, "other", "default/chest.zip"));
        Assert.NotEqual(a, StudyIds.ForUpload(key, "default", "default/chest2.zip"));
        Assert.Matches("^s[0-9a-f]{24}$", a);
    }

    [Fact]
    public void StudyIdIsKeyed_AnotherDeidKeyGivesAnotherId_AndTheUnkeyedHashNoLongerMatches()
    {
        // The dictionary attack of the unkeyed ids: hash a guessed upload name and compare. It must not match any more,
        // and a deployment with another de-identification key names the same upload differently.
        const string guess = "lab-a/Smith_John.zip";
        var id = StudyIds.ForUpload(TestStudyIdKeys.Fixed, "lab-a", guess);
        var unkeyed = "s" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("lab-a\n" + guess)))[..24];

        Assert.NotEqual(unkeyed, id);
        Assert.NotEqual(id, StudyIds.ForUpload(StudyIdKey.From(DeidKey.Generate()), "lab-a", guess));
    }

    [Fact]
    public void StudyIdKey_IsHkdfOfTheDeidKey_AndTheIdIsItsHmac()
    {
        // The documented construction, computed here from the primitives: HKDF-SHA256(deid key, no salt,
        // info "covidfn/study-id/v1", 32 bytes), then HMAC-SHA256 over "{tenant}\n{path}", first 12 bytes as hex.
        var deidBytes = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        var derived = HKDF.DeriveKey(HashAlgorithmName.SHA256, deidBytes, 32, [], Encoding.UTF8.GetBytes(StudyIdKey.DerivationLabel));
        var expected = "s" + Convert.ToHexStringLower(HMACSHA256.HashData(derived, Encoding.UTF8.GetBytes("lab\nlab/chest.zip")))[..24];

        Assert.Equal(expected, StudyIds.ForUpload(TestStudyIdKeys.Fixed, "lab", "lab/chest.zip"));

        // Neither the de-identification key itself nor its other mappings are the study-id key.
        var withDeidKeyItself = "s" + Convert.ToHexStringLower(HMACSHA256.HashData(deidBytes, Encoding.UTF8.GetBytes("lab\nlab/chest.zip")))[..24];
        Assert.NotEqual(withDeidKeyItself, expected);
        Assert.Equal("StudyIdKey(redacted)", TestStudyIdKeys.Fixed.ToString());
    }

    [Fact]
    public void UncheckedIds_UseTheSameKeyedFormula_AndOnlyForUploadChecksTheTenant()
    {
        Assert.Equal(StudyIds.ForUpload(TestStudyIdKeys.Fixed, "lab", "lab/x.zip"), StudyIds.ForUploadUnchecked(TestStudyIdKeys.Fixed, "lab", "lab/x.zip"));
        Assert.Matches("^s[0-9a-f]{24}$", StudyIds.ForUploadUnchecked(TestStudyIdKeys.Fixed, "Bad_Tenant", "Bad_Tenant/x.zip"));
        Assert.Throws<ArgumentException>(() => StudyIds.ForUpload(TestStudyIdKeys.Fixed, "Bad_Tenant", "Bad_Tenant/x.zip"));
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
