namespace CovidFunctions.Inference;
/// <summary>Marker type for the assembly.</summary>
internal static class AssemblyMarker
{
}
