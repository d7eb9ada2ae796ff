using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Tests;

/// <summary>
/// A logger that keeps each entry's level and formatted text, for tests that assert what a log line names and what it
/// must not (upload names, secrets). Thread-safe: handlers log from pool threads.
/// </summary>
internal class RecordingLogger : ILogger
{
    public ConcurrentQueue<(LogLevel Level, string Text)> Messages { get; } = new();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        Messages.Enqueue((logLevel, formatter(state, exception)));
    }
}

/// <summary>A <see cref="RecordingLogger"/> for a type's <see cref="ILogger{T}"/>.</summary>
internal sealed class RecordingLogger<T> : RecordingLogger, ILogger<T>;
