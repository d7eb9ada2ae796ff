using Azure.Core;
using Azure.Data.Tables;
using Azure.Identity;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Azure.Storage;

/// <summary>
/// The pipeline's Storage clients and the contract implementations over them, built once per process.
/// <list type="bullet">
/// <item>Locally (Azurite): <c>PipelineStorage.FromConnectionString(azurite.ConnectionString)</c>.</item>
/// <item>In Azure (identity-based, no keys): <c>PipelineStorage.FromAccountName("stcovid", new DefaultAzureCredential())</c>
/// or <see cref="FromEndpoints"/>; with no credential, <see cref="DefaultAzureCredential"/> (managed identity in Azure).</item>
/// </list>
/// Call <see cref="EnsureCreatedAsync"/> once at start: it creates every container, queue and table in
/// <see cref="PipelineNames"/> (Bicep creates them in Azure; creating again is a no-op).
/// Against a loopback endpoint (Azurite) the clients pin service versions Azurite 3.37 accepts, so they also work with an
/// Azurite started without <c>--skipApiVersionCheck</c>.
/// </summary>
public sealed class PipelineStorage
{
    private PipelineStorage(BlobServiceClient blobs, QueueServiceClient queues, TableServiceClient tables)
    {
        Blobs = blobs;
        Queues = queues;
        Tables = tables;
        BlobContainers = new AzureBlobContainers(blobs);
        UploadListing = new AzureUploadListing(blobs.GetBlobContainerClient(PipelineNames.UploadsContainer));
        Studies = new TableStudyStore(tables.GetTableClient(PipelineNames.StudiesTable));
        SliceResults = new TableSliceResultStore(tables.GetTableClient(PipelineNames.SliceResultsTable));
        Usage = new TableUsageStore(tables.GetTableClient(PipelineNames.UsageTable));
    }

    public BlobServiceClient Blobs { get; }

    /// <summary>Queue clients; messages are Base64-encoded (the Azure Functions queue trigger's default encoding).</summary>
    public QueueServiceClient Queues { get; }

    public TableServiceClient Tables { get; }

    public IBlobContainers BlobContainers { get; }

    /// <summary>The <c>ct-uploads</c> listing for the local blob watcher.</summary>
    public IUploadListing UploadListing { get; }

    public IStudyStore Studies { get; }

    public ISliceResultStore SliceResults { get; }

    public IUsageStore Usage { get; }

    /// <summary>Clients from a Storage connection string (Azurite's, or <c>UseDevelopmentStorage=true</c>).</summary>
    public static PipelineStorage FromConnectionString(string connectionString)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        var loopback = IsLoopbackConnectionString(connectionString);
        return new PipelineStorage(
            new BlobServiceClient(connectionString, CreateBlobOptions(loopback)),
            new QueueServiceClient(connectionString, CreateQueueOptions(loopback)),
            new TableServiceClient(connectionString, new TableClientOptions()));
    }

    /// <summary>Identity-based clients on explicit service endpoints (no keys).</summary>
    public static PipelineStorage FromEndpoints(Uri blobEndpoint, Uri queueEndpoint, Uri tableEndpoint, TokenCredential credential)
    {
        ArgumentNullException.ThrowIfNull(blobEndpoint);
        ArgumentNullException.ThrowIfNull(queueEndpoint);
        ArgumentNullException.ThrowIfNull(tableEndpoint);
        ArgumentNullException.ThrowIfNull(credential);
        return new PipelineStorage(
            new BlobServiceClient(blobEndpoint, credential, CreateBlobOptions(blobEndpoint.IsLoopback)),
            new QueueServiceClient(queueEndpoint, credential, CreateQueueOptions(queueEndpoint.IsLoopback)),
            new TableServiceClient(tableEndpoint, credential, new TableClientOptions()));
    }

    /// <summary>Identity-based clients on the public-cloud endpoints of <paramref name="accountName"/>; <see cref="DefaultAzureCredential"/> when no credential is given.</summary>
    public static PipelineStorage FromAccountName(string accountName, TokenCredential? credential = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(accountName);
        return FromEndpoints(
            new Uri($"https://{accountName}.blob.core.windows.net"),
            new Uri($"https://{accountName}.queue.core.windows.net"),
            new Uri($"https://{accountName}.table.core.windows.net"),
            credential ?? new DefaultAzureCredential());
    }

    /// <summary>
    /// Blob client options: for a loopback endpoint (Azurite) the newest service version Azurite 3.37 accepts
    /// (the SDK's default, 2026-10-06, is refused unless Azurite runs with <c>--skipApiVersionCheck</c>).
    /// </summary>
    public static BlobClientOptions CreateBlobOptions(bool loopback) =>
        loopback ? new BlobClientOptions(BlobClientOptions.ServiceVersion.V2026_06_06) : new BlobClientOptions();

    /// <summary>Queue client options (Base64 messages; a service version Azurite accepts on loopback).</summary>
    public static QueueClientOptions CreateQueueOptions(bool loopback)
    {
        var options = loopback ? new QueueClientOptions(QueueClientOptions.ServiceVersion.V2026_06_06) : new QueueClientOptions();
        options.MessageEncoding = QueueMessageEncoding.Base64;
        return options;
    }

    /// <summary>True when the connection string targets the development storage or a loopback endpoint (Azurite).</summary>
    public static bool IsLoopbackConnectionString(string connectionString)
    {
        ArgumentNullException.ThrowIfNull(connectionString);
        if (connectionString.Contains("UseDevelopmentStorage=true", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        foreach (var part in connectionString.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0 && part[..eq].Trim().EndsWith("Endpoint", StringComparison.OrdinalIgnoreCase)
                && Uri.TryCreate(part[(eq + 1)..].Trim(), UriKind.Absolute, out var uri) && uri.IsLoopback)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Creates every container, queue and table the pipeline uses (idempotent).</summary>
    public async Task EnsureCreatedAsync(CancellationToken cancellationToken)
    {
        foreach (var container in PipelineNames.Containers)
        {
            await Blobs.GetBlobContainerClient(container).CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        foreach (var queue in PipelineNames.Queues)
        {
            await Queues.GetQueueClient(queue).CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        foreach (var table in PipelineNames.Tables)
        {
            await Tables.GetTableClient(table).CreateIfNotExistsAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A <see cref="Messaging.StorageQueueTransport"/> on these queues, dead-lettering into the <c>dead-letters</c> container.</summary>
    public Messaging.StorageQueueTransport CreateQueueTransport(Microsoft.Extensions.Logging.ILogger? logger = null, Messaging.StorageQueueTransportOptions? options = null) =>
        new(Queues, Blobs.GetBlobContainerClient(PipelineNames.DeadLetterContainer), logger, options);
}
