using System.Reflection;
using System.Runtime.ExceptionServices;
using DurableTask.Core;
using DurableTask.Core.Query;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Azure.Local;

/// <summary>The orchestration service surfaces the sidecar's gRPC server uses (it casts to the query and purge clients).</summary>
public interface ISidecarOrchestrationService : IOrchestrationService, IOrchestrationServiceClient, IOrchestrationServiceQueryClient, IOrchestrationServicePurgeClient
{
}

/// <summary>
/// Wraps the Azure Storage orchestration service for <see cref="LocalDurableSidecar"/> so that it is stopped once:
/// every <c>StopAsync</c> after the first returns the first one's task. Why: the gRPC server stops the service from its
/// ApplicationStopping callback without awaiting it, and the sidecar stops it again to wait for the leases to be
/// released. Two concurrent <c>AzureStorageOrchestrationService.StopAsync</c> calls can race in its AppLeaseManager: a
/// NullReferenceException from it, thrown on the server's unobserved path, ended the whole test process (once in three runs of the
/// webhook end-to-end tests; the concurrent stop is the likely cause). A service that was never started (no worker
/// connected) throws the same exception. Whatever the one stop throws is logged and swallowed. Every other member is
/// forwarded unchanged.
/// </summary>
public class StopOnceOrchestrationService : DispatchProxy
{
    private readonly Lock _gate = new();
    private IOrchestrationService _inner = null!;
    private ILogger _logger = null!;
    private Task? _stop;

    /// <summary>
    /// The wrapper over <paramref name="service"/>, which must implement the four interfaces of
    /// <see cref="ISidecarOrchestrationService"/> itself (AzureStorageOrchestrationService does).
    /// </summary>
    public static ISidecarOrchestrationService Create(IOrchestrationService service, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(service);
        ArgumentNullException.ThrowIfNull(logger);
        if (service is not (IOrchestrationServiceClient and IOrchestrationServiceQueryClient and IOrchestrationServicePurgeClient))
        {
            throw new ArgumentException($"{service.GetType().Name} is not also an orchestration client with queries and purge.", nameof(service));
        }

        var proxy = Create<ISidecarOrchestrationService, StopOnceOrchestrationService>();
        var self = (StopOnceOrchestrationService)(object)proxy;

        // Members are declared on the four base interfaces, which the service implements: invoking the interface
        // method on it dispatches to its implementation (explicit ones included).
        self._inner = service;
        self._logger = logger;
        return proxy;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        ArgumentNullException.ThrowIfNull(targetMethod);
        if (targetMethod.Name == nameof(IOrchestrationService.StopAsync) && targetMethod.DeclaringType == typeof(IOrchestrationService))
        {
            var forced = args is [bool isForced] && isForced;
            lock (_gate)
            {
                return _stop ??= StopAsync(forced);
            }
        }

        try
        {
            return targetMethod.Invoke(_inner, args);
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            ExceptionDispatchInfo.Capture(ex.InnerException).Throw();
            throw;
        }
    }

    private async Task StopAsync(bool forced)
    {
        try
        {
            await (forced ? _inner.StopAsync(isForced: true) : _inner.StopAsync()).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Best effort: the first caller is the gRPC server's ApplicationStopping callback, which does not observe
            // the task, so anything thrown here would end the process. Partition leases expire on their own.
            LogStopFailed(_logger, ex);
        }
    }

    private static void LogStopFailed(ILogger logger, Exception exception) =>
        logger.LogWarning(exception, "The Durable orchestration service did not stop cleanly (for example it was never started); its partition leases expire on their own");
}
