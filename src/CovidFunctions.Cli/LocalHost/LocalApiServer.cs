using System.Net;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Azure.Webhooks;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Cli.LocalHost;

/// <summary>Settings of the results API that <c>covidfn up</c> serves on loopback.</summary>
public sealed record LocalApiServerOptions
{
    /// <summary>The data folder (API keys, webhook secrets, the marker files below).</summary>
    public required string DataDir { get; init; }

    /// <summary>The port on 127.0.0.1 (7071, the Functions host's, by default; 0 picks a free one).</summary>
    public int Port { get; init; } = 7071;

    /// <summary><c>covidfn up --allow-loopback-webhooks</c>: http://127.0.0.1 webhook targets are allowed (local testing only).</summary>
    public bool AllowLoopbackWebhooks { get; init; }
}

/// <summary>
/// The webhook parts of the local host on its storage: subscriptions and deliveries in Azurite's tables, secrets in a
/// 0600 file under the data folder. <c>covidfn up</c> and <c>covidfn webhooks</c> build the same one, so a
/// subscription added from the CLI is the one <c>up</c> delivers to.
/// </summary>
public sealed class LocalWebhooks : IDisposable
{
    /// <summary>Present in the data folder while a <c>covidfn up --allow-loopback-webhooks</c> runs (or ran last).</summary>
    public const string AllowLoopbackMarker = "webhooks.allow-loopback";

    public LocalWebhooks(string dataDir, TableServiceClient tables, IStudyStore studies, bool allowLoopback, Uri? publicBaseUrl, ILoggerFactory? loggerFactory = null)
    {
        loggerFactory ??= NullLoggerFactory.Instance;
        Options = new WebhookOptions { AllowLoopbackWebhooks = allowLoopback, PublicBaseUrl = publicBaseUrl };
        Storage = new WebhookStorage(tables, loggerFactory);
        Secrets = new FileWebhookSecretStore(dataDir);
        Guard = new WebhookTargetGuard(Options);
        Dispatcher = new WebhookDispatcher(Guard, Storage.Deliveries, Options, TimeProvider.System, loggerFactory.CreateLogger<WebhookDispatcher>());
        Manager = new WebhookManager(Storage.Subscriptions, Secrets, Storage.Deliveries, Guard, Dispatcher, Options, TimeProvider.System);
        Notifier = new WebhookNotifier(studies, Storage.Subscriptions, Secrets, Storage.Deliveries, Dispatcher, Options, TimeProvider.System, loggerFactory.CreateLogger<WebhookNotifier>());
        Retries = new WebhookRetryHandler(Storage.Deliveries, Storage.Subscriptions, Secrets, Dispatcher, Options, TimeProvider.System, loggerFactory.CreateLogger<WebhookRetryHandler>(), studies);
    }

    public WebhookOptions Options { get; }

    public WebhookStorage Storage { get; }

    public FileWebhookSecretStore Secrets { get; }

    public WebhookTargetGuard Guard { get; }

    public WebhookDispatcher Dispatcher { get; }

    public WebhookManager Manager { get; }

    /// <summary>The <see cref="IStudyNotifier"/> the orchestrator's notify activity calls.</summary>
    public WebhookNotifier Notifier { get; }

    /// <summary>Makes the due retries of deliveries whose first attempt failed (the host runs it in a loop).</summary>
    public WebhookRetryHandler Retries { get; }

    /// <summary>Whether the data folder says loopback webhooks are allowed (the last <c>up</c> was started with the flag).</summary>
    public static bool LoopbackAllowedIn(string dataDir) => File.Exists(Path.Combine(dataDir, AllowLoopbackMarker));

    public void Dispose() => Dispatcher.Dispose();
}

/// <summary>
/// The results API of <c>covidfn up</c>: Kestrel on 127.0.0.1 serving the same routes as the Function app
/// (<see cref="ResultsApiEndpoints"/>), authorized by the local API keys in the data folder (header <c>X-Api-Key</c>;
/// the operator key sees every tenant, tenant-bound keys only theirs). Writes <c>api.url</c> to the data folder and
/// records the loopback-webhook allowance for <c>covidfn webhooks</c>.
/// </summary>
public sealed class LocalApiServer : IAsyncDisposable
{
    /// <summary>The file in the data folder holding the API's base URL while <c>up</c> runs.</summary>
    public const string UrlFileName = "api.url";

