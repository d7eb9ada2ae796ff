using System.Globalization;
using System.Text.Json;

namespace CovidFunctions.Pipeline.Api;

/// <summary>
/// Reads the JSON bodies of the API's write routes (<c>POST /api/webhooks</c>, <c>POST /api/apikeys</c>) with a size
/// limit: the servers' own limits are tens of megabytes, and a body is otherwise read whole and its strings (a webhook
/// secret, a tenant list) stored as given.
/// </summary>
public static class ApiRequestBody
{
    /// <summary>The most bytes a request body may have: far above any real subscription or mint (a few hundred bytes).</summary>
    public const int MaxBytes = 64 * 1024;

    /// <summary>
    /// The body deserialized, or the error to answer instead: 413 when it is larger than <see cref="MaxBytes"/>, 400
    /// when it is not valid JSON of <typeparamref name="T"/> (the message names the position, not .NET types).
    /// </summary>
    public static Task<(T? Value, ApiResponse? Error)> ReadJsonAsync<T>(Stream body, CancellationToken cancellationToken) =>
        ReadJsonAsync<T>(body, allowEmpty: false, cancellationToken);

    /// <summary><see cref="ReadJsonAsync{T}(Stream, CancellationToken)"/>, but an empty (or all-whitespace) body reads as null
    /// instead of a 400: for routes whose body only overrides defaults.</summary>
    public static Task<(T? Value, ApiResponse? Error)> ReadOptionalJsonAsync<T>(Stream body, CancellationToken cancellationToken) =>
        ReadJsonAsync<T>(body, allowEmpty: true, cancellationToken);

    private static async Task<(T? Value, ApiResponse? Error)> ReadJsonAsync<T>(Stream body, bool allowEmpty, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await body.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > MaxBytes)
            {
                return (default, ApiResponse.Error(413, $"request body is larger than {MaxBytes.ToString(CultureInfo.InvariantCulture)} bytes"));
            }

            buffer.Write(chunk, 0, read);
        }

        var bytes = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
        if (allowEmpty && bytes.Trim(" \t\r\n"u8).IsEmpty)
        {
            return (default, null);
        }

        try
        {
            return (JsonSerializer.Deserialize<T>(bytes, ApiJson.Options), null);
        }
        catch (JsonException ex)
        {
            return (default, ApiResponse.Error(400, InvalidJsonMessage(ex)));
        }
    }

    /// <summary>
    /// What is wrong with a body, without <see cref="JsonException.Message"/>: that names the .NET type it was read
    /// into ("could not be converted to CovidFunctions.Pipeline.Api.…").
    /// </summary>
    public static string InvalidJsonMessage(JsonException ex)
    {
        ArgumentNullException.ThrowIfNull(ex);
        var where = ex.Path is { Length: > 0 } path ? $" at {path}" : "";
        var line = ex.LineNumber is { } l ? string.Create(CultureInfo.InvariantCulture, $" (line {l + 1}, byte {ex.BytePositionInLine + 1})") : "";
        return $"request body is not valid JSON of the expected shape{where}{line}";
    }
}
