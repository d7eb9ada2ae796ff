using Azure.Core;
using Azure.Identity;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Configuration;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Scorer;

/// <summary>Builds the scorer's web host: options, storage, transports, the worker and the health endpoints.</summary>
public static class ScorerApp
{
    /// <summary>
    /// The host the container runs. Configuration: appsettings.json, environment variables (<c>Scorer__*</c>,
    /// <c>ServiceBus__*</c> from bicep), command-line arguments; <paramref name="configure"/> lets tests add theirs.
    /// </summary>
    public static WebApplication Build(string[] args, Action<IConfigurationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        configure?.Invoke(builder.Configuration);
        // A misspelt Scorer__/Scoring__ key stops start-up naming it, instead of leaving the default silently.
        UnknownSettings.Reject(builder.Configuration.GetSection(ScorerOptions.SectionName), [], typeof(ScorerOptions));
        UnknownSettings.Reject(builder.Configuration.GetSection(ScoringOptions.SectionName), [], typeof(ScoringOptions));
        RejectInferenceSettings(builder.Configuration);
        RejectScoringDeliveryCount(builder.Configuration);
        var scorer = builder.Configuration.GetSection(ScorerOptions.SectionName).Get<ScorerOptions>() ?? new ScorerOptions();
        scorer.Validate();

        builder.Services.AddSingleton(Options.Create(scorer));
        // The handler's last-delivery shortcut must count the deliveries the consumer counts: one value, Scorer:MaxDeliveryCount.
        var scoring = (builder.Configuration.GetSection(ScoringOptions.SectionName).Get<ScoringOptions>() ?? new ScoringOptions()) with { MaxDeliveryCount = scorer.MaxDeliveryCount };
        scoring.Validate();
        builder.Services.AddSingleton(Options.Create(scoring));
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = scorer.DrainTimeout + TimeSpan.FromSeconds(15));
        builder.Services.AddSingleton<ScorerReadiness>();
        AddMessaging(builder.Services, builder.Configuration, scorer);
        builder.Services.AddHostedService<ScorerWorker>();