    private readonly WebApplication _app;

    private readonly bool _ownsWebhooks;

    private LocalApiServer(WebApplication app, Uri baseUrl, string operatorKey, LocalApiKeys keys, LocalWebhooks webhooks, bool ownsWebhooks)
    {
        _ownsWebhooks = ownsWebhooks;
        _app = app;
        BaseUrl = baseUrl;
        OperatorKey = operatorKey;
        Keys = keys;
        Webhooks = webhooks;
    }

    public Uri BaseUrl { get; }

    /// <summary>The key that sees every tenant (also in <c>api-keys.json</c> under the data folder).</summary>
    public string OperatorKey { get; }

    public LocalApiKeys Keys { get; }

    /// <summary>The webhook parts; <see cref="LocalWebhooks.Notifier"/> is the notifier the orchestrator should use.</summary>
    public LocalWebhooks Webhooks { get; }

    /// <summary>
    /// Starts the server. Pass <paramref name="webhooks"/> to share the notifier the pipeline already uses (built with
    /// <see cref="LocalWebhooks"/> and <see cref="BaseUrlFor"/>); the server then leaves disposing it to the caller.
    /// </summary>
    public static async Task<LocalApiServer> StartAsync(LocalApiServerOptions options, PipelineStorage storage, ILoggerFactory? loggerFactory, CancellationToken cancellationToken, LocalWebhooks? webhooks = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(storage);
        var dataDir = Path.GetFullPath(options.DataDir);
        Directory.CreateDirectory(dataDir);
        var marker = Path.Combine(dataDir, LocalWebhooks.AllowLoopbackMarker);
        if (options.AllowLoopbackWebhooks)
        {
            await File.WriteAllTextAsync(marker, "set by covidfn up --allow-loopback-webhooks\n", cancellationToken).ConfigureAwait(false);
        }
        else if (File.Exists(marker))
        {
            File.Delete(marker);
        }

        var keys = new LocalApiKeys(dataDir);
        var operatorKey = await keys.GetOrCreateOperatorKeyAsync(cancellationToken).ConfigureAwait(false);

        // The base URL goes into payload links and the report, so the port is fixed before the services are built.
        var port = options.Port == 0 ? FreePort() : options.Port;
        var baseUrl = BaseUrlFor(port);
        var ownsWebhooks = webhooks is null;
        webhooks ??= new LocalWebhooks(dataDir, storage.Tables, storage.Studies, options.AllowLoopbackWebhooks, baseUrl, loggerFactory);
        await webhooks.Storage.EnsureCreatedAsync(cancellationToken).ConfigureAwait(false);
        var api = new ResultsApi(storage.Studies, storage.BlobContainers, new UsageQueries(storage.Usage, storage.Studies), webhooks.Manager, new ResultsApiOptions { PublicBaseUrl = baseUrl }, logger: (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<ResultsApi>());

        // Kestrel on 127.0.0.1 only, with nothing taken from the ambient ASP.NET configuration (see BuildLoopbackHost).
        var app = ResultsApiEndpoints.BuildLoopbackHost(api, keys, port);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            if (ownsWebhooks)
            {
                webhooks.Dispose();
            }

            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        await File.WriteAllTextAsync(Path.Combine(dataDir, UrlFileName), baseUrl + "\n", cancellationToken).ConfigureAwait(false);
        return new LocalApiServer(app, baseUrl, operatorKey, keys, webhooks, ownsWebhooks);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        if (_ownsWebhooks)
        {
            Webhooks.Dispose();
        }
    }

    /// <summary>The base URL the server has on <paramref name="port"/> (links in payloads and reports use it).</summary>
    public static Uri BaseUrlFor(int port) => new($"http://127.0.0.1:{port}");

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
