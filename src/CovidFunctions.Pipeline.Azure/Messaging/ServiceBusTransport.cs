using System.Collections.Concurrent;
using Azure.Core;
using Azure.Identity;
using Azure.Messaging.ServiceBus;
using CovidFunctions.Pipeline.Messaging;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Messaging;

/// <summary>Settings of <see cref="ServiceBusTransport"/> beyond <see cref="ConsumerOptions"/>.</summary>
public sealed record ServiceBusTransportOptions
{
    /// <summary>How long the processor keeps renewing a message's lock while its handler runs (scoring a chunk can outlast one lock).</summary>
    public TimeSpan MaxAutoLockRenewalDuration { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>Messages fetched ahead of the handlers (0: none, so an idle replica holds no locks another could use).</summary>
    public int PrefetchCount { get; init; }

    /// <summary>
    /// A message to retry is held (its lock renewed) this long, doubled per delivery up to <see cref="RetryMaxDelay"/>,
    /// before it is abandoned (<see cref="SettlementPolicy.RetryDelay"/>, as the Storage-queue transport waits). An
    /// abandoned message is available again at once, so without the wait a transient storage fault used up every
    /// delivery within seconds, and the scorer's last delivery then fails the whole study.
    /// </summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// <see cref="IMessageSender"/> and <see cref="IMessageConsumer"/> over Azure Service Bus queues (the Azure transport of
/// the slice queue). Sending sets <c>MessageId</c> to the deterministic id (the queue's duplicate detection drops a
/// re-send within its window) and <c>ContentType</c> JSON. Consuming runs a <see cref="ServiceBusProcessor"/> in
/// peek-lock mode without auto-complete, with <see cref="ConsumerOptions.MaxConcurrency"/> concurrent calls and lock
/// renewal; each message is settled by <see cref="SettlementPolicy"/>: Complete → complete, Retry → abandon (the
/// delivery count rises), DeadLetter → dead-letter with reason and description. <see cref="RunAsync"/> stops the
/// processor when its token is cancelled (in-flight handlers finish first: graceful drain on SIGTERM).
/// <para>
/// Build the client identity-based in Azure: <c>new ServiceBusTransport(ServiceBusTransport.CreateClient("sb-x.servicebus.windows.net"))</c>
/// (DefaultAzureCredential; managed identity in Azure). Message construction, reception and settlement are static and
/// unit-tested; no Service Bus emulator is reachable here.
/// </para>
/// </summary>
public sealed partial class ServiceBusTransport : IMessageSender, IMessageConsumer, IAsyncDisposable
{
    /// <summary>Dead-letter reasons are short (a Service Bus header); the full text goes in the description.</summary>
    public const int MaxDeadLetterReasonLength = 200;

    public const int MaxDeadLetterDescriptionLength = 4096;

    private readonly ServiceBusClient _client;
    private readonly ILogger _logger;
    private readonly ServiceBusTransportOptions _options;
    private readonly ConcurrentDictionary<string, ServiceBusSender> _senders = new(StringComparer.Ordinal);

    public ServiceBusTransport(ServiceBusClient client, ILogger? logger = null, ServiceBusTransportOptions? options = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _logger = logger ?? NullLogger.Instance;
        _options = options ?? new ServiceBusTransportOptions();
    }

    /// <summary>An identity-based client on <paramref name="fullyQualifiedNamespace"/> (<c>name.servicebus.windows.net</c>); <see cref="DefaultAzureCredential"/> when no credential is given.</summary>
    public static ServiceBusClient CreateClient(string fullyQualifiedNamespace, TokenCredential? credential = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(fullyQualifiedNamespace);
        return new ServiceBusClient(fullyQualifiedNamespace, credential ?? new DefaultAzureCredential(), new ServiceBusClientOptions
        {
            TransportType = ServiceBusTransportType.AmqpTcp,
        });
    }

    /// <summary>The Service Bus message for a pipeline message: deterministic <c>MessageId</c>, JSON content type, UTF-8 body.</summary>
    public static ServiceBusMessage CreateMessage(QueueMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentException.ThrowIfNullOrEmpty(message.MessageId);
        return new ServiceBusMessage(BinaryData.FromString(message.Body))
        {
            MessageId = message.MessageId,
            ContentType = "application/json",
        };
    }

    /// <summary>The handler's view of a received message (Service Bus counts deliveries from 1).</summary>
    public static ReceivedMessage ToReceivedMessage(ServiceBusReceivedMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return new ReceivedMessage(message.MessageId, message.Body.ToString(), message.DeliveryCount);
    }

    /// <summary>Processor options: peek-lock, no auto-complete, bounded concurrency, lock renewal.</summary>
    public static ServiceBusProcessorOptions CreateProcessorOptions(ConsumerOptions consumer, ServiceBusTransportOptions transport)
    {
        ArgumentNullException.ThrowIfNull(consumer);
        ArgumentNullException.ThrowIfNull(transport);
        return new ServiceBusProcessorOptions
        {
            ReceiveMode = ServiceBusReceiveMode.PeekLock,
            AutoCompleteMessages = false,
            MaxConcurrentCalls = Math.Max(1, consumer.MaxConcurrency),
            MaxAutoLockRenewalDuration = transport.MaxAutoLockRenewalDuration,
            PrefetchCount = Math.Max(0, transport.PrefetchCount),
        };
    }

    /// <summary>Splits a dead-letter reason into the short Service Bus reason and the description (both length-bounded).</summary>
    public static (string Reason, string Description) DeadLetterFields(string? reason)
    {
        var text = string.IsNullOrWhiteSpace(reason) ? "dead-lettered" : reason.Trim();
        var firstLine = text.Split('\n', 2)[0].Trim();
        return (Truncate(firstLine, MaxDeadLetterReasonLength), Truncate(text, MaxDeadLetterDescriptionLength));
    }

    /// <summary>Applies a settlement to the message of <paramref name="args"/>.</summary>
    public static Task SettleAsync(ProcessMessageEventArgs args, Settlement settlement, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(settlement);
        switch (settlement.Action)
        {
            case SettlementAction.Complete:
                return args.CompleteMessageAsync(args.Message, cancellationToken);
            case SettlementAction.Retry:
                return args.AbandonMessageAsync(args.Message, propertiesToModify: null, cancellationToken);
            default:
                var (reason, description) = DeadLetterFields(settlement.Reason);
                return args.DeadLetterMessageAsync(args.Message, reason, description, cancellationToken);
        }
    }

    /// <summary>
    /// Runs <paramref name="handler"/> on one message and settles it (the processor's message callback, exposed for tests).
    /// A handler stopped by the processor's cancellation abandons the message so another replica takes it at once. A
    /// retry waits <see cref="ServiceBusTransportOptions.RetryBaseDelay"/> (doubled per delivery) before the abandon, cut
    /// short when the processor stops; <paramref name="delay"/> is that wait (<see cref="Task.Delay(TimeSpan, CancellationToken)"/>; tests record it).
    /// </summary>
    public static async Task<Settlement> ProcessAsync(
        ProcessMessageEventArgs args,
        Func<ReceivedMessage, CancellationToken, Task<Settlement>> handler,
        int maxDeliveryCount,
        ServiceBusTransportOptions? transport = null,
        Func<TimeSpan, CancellationToken, Task>? delay = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(handler);
        transport ??= new ServiceBusTransportOptions();
        var received = ToReceivedMessage(args.Message);
        Settlement? result = null;
        Exception? error = null;
        try
        {
            result = await handler(received, args.CancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (args.CancellationToken.IsCancellationRequested)
        {
            var release = new Settlement(SettlementAction.Retry, "consumer stopping");
            await SettleAsync(args, release, CancellationToken.None).ConfigureAwait(false);
            return release;
        }
        catch (Exception ex)
        {
            error = ex;
        }

        var settlement = SettlementPolicy.Decide(result, error, received.DeliveryCount, maxDeliveryCount);
        if (settlement.Action == SettlementAction.Retry)
        {
            var wait = SettlementPolicy.RetryDelay(received.DeliveryCount, transport.RetryBaseDelay, transport.RetryMaxDelay);
            try
            {
                await (delay ?? Task.Delay)(wait, args.CancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (args.CancellationToken.IsCancellationRequested)
            {
                // Stopping: abandon now, another replica takes it.
            }
        }

        await SettleAsync(args, settlement, CancellationToken.None).ConfigureAwait(false);
        return settlement;
    }

    public async Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        var sender = _senders.GetOrAdd(queue, _client.CreateSender);
        await sender.SendMessageAsync(CreateMessage(message), cancellationToken).ConfigureAwait(false);
    }

    public async Task RunAsync(string queue, Func<ReceivedMessage, CancellationToken, Task<Settlement>> handler, ConsumerOptions options, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentNullException.ThrowIfNull(options);
        await using var processor = _client.CreateProcessor(queue, CreateProcessorOptions(options, _options));
        processor.ProcessMessageAsync += async args =>
        {
            var settlement = await ProcessAsync(args, handler, options.MaxDeliveryCount, _options).ConfigureAwait(false);
            if (settlement.Action != SettlementAction.Complete)
            {
                LogSettled(_logger, queue, args.Message.MessageId, args.Message.DeliveryCount, settlement.Action, settlement.Reason ?? "");
            }
        };
        processor.ProcessErrorAsync += args =>
        {
            LogProcessorError(_logger, queue, args.ErrorSource.ToString(), args.Exception.Message);
            return Task.CompletedTask;
        };

        await processor.StartProcessingAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping: drain below.
        }

        await processor.StopProcessingAsync(CancellationToken.None).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var sender in _senders.Values)
        {
            await sender.DisposeAsync().ConfigureAwait(false);
        }

        _senders.Clear();
    }

    private static string Truncate(string text, int length) => text.Length <= length ? text : text[..(length - 1)] + "…";

    [LoggerMessage(Level = LogLevel.Warning, Message = "Service Bus message {MessageId} on {Queue} (delivery {DeliveryCount}) settled as {Action}: {Reason}")]
    private static partial void LogSettled(ILogger logger, string queue, string messageId, int deliveryCount, SettlementAction action, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Service Bus processor on {Queue} reported an error from {Source}: {Error}")]
    private static partial void LogProcessorError(ILogger logger, string queue, string source, string error);
}