        builder.WebHost.ConfigureKestrel(k => k.ListenAnyIP(scorer.HealthPort));
        var app = builder.Build();
        app.MapGet("/healthz", () => Results.Text("alive"));
        app.MapGet("/readyz", (ScorerReadiness readiness) => readiness.IsReady
            ? Results.Json(new ReadinessView("ready", readiness.Provider, readiness.WarmUpSeconds, readiness.InFlight), ScorerJsonContext.Default.ReadinessView)
            : Results.Json(new ReadinessView(readiness.IsDraining ? "draining" : "warming-up", readiness.Provider, readiness.WarmUpSeconds, readiness.InFlight), ScorerJsonContext.Default.ReadinessView, statusCode: StatusCodes.Status503ServiceUnavailable));
        return app;
    }

    /// <summary>
    /// The scorer counts a chunk's deliveries with <c>Scorer__MaxDeliveryCount</c>, the consumer's count, and gives the
    /// handler that value: a <c>Scoring__MaxDeliveryCount</c> here would be replaced by it and change nothing, so
    /// start-up stops naming the setting that does.
    /// </summary>
    internal static void RejectScoringDeliveryCount(IConfiguration configuration) =>
        IgnoredSettings.Reject(
            configuration.GetSection(ScoringOptions.SectionName),
            [nameof(ScoringOptions.MaxDeliveryCount)],
            "the scorer",
            $"its deliveries per chunk are {IgnoredSettings.Name(configuration.GetSection(ScorerOptions.SectionName), nameof(ScorerOptions.MaxDeliveryCount))}, default 5; set that instead.");

    /// <summary>
    /// <c>Inference__*</c> is what covidfn's commands read (<c>up</c>, <c>screen</c>, <c>segment</c>, <c>classify</c>);
    /// the scorer's session settings are its own <c>Scorer__*</c> and <c>Scoring__BatchSize</c>. An <c>Inference__*</c>
    /// key here (copied from a local run) would change nothing, so start-up stops naming the scorer's settings instead.
    /// </summary>
    internal static void RejectInferenceSettings(IConfiguration configuration) =>
        IgnoredSettings.RejectSection(
            configuration.GetSection(Inference.InferenceOptions.SectionName),
            "the scorer",
            "it does not read Inference settings (covidfn's commands do). Its session settings are Scorer__ModelDirectory, Scorer__ExecutionProvider, Scorer__IntraOpThreads, Scorer__CpuMemArena, Scorer__RestrictLesionsToLungs and Scoring__BatchSize.");

    /// <summary>
    /// Runs the host until it stops and returns the process exit code: 1 when the scorer's worker failed (models
    /// missing, a consumer that cannot go on), else 0. The host stops, and its RunAsync returns normally, in both cases;
    /// without this a failed scorer exited 0, which reads as a clean stop.
    /// </summary>
    public static async Task<int> RunAsync(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);

        // Resolved before running: the host disposes its services when it stops.
        var workers = app.Services.GetServices<IHostedService>().OfType<ScorerWorker>().ToList();
        await app.RunAsync().ConfigureAwait(false);
        return workers.Any(w => w.ExecuteTask is { IsFaulted: true }) ? 1 : 0;
    }

    /// <summary>
    /// Storage (blobs, queues, the SliceResults table) from a connection string or identity-based endpoints, the
    /// chunk-request consumer (Service Bus or Storage queue) and the result sender routed to the configured queue.
    /// </summary>
    internal static void AddMessaging(IServiceCollection services, IConfiguration configuration, ScorerOptions scorer)
    {
        var serviceBusNamespace = configuration["ServiceBus:fullyQualifiedNamespace"];
        var sliceTransport = scorer.SliceTransport ?? (string.IsNullOrEmpty(serviceBusNamespace) ? MessageTransport.StorageQueue : MessageTransport.ServiceBus);
        TokenCredential credential = new DefaultAzureCredential();

        services.AddSingleton(_ => scorer.StorageConnectionString is { Length: > 0 } connection
            ? PipelineStorage.FromConnectionString(connection)
            : PipelineStorage.FromEndpoints(
                scorer.BlobServiceUri!,
                scorer.QueueServiceUri ?? throw new InvalidOperationException("Scorer:QueueServiceUri must be set with Scorer:BlobServiceUri"),
                scorer.TableServiceUri ?? new Uri(scorer.BlobServiceUri!.AbsoluteUri.Replace(".blob.", ".table.", StringComparison.Ordinal)),
                credential));
        services.AddSingleton<IBlobContainers>(sp => new RenamedContainers(
            sp.GetRequiredService<PipelineStorage>().BlobContainers,
            new Dictionary<string, string>(StringComparer.Ordinal)
            {
                [PipelineNames.SlicesContainer] = scorer.SliceContainer,
                [PipelineNames.ResultsContainer] = scorer.ResultContainer,
            }));
        services.AddSingleton(sp => scorer.StorageConnectionString is { Length: > 0 } || scorer.TableServiceUri is not null
            ? sp.GetRequiredService<PipelineStorage>().SliceResults
            : (ISliceResultStore)new SkippedSliceResultStore(sp.GetRequiredService<ILogger<SkippedSliceResultStore>>()));

        // The Studies row lets the scorer complete a chunk of a study that has already ended without scoring it
        // (ScoringHandler). Wherever the scorer has the tables: its identity may read Studies (Storage Table Data
        // Reader on that table, bicep/modules/storage.bicep); it never writes it.
        if (scorer.StorageConnectionString is { Length: > 0 } || scorer.TableServiceUri is not null)
        {
            services.AddSingleton(sp => sp.GetRequiredService<PipelineStorage>().Studies);
        }
        // Only with a connection string (Azurite) does the transport create a missing queue or container. With the
        // identity endpoints (Azure) bicep has created them, and the scorer's identity may only add messages to
        // slice-results (Storage Queue Data Message Sender): creating a queue, even one that exists, is refused (403),
        // so before every chunk result send failed there.
        services.AddSingleton(new Pipeline.Azure.Messaging.StorageQueueTransportOptions { CreateIfMissing = scorer.StorageConnectionString is { Length: > 0 } });
        services.AddSingleton(sp => sp.GetRequiredService<PipelineStorage>().CreateQueueTransport(
            sp.GetRequiredService<ILogger<Pipeline.Azure.Messaging.StorageQueueTransport>>(),
            sp.GetRequiredService<Pipeline.Azure.Messaging.StorageQueueTransportOptions>()));
        ScorerServiceBus.Add(services, serviceBusNamespace, credential, scorer, sliceTransport);
        services.AddSingleton<IMessageSender>(sp => new RoutedMessageSender(
            new Dictionary<string, QueueRoute>(StringComparer.Ordinal)
            {
                [PipelineNames.SliceResultsQueue] = new(scorer.ResultQueueName, scorer.ResultTransport == MessageTransport.ServiceBus
                    ? ScorerServiceBus.Sender(sp)
                    : sp.GetRequiredService<Pipeline.Azure.Messaging.StorageQueueTransport>()),
            },
            sp.GetRequiredService<Pipeline.Azure.Messaging.StorageQueueTransport>()));
        services.AddSingleton<IMessageConsumer>(sp => sliceTransport == MessageTransport.ServiceBus
            ? ScorerServiceBus.Consumer(sp)
            : sp.GetRequiredService<Pipeline.Azure.Messaging.StorageQueueTransport>());
    }

}

/// <summary>What /readyz answers.</summary>
public sealed record ReadinessView(string Status, string? Provider, double? WarmUpSeconds, int InFlight);

[System.Text.Json.Serialization.JsonSerializable(typeof(ReadinessView))]
[System.Text.Json.Serialization.JsonSourceGenerationOptions(System.Text.Json.JsonSerializerDefaults.Web)]
internal sealed partial class ScorerJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
