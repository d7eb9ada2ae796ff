using Grpc.Net.Client;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Microsoft.DurableTask.Worker;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Azure.Local;

/// <summary>
/// The worker/client side of <see cref="LocalDurableSidecar"/>: Microsoft.DurableTask's gRPC worker and client over a
/// channel to the sidecar. The worker runs the same class-based orchestrators and activities the Function app hosts.
/// <code>
/// await using var sidecar = await LocalDurableSidecar.StartAsync(new() { StorageConnectionString = azurite.ConnectionString }, loggerFactory, ct);
/// using var channel = sidecar.CreateChannel();
/// using var worker = LocalDurableWorker.BuildHost(channel, tasks => tasks.AddOrchestrator&lt;StudyOrchestrator&gt;().AddActivity&lt;…&gt;(), services => { /* handler dependencies */ });
/// await worker.StartAsync(ct);
/// var client = worker.Services.GetRequiredService&lt;DurableTaskClient&gt;();
/// …
/// await worker.StopAsync(ct);   // the worker first,
/// await sidecar.StopAsync(ct);  // then the sidecar
/// </code>
/// Or register into an existing host with <see cref="AddLocalDurableWorker"/> / <see cref="AddLocalDurableClient"/> (that
/// host must not be the sidecar's).
/// </summary>
public static class LocalDurableWorker
{
    /// <summary>Registers a Durable worker (with <paramref name="tasks"/>) connected through <paramref name="channel"/>.</summary>
    public static IServiceCollection AddLocalDurableWorker(this IServiceCollection services, GrpcChannel channel, Action<DurableTaskRegistry> tasks)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(channel);
        ArgumentNullException.ThrowIfNull(tasks);
        services.AddDurableTaskWorker(builder =>
        {
            builder.UseGrpc(channel);
            builder.AddTasks(tasks);
        });
        return services;
    }

    /// <summary>Registers a <see cref="DurableTaskClient"/> connected through <paramref name="channel"/> (resolve it from the provider).</summary>
    public static IServiceCollection AddLocalDurableClient(this IServiceCollection services, GrpcChannel channel)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(channel);
        services.AddDurableTaskClient(builder =>
        {
            builder.UseGrpc(channel);
            builder.RegisterDirectly();
        });
        return services;
    }

    /// <summary>
    /// A host with the worker and a client on <paramref name="channel"/>; <paramref name="configureServices"/> adds what the
    /// orchestrators and activities need. Start it after the sidecar and stop it before.
    /// </summary>
    public static IHost BuildHost(GrpcChannel channel, Action<DurableTaskRegistry> tasks, Action<IServiceCollection>? configureServices = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(channel);
        ArgumentNullException.ThrowIfNull(tasks);
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Logging.ClearProviders();
        if (loggerFactory is not null)
        {
            builder.Services.AddSingleton(loggerFactory);
        }

        configureServices?.Invoke(builder.Services);
        builder.Services.AddLocalDurableWorker(channel, tasks);
        builder.Services.AddLocalDurableClient(channel);
        return builder.Build();
    }
}
