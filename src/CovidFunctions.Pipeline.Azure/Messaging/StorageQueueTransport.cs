using System.Collections.Concurrent;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using CovidFunctions.Pipeline.Messaging;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using QueueMessage = CovidFunctions.Pipeline.Messaging.QueueMessage;
using StorageMessage = Azure.Storage.Queues.Models.QueueMessage;

namespace CovidFunctions.Pipeline.Azure.Messaging;

/// <summary>Settings of <see cref="StorageQueueTransport"/> beyond <see cref="ConsumerOptions"/>.</summary>
public sealed record StorageQueueTransportOptions
{
    /// <summary>First retry backoff; doubled per delivery (see <see cref="SettlementPolicy.RetryDelay"/>).</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// While a handler runs, its message's invisibility is extended every third of <see cref="ConsumerOptions.VisibilityTimeout"/>
    /// (<see cref="StorageQueueTransport.RenewalInterval"/>; like Service Bus lock renewal), for at most this long
    /// (<see cref="SettlementPolicy.MaxLockRenewal"/>, the Service Bus transport's bound too); after that the message may
    /// be redelivered, which is logged as a warning.
    /// </summary>
    public TimeSpan MaxVisibilityRenewal { get; init; } = SettlementPolicy.MaxLockRenewal;

    /// <summary>Create the queue (and the dead-letter container) on first use.</summary>
    public bool CreateIfMissing { get; init; } = true;

