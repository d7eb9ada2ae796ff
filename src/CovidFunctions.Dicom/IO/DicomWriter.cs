namespace CovidFunctions.Dicom.IO;

/// <summary>Writes DICOM files.</summary>
internal static class DicomWriter
{
    public static void WriteFile(DicomFile file, Stream stream, DicomWriteOptions options) =>
        throw new NotImplementedException("writer lands in the next commit");
}
