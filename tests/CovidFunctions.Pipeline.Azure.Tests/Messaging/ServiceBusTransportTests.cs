using System.Collections.Concurrent;
using Azure.Messaging.ServiceBus;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Azure.Tests.Messaging;

/// <summary>The Service Bus path without a broker: message construction, processor options and settlement on a recording receiver.</summary>
public sealed class ServiceBusTransportTests
{
    [Fact]
    public void A_chunk_request_becomes_a_json_message_keyed_by_its_deterministic_id()
    {
        var request = new ChunkRequest("tenant-a", "s0123", "study-tenant-a-s0123", "tenant-a/s0123/tiles/", 2, 64, 32, 1);
        var message = ServiceBusTransport.CreateMessage(new QueueMessage(request.MessageId, PipelineJson.Serialize(request)));

        Assert.Equal("s0123-c0002-a1", message.MessageId);
        Assert.Equal("application/json", message.ContentType);
        Assert.Equal(request, PipelineJson.Deserialize<ChunkRequest>(message.Body.ToString()));

        // The same request sent twice carries the same MessageId: the queue's duplicate detection drops the second.
        Assert.Equal(message.MessageId, ServiceBusTransport.CreateMessage(new QueueMessage(request.MessageId, "{}")).MessageId);
        Assert.Throws<ArgumentException>(() => ServiceBusTransport.CreateMessage(new QueueMessage("", "{}")));
    }

    [Fact]
    public void The_processor_peek_locks_without_auto_complete_and_bounds_concurrency()
    {
        var options = ServiceBusTransport.CreateProcessorOptions(
            new ConsumerOptions { MaxConcurrency = 4 },
            new ServiceBusTransportOptions { MaxAutoLockRenewalDuration = TimeSpan.FromMinutes(20) });

        Assert.Equal(ServiceBusReceiveMode.PeekLock, options.ReceiveMode);
        Assert.False(options.AutoCompleteMessages);
        Assert.Equal(4, options.MaxConcurrentCalls);
        Assert.Equal(TimeSpan.FromMinutes(20), options.MaxAutoLockRenewalDuration);
        Assert.Equal(0, options.PrefetchCount);
        Assert.Equal(1, ServiceBusTransport.CreateProcessorOptions(new ConsumerOptions { MaxConcurrency = 0 }, new ServiceBusTransportOptions()).MaxConcurrentCalls);
    }

    [Fact]
    public void A_received_message_keeps_its_id_body_and_delivery_count()
    {
        var received = ServiceBusTransport.ToReceivedMessage(Received("m-1", "{\"x\":1}", deliveryCount: 3));
        Assert.Equal(new ReceivedMessage("m-1", "{\"x\":1}", 3), received);
    }

    [Fact]
    public void Dead_letter_fields_are_short_reason_and_full_description()
    {
        var (reason, description) = ServiceBusTransport.DeadLetterFields("gave up after 5 deliveries\nstack line");
        Assert.Equal("gave up after 5 deliveries", reason);
        Assert.Equal("gave up after 5 deliveries\nstack line", description);

        var (longReason, longDescription) = ServiceBusTransport.DeadLetterFields(new string('x', 10_000));
        Assert.Equal(ServiceBusTransport.MaxDeadLetterReasonLength, longReason.Length);
        Assert.Equal(ServiceBusTransport.MaxDeadLetterDescriptionLength, longDescription.Length);
        Assert.Equal("dead-lettered", ServiceBusTransport.DeadLetterFields(null).Reason);
    }

    [Fact]
    public async Task A_handled_message_is_completed()
    {
        var receiver = new RecordingReceiver();
        var settlement = await ServiceBusTransport.ProcessAsync(Args(receiver, deliveryCount: 1), (_, _) => Task.FromResult(Settlement.Complete), maxDeliveryCount: 5);

        Assert.Equal(SettlementAction.Complete, settlement.Action);
        Assert.Equal(["complete"], receiver.Calls);
    }

