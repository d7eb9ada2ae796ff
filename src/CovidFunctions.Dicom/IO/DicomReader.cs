namespace CovidFunctions.Dicom.IO;

/// <summary>Parses DICOM files and bare datasets.</summary>
internal static class DicomReader
{
    public static DicomFile ReadFile(Stream stream, DicomReadOptions options, string? sourceName, string? bulkPath) =>
        throw new NotImplementedException("reader lands in the next commit");
}
