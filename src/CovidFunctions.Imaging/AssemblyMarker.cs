namespace CovidFunctions.Imaging;
/// <summary>Marker type for the assembly.</summary>
internal static class AssemblyMarker
{
}
