namespace CovidFunctions.Inference;

/// <summary>Root of every error raised by <c>CovidFunctions.Inference</c>: a missing or corrupt model, a bad input
/// tensor (shape, non-finite values), or an ONNX Runtime failure. Messages carry shapes and file names, never pixels.</summary>
public class InferenceException : Exception
{
    public InferenceException()
    {
    }

    public InferenceException(string message)
        : base(message)
    {
    }

    public InferenceException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The model file concerned, when known.</summary>
    public string? ModelPath { get; init; }
}
