using System.Net;
using System.Net.Sockets;
using Azure.Data.Tables;
using Azure.Storage.Queues;
using CovidFunctions.Pipeline.Azure.Storage;
using DurableTask.AzureStorage;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.DurableTask.Testing.Sidecar.Grpc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using CoreOrchestrationService = DurableTask.Core.IOrchestrationService;
using CoreOrchestrationServiceClient = DurableTask.Core.IOrchestrationServiceClient;

namespace CovidFunctions.Pipeline.Azure.Local;

/// <summary>How to start <see cref="LocalDurableSidecar"/>.</summary>
public sealed record LocalDurableSidecarOptions
{
    /// <summary>The Storage account of the task hub (Azurite's <see cref="AzuriteServer.ConnectionString"/>).</summary>
    public required string StorageConnectionString { get; init; }

    /// <summary>The gRPC port on 127.0.0.1; 0 picks a free one.</summary>
    public int Port { get; init; }

    public string TaskHubName { get; init; } = PipelineNames.TaskHubName;

    /// <summary>
    /// How long a dequeued activity stays invisible. A worker that crashes mid-activity has it back after this long, so
    /// keep it short locally; but every activity must finish within it (the sidecar does not renew activity locks).
    /// </summary>
    public TimeSpan WorkItemQueueVisibilityTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The same for orchestration (control-queue) messages.</summary>
    public TimeSpan ControlQueueVisibilityTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The longest idle poll backoff (the DurableTask default, 30 s, makes a local run feel stuck).</summary>
    public TimeSpan MaxQueuePollingInterval { get; init; } = TimeSpan.FromSeconds(1);

    public int MaxConcurrentActivities { get; init; } = 4;

    public int MaxConcurrentOrchestrations { get; init; } = 4;
}

