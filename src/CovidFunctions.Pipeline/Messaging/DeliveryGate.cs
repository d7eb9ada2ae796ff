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
/// </summary>
public sealed class DeliveryGate
{
    private readonly Lock _lock = new();
    private readonly LinkedList<Admission> _waiting = new();
    private readonly List<TaskCompletionSource> _clearWaiters = [];
    private int _running;
    private int _suspectsWaiting;
    private bool _suspectRunning;

    /// <summary>Delivered before: a previous holder neither settled it nor gave it back (or its handler failed).</summary>
    public static bool IsSuspect(int deliveryCount) => deliveryCount > 1;

    /// <summary>Messages started and not yet finished (a test's view).</summary>
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
    /// Completes when no suspect waits or runs: the transport may take another message. Cancelled by
    /// <paramref name="cancellationToken"/> (the consumer stopping).
    /// </summary>
    public Task WaitUntilNoSuspectAsync(CancellationToken cancellationToken)
    {
        TaskCompletionSource waiter;
        lock (_lock)
        {
            if (_suspectsWaiting == 0 && !_suspectRunning)
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
        lock (_lock)
        {
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
                if (admission.Suspect)
                {
                    _suspectRunning = false;
                }
            }

            Pump();
        }
    }

    /// <summary>Starts whoever may start now, in order; then tells the receive loop when the suspects are done. Under the lock.</summary>
    private void Pump()
    {
        while (!_suspectRunning && _waiting.First is { } first)
        {
            var next = first.Value;
            if (next.Suspect && _running > 0)
            {
                break;
            }

            _waiting.RemoveFirst();
            next.Node = null;
            next.Started = true;
            _running++;
            if (next.Suspect)
            {
                _suspectsWaiting--;
                _suspectRunning = true;
            }

            next.Turn.TrySetResult();
        }

        if (_suspectsWaiting == 0 && !_suspectRunning && _clearWaiters.Count > 0)
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

        internal TaskCompletionSource Turn { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

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
