using System.Collections.Concurrent;
using System.Text.Json;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;

namespace CovidFunctions.TestHelpers;

/// <summary>
/// Counts what a <see cref="TableClient"/> asks of the Table service: the requests it sends (once per call, retries not
/// counted again), the entities the service returns (a query's rows, 1 per point read) and the text of each query.
/// Thread-safe: a store's concurrent reads are counted as they come.
/// </summary>
public sealed class TableRequestCounter : HttpPipelineSynchronousPolicy
{
    private int _requests;
    private long _rows;

    /// <summary>Requests sent since the start or the last <see cref="Reset"/>.</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Entities the Table service returned since the start or the last <see cref="Reset"/>.</summary>
    public long Rows => Interlocked.Read(ref _rows);

    /// <summary>The unescaped query string of each query sent (a GET with <c>$filter</c>), in the order sent.</summary>
    public ConcurrentQueue<string> Queries { get; } = new();

    /// <summary>A client of <paramref name="tableName"/> whose every request this counts.</summary>
    public TableClient Client(string connectionString, string tableName)
    {
        var options = new TableClientOptions();
        options.AddPolicy(this, HttpPipelinePosition.PerCall);
        return new TableClient(connectionString, tableName, options);
    }

    /// <summary>Starts counting again from zero.</summary>
    public void Reset()
    {
        Interlocked.Exchange(ref _requests, 0);
        Interlocked.Exchange(ref _rows, 0);
        Queries.Clear();
    }

    public override void OnSendingRequest(HttpMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        Interlocked.Increment(ref _requests);
        var query = Uri.UnescapeDataString(message.Request.Uri.Query);
        if (message.Request.Method == RequestMethod.Get && query.Contains("$filter", StringComparison.Ordinal))
        {
            Queries.Enqueue(query);
        }
    }

    public override void OnReceivedResponse(HttpMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.Request.Method != RequestMethod.Get || message.Response.Status != 200 || message.Response.ContentStream is not { CanSeek: true } body)
        {
            return;
        }

        // The response is buffered (seekable): read its rows and leave it where the client will read it from.
        var start = body.Position;
        using (var json = JsonDocument.Parse(body))
        {
            Interlocked.Add(ref _rows, json.RootElement.TryGetProperty("value", out var rows) ? rows.GetArrayLength() : 1);
        }

        body.Position = start;
    }
}