/// <summary>
/// The local Durable backend for <c>covidfn up</c> and the integration tests: an in-process ASP.NET Core host serving the
/// Durable Task sidecar gRPC API (Kestrel, HTTP/2 only, on 127.0.0.1) over
/// <see cref="AzureStorageOrchestrationService"/> on Azurite, so orchestrations survive process and Azurite restarts just
/// as in Durable Functions. The orchestrator classes run in a separate worker host that connects through
/// <see cref="CreateChannel"/> (see <see cref="LocalDurableWorker"/>).
/// <para>
/// Order: start Azurite, then this sidecar, then the worker host; stop the worker host first, then this (a worker still
/// connected makes the sidecar's shutdown hang). One worker connection per sidecar.
/// </para>
/// <para>
/// The gRPC server class comes from the preview package Microsoft.DurableTask.InProcessTestHost
/// (<c>Microsoft.DurableTask.Testing.Sidecar.Grpc.TaskHubGrpcServer</c>); it is used only here. Known limits of it: no
/// entity RPCs, scheduled start times ignored, activity locks never renewed (keep activities shorter than
/// <see cref="LocalDurableSidecarOptions.WorkItemQueueVisibilityTimeout"/>), completion waits poll every 2 s.
/// </para>
/// </summary>
public sealed partial class LocalDurableSidecar : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly AzureStorageOrchestrationService _service;
    private readonly ISidecarOrchestrationService _stopOnce;
    private readonly ILogger _logger;
    private bool _stopped;

    private LocalDurableSidecar(WebApplication app, AzureStorageOrchestrationService service, ISidecarOrchestrationService stopOnce, int port, ILogger logger)
    {
        _app = app;
        _service = service;
        _stopOnce = stopOnce;
        Port = port;
        _logger = logger;
    }

    public int Port { get; }

    /// <summary><c>http://127.0.0.1:{port}</c>.</summary>
    public Uri Address => new($"http://127.0.0.1:{Port}");

    /// <summary>The orchestration service (for diagnostics and tests).</summary>
    public CoreOrchestrationService OrchestrationService => _service;

    /// <summary>Creates the task hub in storage if needed, then starts serving.</summary>
    public static async Task<LocalDurableSidecar> StartAsync(LocalDurableSidecarOptions options, ILoggerFactory? loggerFactory, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.StorageConnectionString);
        loggerFactory ??= NullLoggerFactory.Instance;
        var logger = loggerFactory.CreateLogger<LocalDurableSidecar>();
        var port = options.Port != 0 ? options.Port : FreePort();

        var service = new AzureStorageOrchestrationService(CreateSettings(options, loggerFactory));
        await service.CreateIfNotExistsAsync().WaitAsync(cancellationToken).ConfigureAwait(false);

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(loggerFactory);
        builder.WebHost.ConfigureKestrel(kestrel =>
            kestrel.Listen(IPAddress.Loopback, port, listen => listen.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        var stopOnce = StopOnceOrchestrationService.Create(service, logger);
        builder.Services.AddSingleton<CoreOrchestrationService>(stopOnce);
        builder.Services.AddSingleton<CoreOrchestrationServiceClient>(stopOnce);
        builder.Services.AddSingleton<TaskHubGrpcServer>();
        var app = builder.Build();
        app.MapGrpcService<TaskHubGrpcServer>();
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        LogStarted(logger, port, options.TaskHubName);
        return new LocalDurableSidecar(app, service, stopOnce, port, logger);
    }

    /// <summary>The task hub settings on the given storage (pinned service versions when it is Azurite).</summary>
    internal static AzureStorageOrchestrationServiceSettings CreateSettings(LocalDurableSidecarOptions options, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        var connectionString = options.StorageConnectionString;
        var loopback = PipelineStorage.IsLoopbackConnectionString(connectionString);
        // Durable's own message encoding is left to its settings: only the service version is pinned here.
        var queueOptions = loopback
            ? new QueueClientOptions(QueueClientOptions.ServiceVersion.V2026_06_06)
            : new QueueClientOptions();
        return new AzureStorageOrchestrationServiceSettings
        {
            TaskHubName = options.TaskHubName,
            StorageAccountClientProvider = new StorageAccountClientProvider(
                StorageServiceClientProvider.ForBlob(connectionString, PipelineStorage.CreateBlobOptions(loopback)),
                StorageServiceClientProvider.ForQueue(connectionString, queueOptions),
                StorageServiceClientProvider.ForTable(connectionString, new TableClientOptions())),
            WorkItemQueueVisibilityTimeout = options.WorkItemQueueVisibilityTimeout,
            ControlQueueVisibilityTimeout = options.ControlQueueVisibilityTimeout,
            MaxQueuePollingInterval = options.MaxQueuePollingInterval,
            MaxConcurrentTaskActivityWorkItems = options.MaxConcurrentActivities,
            MaxConcurrentTaskOrchestrationWorkItems = options.MaxConcurrentOrchestrations,
            LoggerFactory = loggerFactory,
        };
    }

    /// <summary>A gRPC channel to this sidecar for <see cref="LocalDurableWorker"/> (the caller disposes it after the worker host stops).</summary>
    public GrpcChannel CreateChannel() => GrpcChannel.ForAddress(Address);

    /// <summary>Stops serving and the orchestration service. Stop the worker host before this.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        await _app.StopAsync(cancellationToken).ConfigureAwait(false);

        // The gRPC server also stops the service when the host stops, but without waiting; this waits for that same
        // stop (StopOnceOrchestrationService), so the partition leases are released before the process ends.
        await _stopOnce.StopAsync().ConfigureAwait(false);
        LogStopped(_logger, Port);
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await StopAsync(timeout.Token).ConfigureAwait(false);
        }
        finally
        {
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Durable sidecar serving task hub {TaskHub} on 127.0.0.1:{Port}")]
    private static partial void LogStarted(ILogger logger, int port, string taskHub);

    [LoggerMessage(Level = LogLevel.Information, Message = "Durable sidecar on port {Port} stopped")]
    private static partial void LogStopped(ILogger logger, int port);
}
