using CovidFunctions.Pipeline.Ingest;

namespace CovidFunctions.FunctionApp.Functions;

/// <summary>
/// What an ingest function throws when ingest fails, instead of the original exception. The Functions host logs a
/// failed invocation's exception (its message and every inner exception's) at Error, whatever host.json sets for the
/// function's Information lines, and it cannot filter by content; an ingest exception can name the upload's files (a
/// storage error quoting the blob path, a temporary copy, a zip entry), and upload names can be patients' names. This
/// one names the study by its id and carries the original's type, masked message (<see cref="UploadNames.Mask"/>) and
/// stack frames (code locations only), with no inner exception. The trigger still sees a failure and retries.
/// </summary>
public sealed class IngestFailedException : Exception
{
    public IngestFailedException()
    {
    }

    public IngestFailedException(string message)
        : base(message)
    {
    }

    public IngestFailedException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The exception to throw for <paramref name="failure"/> of <paramref name="unit"/>'s ingest.</summary>
    public static IngestFailedException For(UploadUnit unit, Exception failure)
    {
        ArgumentNullException.ThrowIfNull(unit);
        ArgumentNullException.ThrowIfNull(failure);
        return new IngestFailedException(
            $"ingest of study {UploadNames.LoggableTenant(unit)}/{unit.StudyId} failed: {failure.GetType().FullName}: {UploadNames.Mask(failure.Message, unit)}"
            + (failure.StackTrace is { Length: > 0 } frames ? Environment.NewLine + frames : string.Empty));
    }
}
