using Azure.Core;
using Azure.Identity;
using Azure.Security.KeyVault.Secrets;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Azure.Webhooks;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CovidFunctions.FunctionApp;

/// <summary>The Function app's services: options, storage (PipelineStorage), transports, the key, the handlers.</summary>
public static class FunctionAppServices
{
    /// <summary>The vault webhook subscription secrets are written to (bicep: the webhook-secrets vault, where the app is Secrets Officer).</summary>
    public const string WebhookVaultUriSetting = "Webhooks:KeyVaultUri";

    /// <summary>The de-identification vault (read-only to the app in Azure); <see cref="DeidKeyProvider"/> reads it.</summary>
    public const string DeidVaultUriSetting = "KeyVault:VaultUri";

    public static IServiceCollection AddCovidFunctionsApp(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        // Every option section bound and validated now: a bad or misspelt setting stops start-up, naming it.
        var options = FunctionAppOptions.Load(configuration);
        var settings = options.Host;
        if (settings.ResultTransport != MessageTransport.StorageQueue)
        {
            // The relay is a Storage-queue trigger only (no Service Bus trigger in this app): results the scorer sent
            // over Service Bus would never reach an orchestration, and every study would fail after its chunk retries.
            throw new InvalidOperationException(
                $"Pipeline:ResultTransport is {settings.ResultTransport}, but this Function app relays chunk results only from the Storage queue '{PipelineNames.SliceResultsQueue}'. Deploy with resultTransport=StorageQueue.");
        }

        services.Configure<PipelineOptions>(configuration.GetSection(PipelineOptions.SectionName));
        services.AddSingleton(Options.Create(settings));
        services.AddSingleton(TimeProvider.System);
        TokenCredential credential = new DefaultAzureCredential();
        services.AddSingleton(credential);

        services.AddSingleton(_ => CreateStorage(configuration, credential));
        services.AddSingleton(sp => sp.GetRequiredService<PipelineStorage>().BlobContainers);
        services.AddSingleton(sp => sp.GetRequiredService<PipelineStorage>().Studies);
        services.AddSingleton(sp => sp.GetRequiredService<PipelineStorage>().SliceResults);
        services.AddSingleton(sp => sp.GetRequiredService<PipelineStorage>().Usage);
        services.AddSingleton(sp => sp.GetRequiredService<PipelineStorage>().UploadListing);
        services.AddSingleton(sp => sp.GetRequiredService<PipelineStorage>().CreateQueueTransport(sp.GetRequiredService<ILogger<StorageQueueTransport>>()));
        services.AddSingleton<IMessageSender>(sp => CreateSender(sp, configuration, settings, credential));
        services.AddSingleton(sp => new DeidentificationEngine(sp.GetRequiredService<DeidKey>()));

        // The Imaging section as checked above: IngestFunctions' handlers (ActivatorUtilities) take it for assembly and zips.
        services.AddSingleton(options.Assembly);

        // Study ids are keyed by a key derived from the de-identification key: a study id cannot be checked against
        // guessed upload names without it. Local hosts (covidfn up/submit/screen) derive theirs from their own key.
        services.AddSingleton(sp => StudyIdKey.From(sp.GetRequiredService<DeidKey>()));

        // The upload read list's names are keyed the same way (ingest derives it from its engine; AggregateStudy needs it).
        services.AddSingleton(sp => CovidFunctions.Pipeline.Ingest.UploadReadKey.From(sp.GetRequiredService<DeidKey>()));

        AddNotificationsAndApi(services, configuration, credential);
        services.AddSingleton<DeadLetterWriter>();

        // The hourly month close (MeteringFunctions; docs/api.md "Metering").
        services.AddSingleton(options.Metering);
        services.AddSingleton<UsageAutoClose>();
        services.AddSingleton<ResultRelayHandlerFactory>();

        // The study id index's one-time completion (a scan of the Studies table) runs in the background, not in a request.
        services.AddSingleton<StudyIdIndexCompletion>();
        services.AddHostedService<StudyIdIndexStartup>();

        // Loaded now, not when the first upload is ingested: a missing, malformed or unreadable key stops start-up
        // naming the setting (before, the app started and every ingest failed on it until the upload was quarantined).
        // Last, after the settings checks above, because it may create a local key file or read the vault.
        services.AddSingleton(DeidKeyProvider.Load(configuration, credential));
        return services;
    }