    [Fact]
    public async Task A_throwing_handler_abandons_until_the_last_delivery_then_dead_letters_with_the_exception_message()
    {
        static Task<Settlement> Throwing(ReceivedMessage message, CancellationToken ct) => throw new InvalidDataException("tiles missing");

        var early = new RecordingReceiver();
        Assert.Equal(SettlementAction.Retry, (await ServiceBusTransport.ProcessAsync(Args(early, deliveryCount: 4), Throwing, maxDeliveryCount: 5, delay: NoWait)).Action);
        Assert.Equal(["abandon"], early.Calls);

        var last = new RecordingReceiver();
        var settlement = await ServiceBusTransport.ProcessAsync(Args(last, deliveryCount: 5), Throwing, maxDeliveryCount: 5);
        Assert.Equal(SettlementAction.DeadLetter, settlement.Action);
        var call = Assert.Single(last.Calls);
        Assert.StartsWith("deadletter:gave up after 5 deliveries", call, StringComparison.Ordinal);
        Assert.Contains("InvalidDataException: tiles missing", last.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_retry_is_held_back_doubling_per_delivery_before_the_abandon_and_not_on_the_last_delivery()
    {
        // Before: abandoned at once, so a chunk failing on a transient storage fault was delivered again at once and
        // used up its five deliveries within seconds; the scorer's last-delivery answer then failed the whole study.
        static Task<Settlement> Throwing(ReceivedMessage message, CancellationToken ct) => throw new IOException("storage away");

        var waits = new List<TimeSpan>();
        var options = new ServiceBusTransportOptions { RetryBaseDelay = TimeSpan.FromSeconds(1), RetryMaxDelay = TimeSpan.FromSeconds(30) };
        for (var delivery = 1; delivery <= 5; delivery++)
        {
            var receiver = new RecordingReceiver();
            var settlement = await ServiceBusTransport.ProcessAsync(Args(receiver, delivery), Throwing, maxDeliveryCount: 5, options, (wait, _) =>
            {
                // The wait comes before the settlement: nothing is settled yet.
                Assert.Empty(receiver.Calls);
                waits.Add(wait);
                return Task.CompletedTask;
            });
            Assert.Equal(delivery < 5 ? "abandon" : "deadletter", Assert.Single(receiver.Calls).Split(':')[0]);
            Assert.Equal(delivery < 5 ? SettlementAction.Retry : SettlementAction.DeadLetter, settlement.Action);
        }

        Assert.Equal([TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(8)], waits);
    }

    [Fact]
    public async Task A_held_back_retry_is_abandoned_at_once_when_the_processor_stops()
    {
        var receiver = new RecordingReceiver();
        using var stopping = new CancellationTokenSource();
        await stopping.CancelAsync();
        var args = new ProcessMessageEventArgs(Received("m", "{}", 2), receiver, stopping.Token);

        // The real wait (30 s here) ends at once on the processor's cancelled token.
        var settlement = await ServiceBusTransport.ProcessAsync(
            args,
            (_, _) => throw new IOException("storage away"),
            maxDeliveryCount: 5,
            new ServiceBusTransportOptions { RetryBaseDelay = TimeSpan.FromSeconds(30) }).WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(SettlementAction.Retry, settlement.Action);
        Assert.Equal(["abandon"], receiver.Calls);
    }

    [Fact]
    public async Task A_handler_dead_letter_keeps_its_reason()
    {
        var receiver = new RecordingReceiver();
        await ServiceBusTransport.ProcessAsync(Args(receiver, deliveryCount: 1), (_, _) => Task.FromResult(new Settlement(SettlementAction.DeadLetter, "not a chunk request")), maxDeliveryCount: 5);
        Assert.Equal(["deadletter:not a chunk request"], receiver.Calls);
        Assert.Equal("not a chunk request", receiver.Description);
    }

    [Fact]
    public async Task A_message_over_its_delivery_count_is_dead_lettered_without_running_the_handler_and_its_hook_told_first()
    {
        // The scorer process died on each of the 5 allowed deliveries (a native crash, an OOM kill): nothing settled
        // them. The queue's own maxDeliveryCount is one more (bicep), so the app sees a 6th delivery. Before, it was
        // scored a 6th time (and at the queue's count the broker dead-lettered it untold): the study waited out every
        // re-dispatch timeout.
        var receiver = new RecordingReceiver();
        var hook = new RecordingHook(receiver.Calls);
        var handlerRan = false;
        var settlement = await ServiceBusTransport.ProcessAsync(
            new ProcessMessageEventArgs(Received("s-c0001-a1", "{\"chunk\":1}", 6), receiver, CancellationToken.None),
            (_, _) =>
            {
                handlerRan = true;
                return Task.FromResult(Settlement.Complete);
            },
            maxDeliveryCount: 5,
            deadLetterHook: hook,
            queue: "slice-chunks");

        Assert.False(handlerRan);
        Assert.Equal(SettlementAction.DeadLetter, settlement.Action);
        Assert.Equal(["hook", "deadletter:delivered 6 times (max 5) without being settled: its handler kept failing or crashing"], receiver.Calls);
        var told = Assert.Single(hook.Told);
        Assert.Equal(("slice-chunks", "s-c0001-a1", "{\"chunk\":1}", 6, DeadLetterCause.OverDelivered, 5), (told.Queue, told.Message.MessageId, told.Message.Body, told.Message.DeliveryCount, told.Cause, told.MaxDeliveryCount));
        Assert.Equal("slice-chunks/$deadletterqueue (Service Bus), message s-c0001-a1, delivery 6", told.Location);

        // At or under the count the handler runs as before and nobody is told.
        var fifth = new RecordingReceiver();
        var quiet = new RecordingHook(fifth.Calls);
        await ServiceBusTransport.ProcessAsync(Args(fifth, deliveryCount: 5), (_, _) => Task.FromResult(Settlement.Complete), maxDeliveryCount: 5, deadLetterHook: quiet, queue: "slice-chunks");
        Assert.Equal(["complete"], fifth.Calls);
        Assert.Empty(quiet.Told);
    }

    [Fact]
    public async Task The_hook_is_told_of_a_last_delivery_that_threw_but_not_of_the_handler_s_own_dead_letter()
    {
        var receiver = new RecordingReceiver();
        var hook = new RecordingHook(receiver.Calls);
        await ServiceBusTransport.ProcessAsync(Args(receiver, deliveryCount: 5), (_, _) => throw new IOException("results queue away"), maxDeliveryCount: 5, deadLetterHook: hook, queue: "slice-chunks");
        Assert.Equal("hook", receiver.Calls[0]);
        Assert.StartsWith("deadletter:gave up after 5 deliveries", receiver.Calls[1], StringComparison.Ordinal);
        var told = Assert.Single(hook.Told);
        Assert.Equal(DeadLetterCause.FailedOnLastDelivery, told.Cause);
        Assert.Equal("gave up after 5 deliveries (max 5): IOException: results queue away", told.Reason);

        var refused = new RecordingReceiver();
        var notTold = new RecordingHook(refused.Calls);
        await ServiceBusTransport.ProcessAsync(Args(refused, deliveryCount: 1), (_, _) => Task.FromResult(new Settlement(SettlementAction.DeadLetter, "invalid chunk request: studyId is missing")), maxDeliveryCount: 5, deadLetterHook: notTold);
        Assert.Equal(["deadletter:invalid chunk request: studyId is missing"], refused.Calls);
        Assert.Empty(notTold.Told);
    }

    [Fact]
    public async Task A_hook_that_fails_is_logged_and_the_message_dead_lettered_all_the_same()
    {
        var receiver = new RecordingReceiver();
        var logger = new RecordingLogger();
        var settlement = await ServiceBusTransport.ProcessAsync(
            Args(receiver, deliveryCount: 6),
            (_, _) => Task.FromResult(Settlement.Complete),
            maxDeliveryCount: 5,
            logger: logger,
            deadLetterHook: new RecordingHook(receiver.Calls) { Fail = true },
            queue: "slice-chunks");

        Assert.Equal(SettlementAction.DeadLetter, settlement.Action);
        Assert.Equal(["hook", "deadletter:delivered 6 times (max 5) without being settled: its handler kept failing or crashing"], receiver.Calls);
        Assert.Contains(logger.Errors, w => w.Contains("telling its waiter failed (IOException: results queue away)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_handler_stopped_by_shutdown_abandons_its_message_for_another_replica()
    {
        var receiver = new RecordingReceiver();
        using var stopping = new CancellationTokenSource();
        await stopping.CancelAsync();
        var args = new ProcessMessageEventArgs(Received("m", "{}", 1), receiver, stopping.Token);

        var settlement = await ServiceBusTransport.ProcessAsync(args, (_, ct) => Task.FromCanceled<Settlement>(ct), maxDeliveryCount: 5);

        Assert.Equal(SettlementAction.Retry, settlement.Action);
        Assert.Equal(["abandon"], receiver.Calls);
    }

    [Fact]
    public void Both_transports_renew_a_running_message_for_the_same_bound()
    {
        Assert.Equal(SettlementPolicy.MaxLockRenewal, new ServiceBusTransportOptions().MaxAutoLockRenewalDuration);
        Assert.Equal(SettlementPolicy.MaxLockRenewal, new StorageQueueTransportOptions().MaxVisibilityRenewal);
        Assert.Equal(SettlementPolicy.MaxLockRenewal, ServiceBusTransport.CreateProcessorOptions(new ConsumerOptions(), new ServiceBusTransportOptions()).MaxAutoLockRenewalDuration);
    }

    [Fact]
    public void The_scorer_s_short_storage_queue_lock_does_not_reach_the_service_bus_processor()
    {
        // The scorer hands Scorer:MessageLockDuration (30 s by default, so a dead Storage-queue replica's chunk comes back
        // soon) to either consumer as ConsumerOptions.VisibilityTimeout. On Service Bus the lock is the queue's
        // lockDuration and the processor renews it for the same 30 min whatever that value is: a short one must not cut
        // a long chunk's renewal short, as the 5-min cap once did.
        var processor = ServiceBusTransport.CreateProcessorOptions(new ConsumerOptions { VisibilityTimeout = TimeSpan.FromSeconds(30), MaxConcurrency = 2 }, new ServiceBusTransportOptions());

        Assert.Equal(SettlementPolicy.MaxLockRenewal, processor.MaxAutoLockRenewalDuration);
        Assert.Equal(0, processor.PrefetchCount); // a dying replica holds no locks beyond the chunks it is scoring
    }

    [Fact]
    public async Task A_handler_still_running_at_the_lock_renewal_bound_is_warned_about_as_a_possible_second_run()
    {
        // Past the bound the processor stops renewing, the lock expires and another replica can take the chunk: the
        // handler keeps running (it may still finish in time), but the possible second run is logged, not silent.
        var logger = new RecordingLogger();
        var receiver = new RecordingReceiver();
        var settlement = await ServiceBusTransport.ProcessAsync(
            Args(receiver, deliveryCount: 1),
            async (_, _) =>
            {
                await logger.FirstWarning.Task.WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None);
                return Settlement.Complete;
            },
            maxDeliveryCount: 5,
            new ServiceBusTransportOptions { MaxAutoLockRenewalDuration = TimeSpan.FromMilliseconds(50) },
            logger: logger);

        Assert.Equal(SettlementAction.Complete, settlement.Action);
        Assert.Equal(["complete"], receiver.Calls);
        var warning = Assert.Single(logger.Warnings);
        Assert.Contains("m-1", warning, StringComparison.Ordinal);
        Assert.Contains("a second time", warning, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_settlement_refused_for_a_lost_lock_is_warned_about_not_thrown()
    {
        var logger = new RecordingLogger();
        var receiver = new RecordingReceiver { LoseLock = true };

        var settlement = await ServiceBusTransport.ProcessAsync(Args(receiver, deliveryCount: 2), (_, _) => Task.FromResult(Settlement.Complete), maxDeliveryCount: 5, logger: logger);

        Assert.Equal(SettlementAction.Complete, settlement.Action);
        var warning = Assert.Single(logger.Warnings);
        Assert.Contains("lock was lost", warning, StringComparison.Ordinal);
        Assert.Contains("a second time", warning, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Disposing_closes_the_processor_then_the_senders_then_an_owned_client()
    {
        var calls = new List<string>();
        var client = new RecordingClient(calls);
        var transport = new ServiceBusTransport(client, ownsClient: true);
        await transport.SendAsync("slice-results", new QueueMessage("r-1", "{}"), CancellationToken.None);
        using var stopping = new CancellationTokenSource();
        var run = transport.RunAsync("slice-chunks", (_, _) => Task.FromResult(Settlement.Complete), new ConsumerOptions(), stopping.Token);
        await client.Processor.Started.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // The host's stop: the worker's consumer stops its processor (the drain) ...
        await stopping.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.DoesNotContain("client.dispose", calls);

        // ... and the host disposes the transport afterwards.
        await transport.DisposeAsync();
        Assert.Equal(["sender.send", "processor.start", "processor.stop", "processor.dispose", "sender.dispose", "client.dispose"], calls);
    }

    [Fact]
    public async Task Disposing_while_a_processor_still_runs_stops_it_before_closing_the_senders_and_the_client()
    {
        var calls = new List<string>();
        var client = new RecordingClient(calls);
        var transport = new ServiceBusTransport(client, ownsClient: true);
        await transport.SendAsync("slice-results", new QueueMessage("r-1", "{}"), CancellationToken.None);
        using var stopping = new CancellationTokenSource();
        var run = transport.RunAsync("slice-chunks", (_, _) => Task.FromResult(Settlement.Complete), new ConsumerOptions(), stopping.Token);
        await client.Processor.Started.Task.WaitAsync(TimeSpan.FromSeconds(30));

        await transport.DisposeAsync();
        Assert.Equal(["sender.send", "processor.start", "processor.stop", "processor.dispose", "sender.dispose", "client.dispose"], calls);

        await stopping.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task A_client_the_transport_does_not_own_is_left_open()
    {
        var calls = new List<string>();
        var transport = new ServiceBusTransport(new RecordingClient(calls));
        await transport.SendAsync("slice-results", new QueueMessage("r-1", "{}"), CancellationToken.None);

        await transport.DisposeAsync();

        Assert.Equal(["sender.send", "sender.dispose"], calls);
    }

    [Fact]
    public async Task A_redelivered_message_runs_alone_after_the_running_one_and_holds_back_the_next()
    {
        // The processor hands the transport a message delivered before (its last holder may have died of it) while a
        // first delivery runs: it starts once that one has finished, and one handed over meanwhile waits for it.
        var gate = new DeliveryGate();
        var started = new ConcurrentQueue<string>();
        var (releaseFirst, suspectRunning, releaseSuspect) = (NewSignal(), NewSignal(), NewSignal());
        var first = ServiceBusTransport.ProcessAsync(new ProcessMessageEventArgs(Received("first", "{}", 1), new RecordingReceiver(), CancellationToken.None), async (m, _) =>
        {
            started.Enqueue(m.MessageId);
            await releaseFirst.Task;
            return Settlement.Complete;
        }, maxDeliveryCount: 5, gate: gate);
        var suspect = ServiceBusTransport.ProcessAsync(new ProcessMessageEventArgs(Received("suspect", "{}", 2), new RecordingReceiver(), CancellationToken.None), async (m, _) =>
        {
            started.Enqueue(m.MessageId);
            suspectRunning.TrySetResult();
            await releaseSuspect.Task;
            return Settlement.Complete;
        }, maxDeliveryCount: 5, gate: gate);
        var later = ServiceBusTransport.ProcessAsync(new ProcessMessageEventArgs(Received("later", "{}", 1), new RecordingReceiver(), CancellationToken.None), (m, _) =>
        {
            started.Enqueue(m.MessageId);
            return Task.FromResult(Settlement.Complete);
        }, maxDeliveryCount: 5, gate: gate);

        Assert.Equal(["first"], started);
        releaseFirst.TrySetResult();
        await first.WaitAsync(TimeSpan.FromSeconds(30));
        await suspectRunning.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(["first", "suspect"], started); // alone: the later one still waits
        Assert.False(later.IsCompleted);

        releaseSuspect.TrySetResult();
        await Task.WhenAll(suspect, later).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(["first", "suspect", "later"], started);
        Assert.Equal(0, gate.Running);
    }

    [Fact]
    public async Task A_redelivered_message_still_waiting_when_the_processor_stops_is_abandoned_unstarted()
    {
        var gate = new DeliveryGate();
        using var running = gate.Admit(1);
        await running.WaitAsync(CancellationToken.None);
        var receiver = new RecordingReceiver();
        using var stopping = new CancellationTokenSource();
        var ran = false;
        var waiting = ServiceBusTransport.ProcessAsync(new ProcessMessageEventArgs(Received("suspect", "{}", 2), receiver, stopping.Token), (_, _) =>
        {
            ran = true;
            return Task.FromResult(Settlement.Complete);
        }, maxDeliveryCount: 5, gate: gate);

        await stopping.CancelAsync();
        var settlement = await waiting.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.False(ran);
        Assert.Equal(SettlementAction.Retry, settlement.Action);
        Assert.Equal(["abandon"], receiver.Calls);
        Assert.Equal(1, gate.Running); // only the one still running
    }

    [Fact]
    public async Task A_redelivered_message_waiting_out_its_retry_delay_holds_no_other_message_back()
    {
        // Its handler failed (a retry): the wait before the abandon holds its processor slot on purpose, so that the
        // other slot keeps the model busy, but it no longer runs anything that could kill the process. Before, the gate
        // let it go only after the wait and the abandon, so a message handed over meanwhile waited too (up to the 30-s
        // cap), and the replica's other slot idled.
        var gate = new DeliveryGate();
        var (waitingOut, endWait) = (NewSignal(), NewSignal());
        var suspectReceiver = new RecordingReceiver();
        var suspect = ServiceBusTransport.ProcessAsync(
            new ProcessMessageEventArgs(Received("suspect", "{}", 2), suspectReceiver, CancellationToken.None),
            (_, _) => throw new IOException("tiles unreachable"),
            maxDeliveryCount: 5,
            delay: async (_, _) =>
            {
                waitingOut.TrySetResult();
                await endWait.Task;
            },
            gate: gate);
        await waitingOut.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var next = await ServiceBusTransport.ProcessAsync(
            new ProcessMessageEventArgs(Received("next", "{}", 1), new RecordingReceiver(), CancellationToken.None),
            (_, _) => Task.FromResult(Settlement.Complete),
            maxDeliveryCount: 5,
            gate: gate).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(SettlementAction.Complete, next.Action);
        Assert.False(suspect.IsCompleted); // still waiting out its delay, its slot held
        Assert.Empty(suspectReceiver.Calls);
        endWait.TrySetResult();
        Assert.Equal(SettlementAction.Retry, (await suspect.WaitAsync(TimeSpan.FromSeconds(30))).Action);
        Assert.Equal(["abandon"], suspectReceiver.Calls);
        Assert.Equal(0, gate.Running);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static Task NoWait(TimeSpan wait, CancellationToken cancellationToken) => Task.CompletedTask;

    private static ServiceBusReceivedMessage Received(string id, string body, int deliveryCount) =>
        ServiceBusModelFactory.ServiceBusReceivedMessage(body: BinaryData.FromString(body), messageId: id, deliveryCount: deliveryCount, lockTokenGuid: Guid.NewGuid());

    private static ProcessMessageEventArgs Args(RecordingReceiver receiver, int deliveryCount) =>
        new(Received("m-" + deliveryCount, "{}", deliveryCount), receiver, CancellationToken.None);

    /// <summary>Records each call into the receiver's call list (so the order against the settlement shows); may fail.</summary>
    private sealed class RecordingHook(List<string> calls) : IDeadLetterHook
    {
        public bool Fail { get; init; }

        public List<DeadLetteredMessage> Told { get; } = [];

        public Task OnDeadLetteredAsync(DeadLetteredMessage deadLettered, CancellationToken cancellationToken)
        {
            calls.Add("hook");
            Told.Add(deadLettered);
            return Fail ? Task.FromException(new IOException("results queue away")) : Task.CompletedTask;
        }
    }

    /// <summary>Records what the processor's settlement methods asked of the receiver.</summary>
    private sealed class RecordingReceiver : ServiceBusReceiver
    {
        public List<string> Calls { get; } = [];

        public string? Description { get; private set; }

        /// <summary>Completing fails as the broker answers a message whose lock expired.</summary>
        public bool LoseLock { get; init; }

        public override Task CompleteMessageAsync(ServiceBusReceivedMessage message, CancellationToken cancellationToken = default)
        {
            if (LoseLock)
            {
                throw new ServiceBusException("The lock supplied is invalid.", ServiceBusFailureReason.MessageLockLost);
            }

            Calls.Add("complete");
            return Task.CompletedTask;
        }

        public override Task AbandonMessageAsync(ServiceBusReceivedMessage message, IDictionary<string, object>? propertiesToModify = null, CancellationToken cancellationToken = default)
        {
            Calls.Add("abandon");
            return Task.CompletedTask;
        }

        public override Task DeadLetterMessageAsync(ServiceBusReceivedMessage message, string deadLetterReason, string? deadLetterErrorDescription = null, CancellationToken cancellationToken = default)
        {
            Calls.Add("deadletter:" + deadLetterReason);
            Description = deadLetterErrorDescription;
            return Task.CompletedTask;
        }

        public override Task DeadLetterMessageAsync(ServiceBusReceivedMessage message, IDictionary<string, object>? propertiesToModify, string? deadLetterReason, string? deadLetterErrorDescription = null, CancellationToken cancellationToken = default)
        {
            Calls.Add("deadletter:" + deadLetterReason);
            Description = deadLetterErrorDescription;
            return Task.CompletedTask;
        }
    }

    /// <summary>Records warnings (the text as formatted).</summary>
    internal sealed class RecordingLogger : ILogger
    {
        public List<string> Warnings { get; } = [];

        public List<string> Errors { get; } = [];

        public TaskCompletionSource FirstWarning { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Error)
            {
                lock (Errors)
                {
                    Errors.Add(formatter(state, exception));
                }
            }

            if (logLevel != LogLevel.Warning)
            {
                return;
            }

            lock (Warnings)
            {
                Warnings.Add(formatter(state, exception));
            }

            FirstWarning.TrySetResult();
        }
    }

    /// <summary>A client whose processor and senders record their lifetime calls into one list.</summary>
    private sealed class RecordingClient(List<string> calls) : ServiceBusClient
    {
        public RecordingProcessor Processor { get; } = new(calls);

        public override ServiceBusProcessor CreateProcessor(string queueName, ServiceBusProcessorOptions options) => Processor;

        public override ServiceBusSender CreateSender(string queueOrTopicName) => new RecordingSender(calls);

        public override ValueTask DisposeAsync()
        {
            Record(calls, "client.dispose");
            return ValueTask.CompletedTask;
        }
    }

    private sealed class RecordingProcessor(List<string> calls) : ServiceBusProcessor
    {
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override Task StartProcessingAsync(CancellationToken cancellationToken = default)
        {
            Record(calls, "processor.start");
            Started.TrySetResult();
            return Task.CompletedTask;
        }

        public override Task StopProcessingAsync(CancellationToken cancellationToken = default)
        {
            Record(calls, "processor.stop");
            return Task.CompletedTask;
        }

        // ServiceBusProcessor.DisposeAsync is not virtual; it closes the processor through CloseAsync.
        public override Task CloseAsync(CancellationToken cancellationToken = default)
        {
            Record(calls, "processor.dispose");
            return Task.CompletedTask;
        }
    }

    private sealed class RecordingSender(List<string> calls) : ServiceBusSender
    {
        public override Task SendMessageAsync(ServiceBusMessage message, CancellationToken cancellationToken = default)
        {
            Record(calls, "sender.send");
            return Task.CompletedTask;
        }

        public override ValueTask DisposeAsync()
        {
            Record(calls, "sender.dispose");
            return ValueTask.CompletedTask;
        }
    }

    private static void Record(List<string> calls, string call)
    {
        lock (calls)
        {
            calls.Add(call);
        }
    }
}
