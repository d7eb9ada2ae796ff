using Microsoft.Extensions.Logging;

namespace CovidFunctions.Imaging;

/// <summary>
/// Source-generated log messages of the imaging library: event ids 5001–5099, a block no other assembly uses (they were
/// 4001–4006, in the block of covidfn's local host, 4010–4018; tests/Shared/LogEventIds.cs checks the blocks).
/// </summary>
internal static partial class ImagingLog
{
    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "{Input}: assembled {SliceCount} slices from {InputKind} input: {SelectionReason}")]
    public static partial void SeriesSelected(ILogger logger, string input, int sliceCount, string inputKind, string selectionReason);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "{Input}: series {Series} recorded, not screened: {Why}")]
    public static partial void SeriesNotChosen(ILogger logger, string input, string series, string why);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Information, Message = "{Input}: {SkippedCount} file(s) left out (listed in the assembly report)")]
    public static partial void SourcesSkipped(ILogger logger, string input, int skippedCount);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Debug, Message = "{Input}: left out {Source}")]
    public static partial void SourceSkipped(ILogger logger, string input, string source);

    [LoggerMessage(EventId = 5005, Level = LogLevel.Warning, Message = "{Input}: geometry {Kind}: {Detail}")]
    public static partial void GeometryIssueFound(ILogger logger, string input, string kind, string detail);

    [LoggerMessage(EventId = 5006, Level = LogLevel.Warning, Message = "{Input}: cannot be assembled ({Reason}): {Detail}")]
    public static partial void AssemblyRefused(ILogger logger, string input, string reason, string detail);
}
