using CovidFunctions.Dicom.Deidentification;

namespace CovidFunctions.Dicom.Tests.Deidentification;

public sealed class DescriptorCleanerTests
{
    [Theory]
    [InlineData("CT CHEST W/O CONTRAST", "CT CHEST W/O CONTRAST")]
    [InlineData("Thorax 1.0 B70f", "Thorax 1.0 B70f")]
    [InlineData("CHEST for John Smith MRN 12345678", "CHEST for")]
    [InlineData("Smith^John", "")]
    [InlineData("LUNG 5mm 20200314", "LUNG 5mm")]
    [InlineData("Müller Thorax", "Thorax")]
    [InlineData("AXIAL\\St Mary Hospital", "AXIAL")]
    public void Clean_Text_KeepsOnlyVocabulary(string input, string expected) => Assert.Equal(expected, DescriptorCleaner.Clean(input));

    [Theory]
    [InlineData("PHIMARKER0001")]
    [InlineData("JD12345")]
    [InlineData("1234")]
    public void IsAllowed_IdentifierLikeTokens_AreRejected(string token) => Assert.False(DescriptorCleaner.IsAllowed(token));
}
