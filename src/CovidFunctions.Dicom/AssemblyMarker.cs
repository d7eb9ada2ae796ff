namespace CovidFunctions.Dicom;
/// <summary>Marker type for the assembly.</summary>
internal static class AssemblyMarker
{
}
