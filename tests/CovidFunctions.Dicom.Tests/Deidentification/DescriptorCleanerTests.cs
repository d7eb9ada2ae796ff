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

    // An identifier written as small numbers (MRN, phone, date of birth) is dropped as a run; a lone number stays.
    [InlineData("CHEST 987 654 321", "CHEST")]
    [InlineData("CT 12 03 1965 CHEST 5mm", "CT CHEST 5mm")]
    [InlineData("555_867_5309", "")]
    [InlineData("(555) 867 5309 LUNG 1.25", "LUNG 1.25")]
    [InlineData("120 kV 300 mAs", "120 300")]
    public void Clean_Text_KeepsOnlyVocabulary(string input, string expected) => Assert.Equal(expected, DescriptorCleaner.Clean(input));

    [Theory]
    [InlineData("PHIMARKER0001")]
    [InlineData("JD12345")]
    [InlineData("1234")]
    public void IsAllowed_IdentifierLikeTokens_AreRejected(string token) => Assert.False(DescriptorCleaner.IsAllowed(token));
}
