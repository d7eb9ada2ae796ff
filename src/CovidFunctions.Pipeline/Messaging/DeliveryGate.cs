using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Messaging;

/// <summary>
/// Who may start on a consumer's replica: a message delivered before (<see cref="IsSuspect"/>: delivery count above 1,
/// so a previous holder did not settle it, perhaps because handling it killed the process) runs alone. It starts once
/// every message that started before it has finished, and nothing else starts while it waits or runs; the transport
/// takes no other message meanwhile (<see cref="WaitUntilNoSuspectAsync"/>). A crash during it is then its own: a
/// healthy message that happened to run beside a poison one pays one failed delivery, and on its redelivery (a suspect
/// itself) it runs alone and succeeds, instead of being dead-lettered with the poison one and failing its study.
/// <para>
/// One FIFO of admissions (<see cref="Admit"/>), so nothing starves: a first delivery admitted before a suspect starts
/// at once; one admitted after it waits until the suspects ahead of it have run; two suspects run one after the other.
/// A suspect waits for running messages only, never for a waiting one, so two suspects arriving together cannot
/// deadlock. How many messages a replica holds at once stays the transport's own count (its concurrency slots).
/// </para>
/// <para>
/// A handler that has run <see cref="HungAfter"/> (<see cref="DefaultHungAfter"/>, 2 min, unless the consumer's
/// <see cref="ConsumerOptions.HungAfter"/> says otherwise) is taken as hung, logged (event 2401), and holds nothing back
/// any more: a suspect waiting for it starts beside it, and a suspect that has run that long lets the others start and
/// the transport receive again. Without the bound a suspect behind a hung handler waited until that handler ended, up
/// to the 30-min lock renewal, holding its own message (and, on a Storage queue, the replica's receiving) all that
/// while, and past the orchestrator's chunk timeout. Running it anyway, not giving it back, is the choice that costs
/// nothing: giving it back counts one more delivery toward dead-lettering every time, and the suspect is likely to
/// land behind the same hung handler again; run beside it, the suspect keeps its delivery count, and only if it kills
/// the process does the hung handler's message pay one delivery (docs/design/failure-semantics.md, "A redelivered
/// chunk runs alone").
/// </para>
/// <para>
/// State: each admission not yet left, in arrival order, with where it stands (waiting, running, hung). Every rule
/// reads it directly (how many run, whether a suspect waits or runs); a replica holds a handful of messages, so there
/// is no count kept beside the list to drift from it.
/// </para>
/// </summary>
public sealed partial class DeliveryGate
{
    /// <summary>
    /// How long a handler runs before the gate takes it as hung. A chunk scores in about a second on a GPU and about 9 s
    /// on a 2-core CPU (32 slices at 0.27 s, docs/benchmarks.md), so 2 min is far past a slow healthy chunk; and it is a
    /// fifth of the orchestrator's default <c>Pipeline:ChunkTimeout</c> (10 min; 20 min in Azure), so a suspect held
    /// behind a hung handler is still scored before its chunk is dispatched again, even after a few crash redeliveries
    /// (20-30 s each). Far below <c>SettlementPolicy.MaxLockRenewal</c> (30 min): the waiting suspect's own lock never
    /// runs out while it waits. The scorer's <c>Scorer:HungChunkAfter</c> sets it.
    /// </summary>
    public static readonly TimeSpan DefaultHungAfter = TimeSpan.FromMinutes(2);

    private readonly Lock _lock = new();

    // Admitted and not yet left, in arrival order: waiting ones are the FIFO, running and hung ones what they wait for.
    private readonly List<Admission> _admitted = [];
    private readonly List<TaskCompletionSource> _clearWaiters = [];
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    /// <summary>A gate whose handlers count as hung after <see cref="DefaultHungAfter"/>.</summary>
    public DeliveryGate()
        : this(DefaultHungAfter)
    {
    }

