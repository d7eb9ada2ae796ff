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
/// A handler that has run <see cref="HungAfter"/> (<see cref="DefaultHungAfter"/>, 2 min) is taken as hung and holds
/// nothing back any more: a suspect waiting for it starts beside it, and a suspect that has run that long lets the
/// others start and the transport receive again. Without the bound a suspect behind a hung handler waited until that
/// handler ended, up to the 30-min lock renewal, holding its own message (and, on a Storage queue, the replica's
/// receiving) all that while, and past the orchestrator's chunk timeout. Running it anyway, not giving it back, is the
/// choice that costs nothing: giving it back counts one more delivery toward dead-lettering every time, and the suspect
/// is likely to land behind the same hung handler again; run beside it, the suspect keeps its delivery count, and only
/// if it kills the process does the hung handler's message pay one delivery (docs/design/failure-semantics.md, "A
/// redelivered chunk runs alone").
/// </para>
/// </summary>
public sealed class DeliveryGate
{
    /// <summary>
    /// How long a handler runs before the gate takes it as hung. A chunk scores in about a second on a GPU and about 9 s
    /// on a 2-core CPU (32 slices at 0.27 s, docs/benchmarks.md), so 2 min is far past a slow healthy chunk; and it is a
    /// fifth of the orchestrator's default <c>Pipeline:ChunkTimeout</c> (10 min; 20 min in Azure), so a suspect held
    /// behind a hung handler is still scored before its chunk is dispatched again, even after a few crash redeliveries
    /// (20-30 s each). Far below <c>SettlementPolicy.MaxLockRenewal</c> (30 min): the waiting suspect's own lock never
    /// runs out while it waits.
    /// </summary>
    public static readonly TimeSpan DefaultHungAfter = TimeSpan.FromMinutes(2);

    private readonly Lock _lock = new();
    private readonly LinkedList<Admission> _waiting = new();
    private readonly List<TaskCompletionSource> _clearWaiters = [];
    private readonly TimeProvider _time;
    private int _running;

    // Started, not finished and not yet hung: what a waiting suspect waits for.
    private int _holding;
    private int _suspectsWaiting;

    // Suspects started, not finished and not yet hung: while one is, nothing else starts and the transport receives nothing.
    private int _suspectsHolding;

    /// <summary>A gate whose handlers count as hung after <see cref="DefaultHungAfter"/>.</summary>
    public DeliveryGate()
        : this(DefaultHungAfter)
    {
    }

    /// <summary>
    /// A gate whose handlers count as hung after <paramref name="hungAfter"/> (<see cref="Timeout.InfiniteTimeSpan"/>:
    /// never; a suspect then waits as long as the handlers before it run).
    /// </summary>
    public DeliveryGate(TimeSpan hungAfter, TimeProvider? time = null)
    {
        if (hungAfter <= TimeSpan.Zero && hungAfter != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(hungAfter), hungAfter, "must be positive, or Timeout.InfiniteTimeSpan");
        }

        HungAfter = hungAfter;
        _time = time ?? TimeProvider.System;
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
                return _running;
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
                return _running - _holding;
            }
        }
    }

    /// <summary>
    /// Registers a message just received, in arrival order. Call it at once, before anything awaits (the transport's
    /// receive loop asks <see cref="WaitUntilNoSuspectAsync"/> next); then <see cref="Admission.WaitAsync"/> before its
    /// handler starts, and dispose the admission when the handler has finished (or when the message is settled
    /// without running it).
    /// </summary>
    public Admission Admit(int deliveryCount)
    {
        var admission = new Admission(this, IsSuspect(deliveryCount));
        lock (_lock)
        {
            admission.Node = _waiting.AddLast(admission);
            if (admission.Suspect)
            {
                _suspectsWaiting++;
            }

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
            if (_suspectsWaiting == 0 && _suspectsHolding == 0)
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
            if (admission.Node is { } node)
            {
                // Withdrawn before it started (cancelled, or settled without running).
                _waiting.Remove(node);
                admission.Node = null;
                if (admission.Suspect)
                {
                    _suspectsWaiting--;
                }
            }
            else if (admission.Started)
            {
                _running--;
                if (!admission.Hung)
                {
                    Release(admission);
                }

                admission.Finished = true;
            }

            Pump();
        }

        timer?.Dispose();
    }

    /// <summary>The handler has run <see cref="HungAfter"/> and still runs: it holds nothing back from now on.</summary>
    private void OnHung(Admission admission)
    {
        lock (_lock)
        {
            if (!admission.Started || admission.Finished || admission.Hung)
            {
                return;
            }

            admission.Hung = true;
            Release(admission);
            Pump();
        }
    }

    /// <summary>A running admission stops holding anything back (finished, or hung). Under the lock.</summary>
    private void Release(Admission admission)
    {
        _holding--;
        if (admission.Suspect)
        {
            _suspectsHolding--;
        }
    }

    /// <summary>Starts whoever may start now, in order; then tells the receive loop when the suspects are done. Under the lock.</summary>
    private void Pump()
    {
        while (_suspectsHolding == 0 && _waiting.First is { } first)
        {
            var next = first.Value;
            if (next.Suspect && _holding > 0)
            {
                break;
            }

            _waiting.RemoveFirst();
            next.Node = null;
            next.Started = true;
            _running++;
            _holding++;
            if (next.Suspect)
            {
                _suspectsWaiting--;
                _suspectsHolding++;
            }

            if (HungAfter != Timeout.InfiniteTimeSpan)
            {
                next.HungTimer = _time.CreateTimer(static state => ((Admission)state!).OnHung(), next, HungAfter, Timeout.InfiniteTimeSpan);
            }

            next.Turn.TrySetResult();
        }

        if (_suspectsWaiting == 0 && _suspectsHolding == 0 && _clearWaiters.Count > 0)
        {
            foreach (var waiter in _clearWaiters)
            {
                waiter.TrySetResult();
            }

            _clearWaiters.Clear();
        }
    }

    /// <summary>One received message's place in the gate.</summary>
    public sealed class Admission : IDisposable
    {
        private readonly DeliveryGate _gate;
        private int _disposed;

        internal Admission(DeliveryGate gate, bool suspect)
        {
            _gate = gate;
            Suspect = suspect;
        }

        /// <summary>This message runs alone (<see cref="IsSuspect"/>).</summary>
        public bool Suspect { get; }

        internal LinkedListNode<Admission>? Node { get; set; }

        internal bool Started { get; set; }

        internal bool Finished { get; set; }

        /// <summary>Ran <see cref="HungAfter"/> without finishing: no longer holds anything back.</summary>
        internal bool Hung { get; set; }

        internal ITimer? HungTimer { get; set; }

        internal TaskCompletionSource Turn { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        internal void OnHung() => _gate.OnHung(this);

        /// <summary>Completes when this message may start; cancelled by <paramref name="cancellationToken"/> (dispose it then).</summary>
        public Task WaitAsync(CancellationToken cancellationToken) => Turn.Task.WaitAsync(cancellationToken);

        /// <summary>Finished, or withdrawn before it started: the next in line may start.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                _gate.Leave(this);
            }
        }
    }
}
