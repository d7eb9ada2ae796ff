using System.Numerics;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Deidentification;

public sealed class KeyedMappingsTests
{
    private static readonly DeidKey KeyA = DeidKey.FromBytes(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());
    private static readonly DeidKey KeyB = DeidKey.FromBytes(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());

    [Fact]
    public void MapUid_OrdinaryUid_Gives225UuidDerivedUid()
    {
        var mapped = new KeyedMappings(KeyA).MapUid("1.3.6.1.4.1.14519.5.2.1.6655.2359.123456789");

        Assert.StartsWith("2.25.", mapped, StringComparison.Ordinal);
        Assert.True(mapped.Length <= 64);
        var value = BigInteger.Parse(mapped[5..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(value < BigInteger.One << 128);
        Assert.DoesNotMatch("^2\\.25\\.0", mapped);
        var bytes = value.ToByteArray(isUnsigned: true, isBigEndian: true);
        var uuid = new byte[16];
        bytes.CopyTo(uuid, 16 - bytes.Length);
        Assert.Equal(0x80, uuid[6] & 0xF0); // version 8
        Assert.Equal(0x80, uuid[8] & 0xC0); // RFC variant
    }

    [Fact]
    public void MapUid_SameKeyTwoInstances_AgreeAndDifferentKeyDiffers()
    {
        const string uid = "1.2.3.4.5.6.7.8.9";
        Assert.Equal(new KeyedMappings(KeyA).MapUid(uid), new KeyedMappings(KeyA).MapUid(uid));
        Assert.NotEqual(new KeyedMappings(KeyA).MapUid(uid), new KeyedMappings(KeyB).MapUid(uid));
        Assert.NotEqual(new KeyedMappings(KeyA).MapUid(uid), new KeyedMappings(KeyA).MapUid(uid + "0"));
    }

    [Theory]
    [InlineData("1.2.840.10008.5.1.4.1.1.2")]
    [InlineData("1.2.840.10008.1.2.1")]
    [InlineData("1.2.840.10008.1.4.1.1")]
    [InlineData("")]
    public void MapUid_WellKnownUid_IsKept(string uid) => Assert.Equal(uid, new KeyedMappings(KeyA).MapUid(uid));

    [Fact]
    public void MapUid_TrailingNulPadding_IsIgnored() =>
        Assert.Equal(new KeyedMappings(KeyA).MapUid("1.2.3"), new KeyedMappings(KeyA).MapUid("1.2.3\0"));

    [Fact]
    public void Pseudonym_IsReadableDeterministicAndIssuerScoped()
    {
        var m = new KeyedMappings(KeyA);
        var p = m.Pseudonym("HOSP", "12345", "Doe^John", 16);

        Assert.Matches("^ANON-[A-Z2-7]{16}$", p);
        Assert.Equal(p, m.Pseudonym("HOSP", "12345", "Other^Name", 16));
        Assert.NotEqual(p, m.Pseudonym("OTHER", "12345", "Doe^John", 16));
        Assert.NotEqual(p, new KeyedMappings(KeyB).Pseudonym("HOSP", "12345", "Doe^John", 16));
        Assert.NotEqual(m.Pseudonym(null, null, "A^B", 16), m.Pseudonym(null, null, "C^D", 16));
    }

    [Fact]
    public void DateShiftDays_IsWithinAYearAndNeverZero()
    {
        var m = new KeyedMappings(KeyA);
        var seen = new HashSet<int>();
        for (var i = 0; i < 2000; i++)
        {
            var shift = m.DateShiftDays("ANON-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.InRange(Math.Abs(shift), 1, 365);
            seen.Add(shift);
        }

        Assert.Contains(seen, s => s < 0);
        Assert.Contains(seen, s => s > 0);
        Assert.Equal(m.DateShiftDays("ANON-X"), new KeyedMappings(KeyA).DateShiftDays("ANON-X"));
    }

    [Fact]
    public void LoadOrCreate_NewFile_Is0600AndReloadsTheSameKey()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "sub", "deid.key");

        var created = DeidKey.LoadOrCreate(path, out var wasCreated);
        var reloaded = DeidKey.LoadOrCreate(path, out var createdAgain);

        Assert.True(wasCreated);
        Assert.False(createdAgain);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        Assert.Equal(32, Convert.FromBase64String(File.ReadAllText(path).Trim()).Length);
        Assert.Equal(new KeyedMappings(created).MapUid("1.2.3"), new KeyedMappings(reloaded).MapUid("1.2.3"));
        Assert.Equal("DeidKey(redacted)", created.ToString());
    }

    [Fact]
    public void LoadOrCreate_GarbageOrShortKey_Throws()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "bad.key");
        File.WriteAllText(path, "not base64 !!");
        Assert.Throws<DeidKeyException>(() => DeidKey.LoadOrCreate(path, out _));
        File.WriteAllText(path, Convert.ToBase64String(new byte[8]));
        Assert.Throws<DeidKeyException>(() => DeidKey.LoadOrCreate(path, out _));
    }
}
