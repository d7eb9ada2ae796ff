using Microsoft.Extensions.Logging;

namespace CovidFunctions.Inference;

/// <summary>Source-generated log messages of CovidFunctions.Inference (EventIds 3000–3999).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 3000, Level = LogLevel.Information, Message = "Inference session for {Model} created on {Provider} in {ElapsedMs} ms")]
    public static partial void SessionCreated(ILogger logger, string model, string provider, long elapsedMs);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "CUDA execution provider unavailable ({Reason}); using CPU")]
    public static partial void CudaUnavailable(ILogger logger, string reason);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Debug, Message = "Warm-up run of {Model} on {Provider} took {ElapsedMs} ms")]
    public static partial void WarmUp(ILogger logger, string model, string provider, long elapsedMs);
}
