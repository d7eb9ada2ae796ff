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
    /// <summary>
    /// How long the processor keeps renewing a message's lock while its handler runs (scoring a chunk can outlast one
    /// lock): <see cref="SettlementPolicy.MaxLockRenewal"/>, the bound the Storage-queue transport renews visibility to.
    /// A handler still running at the bound is logged (it may be delivered again and run twice), and so is a settlement
    /// refused because the lock was lost.
    /// </summary>
    public TimeSpan MaxAutoLockRenewalDuration { get; init; } = SettlementPolicy.MaxLockRenewal;

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
    private readonly ConcurrentDictionary<ServiceBusProcessor, byte> _processors = new();
    private readonly bool _ownsClient;

    /// <param name="client">The connection; disposed with the transport when <paramref name="ownsClient"/>.</param>
    /// <param name="logger">Settlement and processor errors.</param>
    /// <param name="options">Lock renewal, prefetch, retry waits.</param>
    /// <param name="ownsClient">
    /// The transport made the client for itself (the scorer): <see cref="DisposeAsync"/> closes it last, after the
    /// processors and senders. Otherwise the caller disposes it.
    /// </param>
    public ServiceBusTransport(ServiceBusClient client, ILogger? logger = null, ServiceBusTransportOptions? options = null, bool ownsClient = false)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _logger = logger ?? NullLogger.Instance;
        _options = options ?? new ServiceBusTransportOptions();
        _ownsClient = ownsClient;
    }

    /// <summary>The settings in effect (lock renewal bound, retry waits).</summary>
    public ServiceBusTransportOptions Options => _options;

    /// <summary>The connection (closed by <see cref="DisposeAsync"/> when the transport owns it).</summary>
    public ServiceBusClient Client => _client;

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
    /// <para>
    /// The wait holds one of the processor's <c>MaxConcurrentCalls</c> slots, deliberately. With the scorer's 2 slots
    /// a failing chunk holds one for 1 + 2 + 4 + 8 = 15 s over its 5 deliveries (the 30 s cap is reached only from a
    /// 6th), about one chunk's scoring time, while the other slot keeps the model busy. Freeing the slot would need the
    /// message out of the handler unsettled: either its lock runs out (the queue's lockDuration, 2 min, the same for
    /// every delivery: no back-off, and a longer stall) or a scheduled copy replaces it (same MessageId, so the queue's
    /// duplicate detection drops the copy inside its window, and the delivery count restarts at 1, so the last-delivery
    /// answer never comes). The Storage-queue transport frees its slot, because a visibility update is a delayed retry.
    /// </para>
    /// <para>
    /// A handler still running when the lock renewal ends (<see cref="ServiceBusTransportOptions.MaxAutoLockRenewalDuration"/>)
    /// is logged as a warning: its lock expires and the message can be delivered, and its chunk scored, again. A
    /// settlement refused because the lock was lost is logged the same way rather than thrown.
    /// </para>
    /// <para>
    /// A message delivered before (delivery count above 1: its last holder may have died of it) runs alone on this
    /// replica when <paramref name="gate"/> is given (<see cref="RunAsync"/> gives one per processor): its handler starts
    /// when the handlers started before it have finished, and a message the processor hands over meanwhile waits (its
    /// lock renewed) until it is done. Unlike the Storage-queue transport, this one cannot stop the processor from
    /// receiving: a message received while a suspect runs is held unstarted, so a crash during the suspect still costs
    /// it a delivery (<c>docs/design/failure-semantics.md</c>). A handler that has run
    /// <see cref="DeliveryGate.HungAfter"/> (<see cref="ConsumerOptions.HungAfter"/>, 2 min by default) is taken as hung,
    /// logged, and holds nothing back: a suspect waiting behind it starts beside it rather than waiting up to the 30-min
    /// lock renewal. The message leaves the gate when its handler has finished, before a retry's wait.
    /// </para>
    /// <para>
    /// A message delivered more often than <paramref name="maxDeliveryCount"/> (no delivery settled it: the handler's
    /// process stopped each time) is dead-lettered without running the handler, as the Storage-queue transport does,
    /// and <paramref name="deadLetterHook"/> is told first; so is a dead-letter decided on the last delivery. The app sees
    /// such a message only while the queue's own <c>maxDeliveryCount</c> is higher than <paramref name="maxDeliveryCount"/>
    /// (bicep: one more); at the queue's count the broker dead-letters it itself and nobody is told.
    /// </para>
    /// </summary>
    public static async Task<Settlement> ProcessAsync(
        ProcessMessageEventArgs args,
        Func<ReceivedMessage, CancellationToken, Task<Settlement>> handler,
        int maxDeliveryCount,
        ServiceBusTransportOptions? transport = null,
        Func<TimeSpan, CancellationToken, Task>? delay = null,
        ILogger? logger = null,
        IDeadLetterHook? deadLetterHook = null,
        string queue = "",
        DeliveryGate? gate = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(handler);
        transport ??= new ServiceBusTransportOptions();
        logger ??= NullLogger.Instance;
        var received = ToReceivedMessage(args.Message);
        if (SettlementPolicy.IsOverDelivered(received.DeliveryCount, maxDeliveryCount))
        {
            var overDelivered = new Settlement(SettlementAction.DeadLetter, $"delivered {received.DeliveryCount} times (max {maxDeliveryCount}) without being settled: its handler kept failing or crashing");
            await DeadLetterNotification.NotifyAsync(deadLetterHook, new DeadLetteredMessage(queue, received, DeadLetterCause.OverDelivered, overDelivered.Reason!, DeadLetterLocation(queue, received), maxDeliveryCount), logger).ConfigureAwait(false);
            await SettleOrWarnAsync(args, overDelivered, logger).ConfigureAwait(false);
            return overDelivered;
        }

        Settlement? result = null;
        Exception? error = null;
        using var admission = gate?.Admit(received.DeliveryCount, received.MessageId);
        using (var handlerDone = new CancellationTokenSource())
        {
            var renewalBound = WarnAtRenewalBoundAsync(received, transport.MaxAutoLockRenewalDuration, logger, handlerDone.Token);
            try
            {
                // The processor renews the lock while the message waits its turn; stopping abandons it unstarted.
                if (admission is not null)
                {
                    await admission.WaitAsync(args.CancellationToken).ConfigureAwait(false);
                }

                result = await handler(received, args.CancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (args.CancellationToken.IsCancellationRequested)
            {
                var release = new Settlement(SettlementAction.Retry, "consumer stopping");
                await SettleOrWarnAsync(args, release, logger).ConfigureAwait(false);
                return release;
            }
            catch (Exception ex)
            {
                error = ex;
            }
            finally
            {
                // The handler has finished: the next in line may start now. The retry wait below holds this message's
                // processor slot on purpose, but runs nothing that could kill the process; held in the gate too, a
                // redelivered message waiting it out kept the replica's other slot idle (up to the 30-s cap).
                admission?.Dispose();
                await handlerDone.CancelAsync().ConfigureAwait(false);
                await renewalBound.ConfigureAwait(false);
            }
        }

        var settlement = SettlementPolicy.Decide(result, error, received.DeliveryCount, maxDeliveryCount);
        if (SettlementPolicy.IsConsumerDeadLetter(result, settlement))
        {
            // Told before the dead-letter: once dead-lettered the message is out of the app's reach, and a crash in
            // between leaves it to the broker's count, which dead-letters it untold.
            await DeadLetterNotification.NotifyAsync(deadLetterHook, new DeadLetteredMessage(queue, received, DeadLetterCause.FailedOnLastDelivery, settlement.Reason!, DeadLetterLocation(queue, received), maxDeliveryCount), logger).ConfigureAwait(false);
        }

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

        await SettleOrWarnAsync(args, settlement, logger).ConfigureAwait(false);
        return settlement;
    }

    /// <summary>Where a dead-lettered message is read on Service Bus: the queue's dead-letter sub-queue, by message id.</summary>
    public static string DeadLetterLocation(string queue, ReceivedMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return $"{queue}/$deadletterqueue (Service Bus), message {message.MessageId}, delivery {message.DeliveryCount}";
    }

    private static async Task SettleOrWarnAsync(ProcessMessageEventArgs args, Settlement settlement, ILogger logger)
    {
        try
        {
            await SettleAsync(args, settlement, CancellationToken.None).ConfigureAwait(false);
        }
        catch (ServiceBusException ex) when (ex.Reason == ServiceBusFailureReason.MessageLockLost)
        {
            // The lock expired (the renewal bound passed, or renewal failed): the broker has made the message available
            // again, and another delivery may run (and score) it a second time. Its outputs are idempotent; say so.
            LogLockLost(logger, args.Message.MessageId, args.Message.DeliveryCount, settlement.Action);
        }
    }

    private static async Task WarnAtRenewalBoundAsync(ReceivedMessage message, TimeSpan bound, ILogger logger, CancellationToken handlerDone)
    {
        try
        {
            await Task.Delay(bound, handlerDone).ConfigureAwait(false);
            LogRenewalBoundReached(logger, message.MessageId, message.DeliveryCount, bound.TotalMinutes);
        }
        catch (OperationCanceledException)
        {
            // The handler finished within the bound.
        }
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
        _processors[processor] = 0;
        var gate = new DeliveryGate(options.HungAfter, logger: _logger);
        processor.ProcessMessageAsync += async args =>
        {
            var settlement = await ProcessAsync(args, handler, options.MaxDeliveryCount, _options, logger: _logger, deadLetterHook: options.DeadLetterHook, queue: queue, gate: gate).ConfigureAwait(false);
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

        // Drains: the SDK waits for the running handlers (renewing their locks) before it returns.
        await processor.StopProcessingAsync(CancellationToken.None).ConfigureAwait(false);
        _processors.TryRemove(processor, out _);
    }

    /// <summary>
    /// Closes in dependency order: processors still running are stopped (their handlers drain) and disposed, then the
    /// senders, then the client when the transport owns it. The scorer's host disposes the transport after its
    /// worker's drain, so by then the processor is stopped already and only the senders and the connection remain.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var processor in _processors.Keys)
        {
            await processor.StopProcessingAsync(CancellationToken.None).ConfigureAwait(false);
            await processor.DisposeAsync().ConfigureAwait(false);
            _processors.TryRemove(processor, out _);
        }

        foreach (var sender in _senders.Values)
        {
            await sender.DisposeAsync().ConfigureAwait(false);
        }

        _senders.Clear();
        if (_ownsClient)
        {
            await _client.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static string Truncate(string text, int length) => text.Length <= length ? text : text[..(length - 1)] + "…";

    [LoggerMessage(Level = LogLevel.Warning, Message = "Service Bus message {MessageId} on {Queue} (delivery {DeliveryCount}) settled as {Action}: {Reason}")]
    private static partial void LogSettled(ILogger logger, string queue, string messageId, int deliveryCount, SettlementAction action, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Service Bus message {MessageId} (delivery {DeliveryCount}) is still being handled after the lock renewal bound of {Minutes:0.#} min: its lock will expire and the message can be delivered, and its work run, a second time")]
    private static partial void LogRenewalBoundReached(ILogger logger, string messageId, int deliveryCount, double minutes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Service Bus message {MessageId} (delivery {DeliveryCount}) could not be settled as {Action}: its lock was lost, so it is available again and another delivery may run its work a second time")]
    private static partial void LogLockLost(ILogger logger, string messageId, int deliveryCount, SettlementAction action);

    [LoggerMessage(Level = LogLevel.Error, Message = "Service Bus processor on {Queue} reported an error from {Source}: {Error}")]
    private static partial void LogProcessorError(ILogger logger, string queue, string source, string error);
}