    /// <summary>
    /// Webhooks (the notifier the orchestration's notify activity and ingest call) and the results API. Subscriptions
    /// and deliveries live in the <c>WebhookSubscriptions</c>/<c>WebhookDeliveries</c> tables; subscription secrets in
    /// the Key Vault <see cref="CreateWebhookSecretStore"/> picks.
    /// The results API's callers come from the <c>ApiKeys</c> table (<see cref="StoredApiKeyAuthorizer"/>).
    /// </summary>
    private static void AddNotificationsAndApi(IServiceCollection services, IConfiguration configuration, TokenCredential credential)
    {
        var webhookOptions = configuration.GetSection(WebhookOptions.SectionName).Get<WebhookOptions>() ?? new WebhookOptions();

        // Fails start-up on a Webhooks:AllowedPorts that is no port list (the guard would throw on first use instead).
        _ = webhookOptions.ParseAllowedPorts();
        services.AddSingleton(webhookOptions);
        services.AddSingleton(sp => new WebhookStorage(sp.GetRequiredService<PipelineStorage>().Tables, sp.GetService<ILoggerFactory>()));
        services.AddSingleton(sp => sp.GetRequiredService<WebhookStorage>().Subscriptions);
        services.AddSingleton(sp => sp.GetRequiredService<WebhookStorage>().Deliveries);
        services.AddSingleton(sp => CreateWebhookSecretStore(configuration, credential, sp.GetService<TimeProvider>()));
        services.AddSingleton(sp => new WebhookTargetGuard(webhookOptions));
        services.AddSingleton<WebhookDispatcher>();
        services.AddSingleton<WebhookManager>();
        services.AddSingleton<IStudyNotifier, WebhookNotifier>();
        services.AddSingleton<WebhookRetryHandler>();

        // The SweepWebhookSecrets timer's: deletes secrets no subscription signs with, once an hour old.
        services.AddSingleton<WebhookSecretSweep>();
        services.AddSingleton<UsageQueries>();
        services.AddSingleton(new ResultsApiOptions { PublicBaseUrl = webhookOptions.PublicBaseUrl });

        // The webhook test endpoint's per-tenant limit counts in the RateLimits table, so it holds across every instance
        // the app scales out to (a per-process count would allow the limit once per instance).
        services.AddSingleton<IRateWindowStore>(sp => new TableRateWindowStore(sp.GetRequiredService<PipelineStorage>().Tables));
        services.AddSingleton<WebhookTestRateLimiter>();
        services.AddSingleton<ResultsApi>();

        // Tenant-bound X-Api-Key keys, stored as SHA-256 hashes in the ApiKeys table and minted by the operator through
        // the Admin-level /api/apikeys functions (ApiKeyFunctions). The function key alone no longer reaches any data.
        services.AddSingleton<IApiKeyStore>(sp => new TableApiKeyStore(sp.GetRequiredService<PipelineStorage>().Tables));
        services.TryAddSingleton<IApiKeyAuthorizer, StoredApiKeyAuthorizer>();
        services.AddSingleton(configuration.GetSection(ApiKeyOptions.SectionName).Get<ApiKeyOptions>() ?? new ApiKeyOptions());
        services.AddSingleton<ApiKeyAdmin>();
    }

    /// <summary>
    /// Where webhook subscription secrets are kept, first match wins: the vault <c>Webhooks:KeyVaultUri</c> (bicep sets
    /// it to the webhook-secrets vault, the only vault the app identity may write); else <c>KeyVault:VaultUri</c>, as
    /// before the vaults were split (a single vault where the identity must then be Secrets Officer); else process
    /// memory, for local runs only (secrets are lost on restart), dated by <paramref name="time"/> (the app's clock; the
    /// orphan sweep judges a secret's age by it, as it does by Key Vault's <c>created</c>).
    /// </summary>
    public static IWebhookSecretStore CreateWebhookSecretStore(IConfiguration configuration, TokenCredential credential, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var vault = configuration[WebhookVaultUriSetting] is { Length: > 0 } webhookVault ? webhookVault : configuration[DeidVaultUriSetting];
        return string.IsNullOrEmpty(vault)
            ? new InMemoryWebhookSecretStore(time)
            : new KeyVaultWebhookSecretStore(new SecretClient(new Uri(vault), credential));
    }

    /// <summary>
    /// Pipeline storage on the same account as the Functions host: a connection string (<c>AzureWebJobsStorage</c>,
    /// Azurite locally) or the identity-based <c>AzureWebJobsStorage__accountName</c> that bicep sets.
    /// </summary>
    public static PipelineStorage CreateStorage(IConfiguration configuration, TokenCredential credential)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        if (configuration[FunctionAppSettings.StorageConnection] is { Length: > 0 } connectionString)
        {
            return PipelineStorage.FromConnectionString(connectionString);
        }

        var section = configuration.GetSection(FunctionAppSettings.StorageConnection);
        if (section["blobServiceUri"] is { Length: > 0 } blob && section["queueServiceUri"] is { Length: > 0 } queue && section["tableServiceUri"] is { Length: > 0 } table)
        {
            return PipelineStorage.FromEndpoints(new Uri(blob), new Uri(queue), new Uri(table), credential);
        }

        if (section["accountName"] is { Length: > 0 } accountName)
        {
            return PipelineStorage.FromAccountName(accountName, credential);
        }

        throw new InvalidOperationException("Set AzureWebJobsStorage (a connection string) or AzureWebJobsStorage__accountName (identity-based).");
    }

    /// <summary>Chunk requests to the configured queue and transport; everything else to the Storage queues.</summary>
    private static RoutedMessageSender CreateSender(IServiceProvider services, IConfiguration configuration, FunctionAppSettings settings, TokenCredential credential)
    {
        var storageQueues = services.GetRequiredService<StorageQueueTransport>();
        var serviceBusNamespace = configuration[$"{FunctionAppSettings.ServiceBusSection}:fullyQualifiedNamespace"];
        var transport = settings.Transport ?? (string.IsNullOrEmpty(serviceBusNamespace) ? MessageTransport.StorageQueue : MessageTransport.ServiceBus);
        IMessageSender requests = transport == MessageTransport.ServiceBus
            ? FunctionAppServiceBus.CreateSender(services, serviceBusNamespace ?? throw new InvalidOperationException("Pipeline:Transport is ServiceBus but ServiceBus:fullyQualifiedNamespace is not set."), credential)
            : storageQueues;
        return new RoutedMessageSender(
            new Dictionary<string, QueueRoute>(StringComparer.Ordinal) { [PipelineNames.SliceRequestsQueue] = new(settings.SliceQueueName, requests) },
            storageQueues);
    }
}