    /// <summary>
    /// A gate whose handlers count as hung after <paramref name="hungAfter"/> (<see cref="Timeout.InfiniteTimeSpan"/>:
    /// never; a suspect then waits as long as the handlers before it run). <paramref name="logger"/> is told of each
    /// handler taken as hung.
    /// </summary>
    public DeliveryGate(TimeSpan hungAfter, TimeProvider? time = null, ILogger? logger = null)
    {
        if (hungAfter <= TimeSpan.Zero && hungAfter != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(hungAfter), hungAfter, "must be positive, or Timeout.InfiniteTimeSpan");
        }

        HungAfter = hungAfter;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
    }

    internal enum Turn
    {
        /// <summary>Admitted, not started: in the FIFO.</summary>
        Waiting,

        /// <summary>Started, not finished, short of the bound: a waiting suspect waits for it; a suspect here runs alone.</summary>
        Running,

        /// <summary>Started, not finished, past the bound: holds nothing back.</summary>
        Hung,

        /// <summary>Disposed: finished, or withdrawn before it started.</summary>
        Left,
    }

    /// <summary>How long a handler runs before it holds nothing back (see the class summary).</summary>
    public TimeSpan HungAfter { get; }

    /// <summary>Delivered before: a previous holder neither settled it nor gave it back (or its handler failed).</summary>
    public static bool IsSuspect(int deliveryCount) => deliveryCount > 1;

    /// <summary>Messages started and not yet finished, hung ones included (a test's view).</summary>
    public int Running
    {
        get
        {
            lock (_lock)
            {
                return _admitted.Count(a => a.Turn is Turn.Running or Turn.Hung);
            }
        }
    }

    /// <summary>Messages started and not yet finished that have run <see cref="HungAfter"/> (a test's view).</summary>
    public int Hung
    {
        get
        {
            lock (_lock)
            {
                return _admitted.Count(a => a.Turn == Turn.Hung);
            }
        }
    }

    /// <summary>
    /// Registers a message just received, in arrival order. Call it at once, before anything awaits (the transport's
    /// receive loop asks <see cref="WaitUntilNoSuspectAsync"/> next); then <see cref="Admission.WaitAsync"/> before its
    /// handler starts, and dispose the admission when the handler has finished (or when the message is settled
    /// without running it). <paramref name="messageId"/> names it in the hung-handler warning (a deterministic id: the
    /// study and chunk, never a patient's name).
    /// </summary>
    public Admission Admit(int deliveryCount, string? messageId = null)
    {
        var admission = new Admission(this, IsSuspect(deliveryCount), deliveryCount, messageId);
        lock (_lock)
        {
            _admitted.Add(admission);
            Pump();
        }

        return admission;
    }

    /// <summary>
    /// Completes when no suspect waits or runs (short of <see cref="HungAfter"/>): the transport may take another message. Cancelled by
    /// <paramref name="cancellationToken"/> (the consumer stopping).
    /// </summary>
    public Task WaitUntilNoSuspectAsync(CancellationToken cancellationToken)
    {
        TaskCompletionSource waiter;
        lock (_lock)
        {
            if (!SuspectWaitingOrRunning())
            {
                return Task.CompletedTask;
            }

            waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _clearWaiters.Add(waiter);
        }

        return waiter.Task.WaitAsync(cancellationToken);
    }

    private void Leave(Admission admission)
    {
        ITimer? timer;
        lock (_lock)
        {
            timer = admission.HungTimer;
            admission.HungTimer = null;
            admission.Turn = Turn.Left;
            _admitted.Remove(admission);
            Pump();
        }

        timer?.Dispose();
    }

    /// <summary>The handler has run <see cref="HungAfter"/> and still runs: it holds nothing back from now on.</summary>
    private void OnHung(Admission admission)
    {
        TimeSpan ran;
        int waiting;
        lock (_lock)
        {
            // Finished (or withdrawn) just as its timer fired: nothing to release.
            if (admission.Turn != Turn.Running)
            {
                return;
            }

            admission.Turn = Turn.Hung;
            ran = _time.GetElapsedTime(admission.StartedAt);
            waiting = _admitted.Count(a => a.Turn == Turn.Waiting);
            Pump();
        }

        // Outside the lock: a logging provider may take its time.
        Log.TakenAsHung(_logger, admission.MessageId ?? "(no id)", admission.DeliveryCount, ran.TotalSeconds, HungAfter.TotalSeconds, waiting);
    }

    /// <summary>Starts whoever may start now, in order; then tells the receive loop when the suspects are done. Under the lock.</summary>
    private void Pump()
    {
        // The list changes only in Admit and Leave, not here: a turn is a field of its admission.
        foreach (var next in _admitted)
        {
            if (next.Turn != Turn.Waiting)
            {
                continue;
            }

            // The first one waiting: nothing starts beside a running suspect, and a suspect starts only once nothing
            // runs (hung ones aside). Whatever waits behind it waits for it: FIFO, so nothing starves.
            if (AnyRunning(suspectsOnly: true) || (next.Suspect && AnyRunning(suspectsOnly: false)))
            {
                break;
            }

            next.Turn = Turn.Running;
            next.StartedAt = _time.GetTimestamp();
            if (HungAfter != Timeout.InfiniteTimeSpan)
            {
                next.HungTimer = _time.CreateTimer(static state => ((Admission)state!).OnHung(), next, HungAfter, Timeout.InfiniteTimeSpan);
            }

            next.Started.TrySetResult();
        }

        if (_clearWaiters.Count > 0 && !SuspectWaitingOrRunning())
        {
            foreach (var waiter in _clearWaiters)
            {
                waiter.TrySetResult();
            }

            _clearWaiters.Clear();
        }
    }

    /// <summary>Started, not finished and not hung (of suspects only, when asked). Under the lock.</summary>
    private bool AnyRunning(bool suspectsOnly) => _admitted.Exists(a => a.Turn == Turn.Running && (a.Suspect || !suspectsOnly));

    /// <summary>A suspect waits, or runs short of the bound: the transport takes nothing more. Under the lock.</summary>
    private bool SuspectWaitingOrRunning() => _admitted.Exists(a => a.Suspect && a.Turn is Turn.Waiting or Turn.Running);

    /// <summary>One received message's place in the gate.</summary>
    public sealed class Admission : IDisposable
    {
        private readonly DeliveryGate _gate;
        private int _disposed;

        internal Admission(DeliveryGate gate, bool suspect, int deliveryCount, string? messageId)
        {
            _gate = gate;
            Suspect = suspect;
            DeliveryCount = deliveryCount;
            MessageId = messageId;
        }

        /// <summary>This message runs alone (<see cref="IsSuspect"/>).</summary>
        public bool Suspect { get; }

        internal int DeliveryCount { get; }

        internal string? MessageId { get; }

        /// <summary>Where it stands; read and written under the gate's lock.</summary>
        internal Turn Turn { get; set; }

        /// <summary>When it started (<see cref="TimeProvider.GetTimestamp"/>): the hung warning says how long it ran.</summary>
        internal long StartedAt { get; set; }

        internal ITimer? HungTimer { get; set; }

        internal TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        internal void OnHung() => _gate.OnHung(this);

        /// <summary>Completes when this message may start; cancelled by <paramref name="cancellationToken"/> (dispose it then).</summary>
        public Task WaitAsync(CancellationToken cancellationToken) => Started.Task.WaitAsync(cancellationToken);

        /// <summary>Finished, or withdrawn before it started: the next in line may start.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                _gate.Leave(this);
            }
        }
    }

    private static partial class Log
    {
        // 24xx: the domain's messaging (the other Pipeline blocks are orchestration 20-21, scoring 22, relay 23, reports 26).
        [LoggerMessage(EventId = 2401, Level = LogLevel.Warning, Message = "Message {MessageId} (delivery {DeliveryCount}) has run {Seconds:0} s, past the hung-handler bound of {BoundSeconds:0} s: taken as hung, it no longer holds other messages back ({Waiting} waiting), so one that could kill the process may now run beside it; it keeps running and keeps its message")]
        public static partial void TakenAsHung(ILogger logger, string messageId, int deliveryCount, double seconds, double boundSeconds, int waiting);
    }
}