    /// <summary>
    /// How long to wait before polling again after the service failed (Azurite restarting, network), and before trying
    /// a failed visibility renewal again (at most one renewal interval).
    /// </summary>
    public TimeSpan ErrorBackoff { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// <see cref="IMessageSender"/> and <see cref="IMessageConsumer"/> over Azure Storage queues (the local transport, and a
/// possible Azure one). Messages are <see cref="StorageQueueEnvelope"/> JSON (Base64-encoded by the queue client options
/// of <see cref="Storage.PipelineStorage"/>).
/// <para>
/// Receiving: one message per receive, up to <see cref="ConsumerOptions.MaxConcurrency"/> handlers at once, except that a
/// message delivered before (<c>DequeueCount</c> above 1: its last holder may have died of it) runs alone: it starts
/// when the handlers started before it have finished, and nothing more is received until it is done
/// (<see cref="DeliveryGate"/>; a handler that has run <see cref="ConsumerOptions.HungAfter"/>, 2 min by default, is taken
/// as hung, logged, and holds nothing back: the suspect starts beside it, and a suspect itself hung stops holding
/// receives); each received message is invisible for
/// <see cref="ConsumerOptions.VisibilityTimeout"/>, extended by that much every third of it while its handler runs (the
/// handler's heartbeat); <c>DequeueCount</c> is the delivery count, so a message whose handler crashed the process comes
/// back with a higher count once the last extension runs out: between two thirds of the timeout and the whole of it
/// after the crash, so the timeout is what a crash costs per delivery, not how long a handler may run. Settlement
/// (<see cref="SettlementPolicy"/>): Complete deletes it; Retry makes it visible again after a backoff; DeadLetter
/// writes a <see cref="DeadLetterRecord"/> to <c>dead-letters/{queue}/{messageId}-{n}.json</c> and then deletes it; a
/// dead-letter the consumer decided (over-delivered, or failing on its last delivery) is told to
/// <see cref="ConsumerOptions.DeadLetterHook"/> between the two.
/// Storage queues have no duplicate detection: handlers must be idempotent (the pipeline's are).
/// </para>
/// <para>
/// <see cref="RunAsync"/> returns when its token is cancelled, after the running handlers finish; a handler that stops
/// on that token leaves its message visible again at once for another consumer.
/// </para>
/// </summary>
public sealed partial class StorageQueueTransport : IMessageSender, IMessageConsumer
{
    private readonly QueueServiceClient _queues;
    private readonly BlobContainerClient _deadLetters;
    private readonly ILogger _logger;
    private readonly StorageQueueTransportOptions _options;
    private readonly ConcurrentDictionary<string, Lazy<Task>> _created = new(StringComparer.Ordinal);

    public StorageQueueTransport(QueueServiceClient queues, BlobContainerClient deadLetters, ILogger? logger = null, StorageQueueTransportOptions? options = null)
    {
        _queues = queues ?? throw new ArgumentNullException(nameof(queues));
        _deadLetters = deadLetters ?? throw new ArgumentNullException(nameof(deadLetters));
        _logger = logger ?? NullLogger.Instance;
        _options = options ?? new StorageQueueTransportOptions();
    }

    public async Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        var client = await GetQueueAsync(queue, cancellationToken).ConfigureAwait(false);
        await client.SendMessageAsync(StorageQueueEnvelope.Serialize(message), cancellationToken).ConfigureAwait(false);
    }

    public async Task RunAsync(string queue, Func<ReceivedMessage, CancellationToken, Task<Settlement>> handler, ConsumerOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentNullException.ThrowIfNull(options);
        var maxConcurrency = Math.Max(1, options.MaxConcurrency);
        using var slots = new SemaphoreSlim(maxConcurrency, maxConcurrency);
        var gate = new DeliveryGate(options.HungAfter, logger: _logger);
        var running = new ConcurrentDictionary<Task, byte>();
        QueueClient? client = null;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                await slots.WaitAsync(cancellationToken).ConfigureAwait(false);
                var taken = false;
                try
                {
                    // A message delivered before waits or runs alone (DeliveryGate): take nothing more until it is done,
                    // so a process it kills holds no other message. One message per receive for the same reason: a
                    // batch could hold a second redelivered message behind the first, and a crash during the first
                    // would cost the second a delivery too.
                    await gate.WaitUntilNoSuspectAsync(cancellationToken).ConfigureAwait(false);
                    StorageMessage[] messages;
                    try
                    {
                        client ??= await GetQueueAsync(queue, cancellationToken).ConfigureAwait(false);
                        var response = await client.ReceiveMessagesAsync(1, options.VisibilityTimeout, cancellationToken).ConfigureAwait(false);
                        messages = response.Value;
                    }
                    catch (Exception ex) when (IsTransient(ex) && !cancellationToken.IsCancellationRequested)
                    {
                        LogReceiveFailed(_logger, queue, ex.Message);
                        await Task.Delay(_options.ErrorBackoff, cancellationToken).ConfigureAwait(false);
                        continue;
                    }

                    if (messages.Length == 0)
                    {
                        await Task.Delay(options.PollInterval, cancellationToken).ConfigureAwait(false);
                        continue;
                    }

                    var message = messages[0];

                    // Admitted before anything awaits: the next turn of this loop must see a suspect already waiting.
                    // Named by its own id (the study and chunk) in the gate's hung warning; a malformed one by the queue's.
                    var envelope = StorageQueueEnvelope.TryParse(message.MessageText);
                    var admission = gate.Admit((int)Math.Min(message.DequeueCount, int.MaxValue), envelope?.MessageId ?? message.MessageId);
                    var task = HandleOneAsync(client!, queue, message, envelope, admission, handler, options, cancellationToken);
                    taken = true;
                    running[task] = 0;
                    _ = task.ContinueWith(
                        t =>
                        {
                            running.TryRemove(t, out _);
                            slots.Release();
                        },
                        CancellationToken.None,
                        TaskContinuationOptions.ExecuteSynchronously,
                        TaskScheduler.Default);
                }
                finally
                {
                    if (!taken)
                    {
                        slots.Release();
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping: fall through to drain.
        }
        finally
        {
            await Task.WhenAll(running.Keys).ConfigureAwait(false);
        }
    }

    private async Task HandleOneAsync(
        QueueClient client,
        string queue,
        StorageMessage message,
        StorageQueueEnvelope? envelope,
        DeliveryGate.Admission admission,
        Func<ReceivedMessage, CancellationToken, Task<Settlement>> handler,
        ConsumerOptions options,
        CancellationToken cancellationToken)
    {
        using var admitted = admission;
        var lease = new Lease(message.MessageId, message.PopReceipt);
        var deliveryCount = (int)Math.Min(message.DequeueCount, int.MaxValue);
        try
        {
            if (envelope is null)
            {
                admission.Dispose(); // settled without running: nobody waits for it
                await DeadLetterAsync(client, queue, lease, message.MessageId, deliveryCount, "malformed message: not a {messageId, body} envelope", message.MessageText).ConfigureAwait(false);
                return;
            }

            if (SettlementPolicy.IsOverDelivered(deliveryCount, options.MaxDeliveryCount))
            {
                admission.Dispose();
                await DeadLetterAsync(client, queue, lease, envelope.MessageId, deliveryCount, $"delivered {deliveryCount} times (max {options.MaxDeliveryCount}) without being settled: its handler kept failing or crashing", envelope.Body, options, DeadLetterCause.OverDelivered).ConfigureAwait(false);
                return;
            }

            Settlement? result = null;
            Exception? error = null;
            // Not linked to the consumer's token: when stopping, a handler that keeps running to finish its message (the
            // scorer drains for Scorer:DrainTimeout) must keep it invisible, or another replica takes it meanwhile.
            using (var renewal = new CancellationTokenSource())
            {
                var renewTask = RenewVisibilityAsync(client, lease, envelope.MessageId, options.VisibilityTimeout, renewal.Token);
                try
                {
                    // Kept invisible (renewed) while it waits its turn; released at once if the consumer stops first.
                    await admission.WaitAsync(cancellationToken).ConfigureAwait(false);
                    result = await handler(new ReceivedMessage(envelope.MessageId, envelope.Body, deliveryCount), cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    await renewal.CancelAsync().ConfigureAwait(false);
                    await renewTask.ConfigureAwait(false);
                    await ReleaseAsync(client, queue, lease, TimeSpan.Zero).ConfigureAwait(false);
                    return;
                }
                catch (Exception ex)
                {
                    error = ex;
                }

                // The handler has finished: the next in line may start while this one settles (as on Service Bus).
                admission.Dispose();
                await renewal.CancelAsync().ConfigureAwait(false);
                await renewTask.ConfigureAwait(false);
            }

            var settlement = SettlementPolicy.Decide(result, error, deliveryCount, options.MaxDeliveryCount);
            switch (settlement.Action)
            {
                case SettlementAction.Complete:
                    await DeleteAsync(client, queue, lease).ConfigureAwait(false);
                    break;
                case SettlementAction.Retry:
                    LogRetrying(_logger, queue, envelope.MessageId, deliveryCount, settlement.Reason ?? "");
                    await ReleaseAsync(client, queue, lease, SettlementPolicy.RetryDelay(deliveryCount, _options.RetryBaseDelay, _options.RetryMaxDelay)).ConfigureAwait(false);
                    break;
                default:
                    await DeadLetterAsync(client, queue, lease, envelope.MessageId, deliveryCount, settlement.Reason ?? "dead-lettered", envelope.Body, options,
                        SettlementPolicy.IsConsumerDeadLetter(result, settlement) ? DeadLetterCause.FailedOnLastDelivery : null).ConfigureAwait(false);
                    break;
            }
        }
        catch (Exception ex) when (IsTransient(ex))
        {
            // Settlement failed (storage unreachable): the message becomes visible again after its timeout.
            LogSettleFailed(_logger, queue, message.MessageId, ex.Message);
        }
    }

    /// <summary>
    /// Keeps the message invisible while its handler runs: every <see cref="RenewalInterval"/> (a third of the visibility
    /// timeout), and after a failed renewal again after <see cref="StorageQueueTransportOptions.ErrorBackoff"/> (at most
    /// one interval). Waiting a whole interval after a failure put the next try at the very moment the message became
    /// visible again (when the interval was half the timeout), so one more failure let another consumer receive it and
    /// run its chunk a second time while this one still ran. A renewal the service refuses because the message is no
    /// longer ours (another consumer received it, or it is gone) ends the renewal: no later one can succeed.
    /// </summary>
    private async Task RenewVisibilityAsync(QueueClient client, Lease lease, string messageId, TimeSpan visibilityTimeout, CancellationToken cancellationToken)
    {
        var interval = RenewalInterval(visibilityTimeout);
        var retry = TimeSpan.FromTicks(Math.Clamp(_options.ErrorBackoff.Ticks, TimeSpan.FromMilliseconds(100).Ticks, interval.Ticks));
        var started = DateTimeOffset.UtcNow;
        var wait = interval;
        try
        {
            while (DateTimeOffset.UtcNow - started < _options.MaxVisibilityRenewal)
            {
                await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
                try
                {
                    // Not cancelled when the handler finishes: the service may have applied the update already, and
                    // only its answer carries the new pop receipt the settlement needs. A cancelled update left the old
                    // receipt, the delete was refused (PopReceiptMismatch) and the finished message came back after its
                    // timeout, to be handled a second time. The settlement waits for this answer (the SDK's network
                    // timeout bounds it).
                    var response = await client.UpdateMessageAsync(lease.MessageId, lease.PopReceipt, visibilityTimeout: visibilityTimeout, cancellationToken: CancellationToken.None).ConfigureAwait(false);
                    lease.PopReceipt = response.Value.PopReceipt;
                    wait = interval;
                }
                catch (RequestFailedException ex) when (IsLeaseLost(ex))
                {
                    LogRenewalLost(_logger, messageId, ex.ErrorCode ?? ex.Status.ToString(System.Globalization.CultureInfo.InvariantCulture));
                    return;
                }
                catch (Exception ex) when (IsTransient(ex))
                {
                    LogRenewFailed(_logger, lease.MessageId, ex.Message);
                    wait = retry;
                }
            }

            // The handler still runs: the message becomes visible after its timeout and another consumer can take it.
            LogRenewalBoundReached(_logger, messageId, _options.MaxVisibilityRenewal.TotalMinutes);
        }
        catch (OperationCanceledException)
        {
            // The handler finished.
        }
    }

    /// <summary>
    /// How often a running handler's message is made invisible for another <paramref name="visibilityTimeout"/>: a third
    /// of it (at least a second). A renewal failing from the moment one is due is tried again every
    /// <see cref="StorageQueueTransportOptions.ErrorBackoff"/> for the two thirds the message still has, so an outage
    /// shorter than that costs nothing; and a dead consumer's message is back two thirds to the whole of the timeout
    /// after its last renewal. At a half, as before, an outage of half the timeout let a second consumer in, so a short
    /// timeout (the scorer's 30 s, chosen so a crashed scorer's chunk comes back soon) kept 15 s of slack instead of 20.
    /// </summary>
    public static TimeSpan RenewalInterval(TimeSpan visibilityTimeout) =>
        TimeSpan.FromTicks(Math.Max(visibilityTimeout.Ticks / 3, TimeSpan.FromSeconds(1).Ticks));

    /// <summary>The service's answer when a pop receipt no longer holds the message: 404 (gone) or 400 PopReceiptMismatch.</summary>
    private static bool IsLeaseLost(RequestFailedException ex) =>
        ex.Status == 404 || (ex.Status == 400 && string.Equals(ex.ErrorCode, "PopReceiptMismatch", StringComparison.Ordinal));

    private async Task DeleteAsync(QueueClient client, string queue, Lease lease)
    {
        try
        {
            await client.DeleteMessageAsync(lease.MessageId, lease.PopReceipt, CancellationToken.None).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status is 404 or 400)
        {
            // The visibility lapsed and another consumer holds (or already settled) the message.
            LogLostLease(_logger, queue, lease.MessageId, ex.ErrorCode ?? ex.Status.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    private async Task ReleaseAsync(QueueClient client, string queue, Lease lease, TimeSpan delay)
    {
        try
        {
            await client.UpdateMessageAsync(lease.MessageId, lease.PopReceipt, visibilityTimeout: delay, cancellationToken: CancellationToken.None).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status is 404 or 400)
        {
            LogLostLease(_logger, queue, lease.MessageId, ex.ErrorCode ?? ex.Status.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    /// <summary>
    /// Writes the <see cref="DeadLetterRecord"/>, tells the consumer's <see cref="ConsumerOptions.DeadLetterHook"/> when the
    /// consumer decided the dead-letter (<paramref name="cause"/>), then deletes the message. A crash between the steps
    /// leaves the message to come back and be dead-lettered again (a record under the next delivery count, the hook once
    /// more), never lost.
    /// </summary>
    private async Task DeadLetterAsync(QueueClient client, string queue, Lease lease, string messageId, int deliveryCount, string reason, string body, ConsumerOptions? options = null, DeadLetterCause? cause = null)
    {
        var record = new DeadLetterRecord(queue, messageId, deliveryCount, reason, body, DateTimeOffset.UtcNow);
        var path = DeadLetterRecord.PathOf(queue, messageId, deliveryCount);
        if (_options.CreateIfMissing)
        {
            await EnsureCreatedAsync("blob:" + _deadLetters.Name, () => _deadLetters.CreateIfNotExistsAsync(cancellationToken: CancellationToken.None), CancellationToken.None).ConfigureAwait(false);
        }

        // Written before the delete: a crash in between leaves the message to be dead-lettered again (a record under its
        // next delivery count), never lost.
        await _deadLetters.GetBlobClient(path).UploadAsync(BinaryData.FromString(PipelineJson.Serialize(record)), overwrite: true, CancellationToken.None).ConfigureAwait(false);
        LogDeadLettered(_logger, queue, messageId, deliveryCount, reason, path);
        if (cause is { } decided && options?.DeadLetterHook is { } hook)
        {
            var deadLettered = new DeadLetteredMessage(queue, new ReceivedMessage(messageId, body, deliveryCount), decided, reason, $"{_deadLetters.Name}/{path}", options.MaxDeliveryCount);
            await DeadLetterNotification.NotifyAsync(hook, deadLettered, _logger).ConfigureAwait(false);
        }

        await DeleteAsync(client, queue, lease).ConfigureAwait(false);
    }

    private async Task<QueueClient> GetQueueAsync(string queue, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        var client = _queues.GetQueueClient(queue);
        if (_options.CreateIfMissing)
        {
            await EnsureCreatedAsync("queue:" + queue, () => client.CreateIfNotExistsAsync(cancellationToken: CancellationToken.None), cancellationToken).ConfigureAwait(false);
        }

        return client;
    }

    private async Task EnsureCreatedAsync(string key, Func<Task> create, CancellationToken cancellationToken)
    {
        var lazy = _created.GetOrAdd(key, _ => new Lazy<Task>(create));
        try
        {
            await lazy.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            // Try again next time (the service may have been down).
            _created.TryRemove(new KeyValuePair<string, Lazy<Task>>(key, lazy));
            throw;
        }
    }

    /// <summary>Failures of the storage service or the network (Azure.Core wraps exhausted retries in an AggregateException).</summary>
    internal static bool IsTransient(Exception ex) =>
        ex is RequestFailedException or HttpRequestException or IOException or TimeoutException or TaskCanceledException
        || (ex is AggregateException aggregate && aggregate.InnerExceptions.All(IsTransient));

    /// <summary>The current pop receipt of a received message (each visibility update issues a new one).</summary>
    private sealed class Lease(string messageId, string popReceipt)
    {
        public string MessageId { get; } = messageId;

        public string PopReceipt { get; set; } = popReceipt;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Receiving from queue {Queue} failed: {Error}")]
    private static partial void LogReceiveFailed(ILogger logger, string queue, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Message {MessageId} on {Queue} (delivery {DeliveryCount}) will be retried: {Reason}")]
    private static partial void LogRetrying(ILogger logger, string queue, string messageId, int deliveryCount, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Message {MessageId} on {Queue} dead-lettered after delivery {DeliveryCount}: {Reason} ({Path})")]
    private static partial void LogDeadLettered(ILogger logger, string queue, string messageId, int deliveryCount, string reason, string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Settling message {MessageId} on {Queue} failed: {Error}")]
    private static partial void LogSettleFailed(ILogger logger, string queue, string messageId, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Extending the visibility of message {MessageId} failed: {Error}")]
    private static partial void LogRenewFailed(ILogger logger, string messageId, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Extending the visibility of message {MessageId} was refused ({Code}): another consumer received it or it is gone, so its work may run a second time; renewal stopped")]
    private static partial void LogRenewalLost(ILogger logger, string messageId, string code);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Message {MessageId} is still being handled after the visibility renewal bound of {Minutes:0.#} min: it becomes visible again after its timeout and can be delivered, and its work run, a second time")]
    private static partial void LogRenewalBoundReached(ILogger logger, string messageId, double minutes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Message {MessageId} on {Queue} was no longer ours to settle ({Code})")]
    private static partial void LogLostLease(ILogger logger, string queue, string messageId, string code);
}
