using CovidFunctions.Pipeline.Messaging;

namespace CovidFunctions.Pipeline.Azure.Tests.Messaging;

/// <summary>
/// The slot rules of <see cref="DeliveryGate"/> on their own (no queue): a redelivered message starts only when nothing
/// else runs and holds back what came after it, two of them run one after the other without deadlock, nothing starves,
/// a consumer stopping withdraws a waiting message, and a handler that has run the gate's bound (HungAfter) holds nothing
/// back any more. The bound here is short; the transport-level test with the default is HungHandlerTests (Azurite).
/// </summary>
public sealed class DeliveryGateTests
{
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_redelivered_message_waits_for_the_running_ones_and_holds_back_what_came_after_it()
    {
        var gate = new DeliveryGate();
        var first = gate.Admit(1);
        await first.WaitAsync(CancellationToken.None).WaitAsync(Soon); // a first delivery starts at once
        var suspect = gate.Admit(2);
        var later = gate.Admit(1);
        var receiving = gate.WaitUntilNoSuspectAsync(CancellationToken.None);

        Assert.False(suspect.WaitAsync(CancellationToken.None).IsCompleted);
        Assert.False(later.WaitAsync(CancellationToken.None).IsCompleted);
        Assert.False(receiving.IsCompleted); // the transport takes nothing more

        first.Dispose();
        await suspect.WaitAsync(CancellationToken.None).WaitAsync(Soon);
        Assert.Equal(1, gate.Running);
        Assert.False(later.WaitAsync(CancellationToken.None).IsCompleted); // nothing starts beside it
        Assert.False(receiving.IsCompleted);

        suspect.Dispose();
        await later.WaitAsync(CancellationToken.None).WaitAsync(Soon);
        await receiving.WaitAsync(Soon);
        later.Dispose();
        Assert.Equal(0, gate.Running);
    }

    [Fact]
    public async Task Two_redelivered_messages_arriving_together_run_one_after_the_other()
    {
        var gate = new DeliveryGate();
        var a = gate.Admit(3);
        var b = gate.Admit(2);

        await a.WaitAsync(CancellationToken.None).WaitAsync(Soon);
        Assert.False(b.WaitAsync(CancellationToken.None).IsCompleted);
        a.Dispose();
        await b.WaitAsync(CancellationToken.None).WaitAsync(Soon);
        Assert.Equal(1, gate.Running);
        b.Dispose();
        await gate.WaitUntilNoSuspectAsync(CancellationToken.None).WaitAsync(Soon);
    }

    [Fact]
    public async Task A_waiting_message_withdrawn_when_the_consumer_stops_lets_the_rest_go_on()
    {
        var gate = new DeliveryGate();
        var running = gate.Admit(1);
        var suspect = gate.Admit(2);
        var behind = gate.Admit(1);
        using var stopping = new CancellationTokenSource();
        var waiting = suspect.WaitAsync(stopping.Token);

        await stopping.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        suspect.Dispose(); // the transport gives the message back and leaves the gate

        await behind.WaitAsync(CancellationToken.None).WaitAsync(Soon);
        await gate.WaitUntilNoSuspectAsync(CancellationToken.None).WaitAsync(Soon);
        Assert.Equal(2, gate.Running);
        running.Dispose();
        behind.Dispose();
        behind.Dispose(); // disposing twice counts once
        Assert.Equal(0, gate.Running);
    }

    [Fact]
    public async Task First_deliveries_run_side_by_side()
    {
        var gate = new DeliveryGate();
        var a = gate.Admit(1);
        var b = gate.Admit(1);

        await Task.WhenAll(a.WaitAsync(CancellationToken.None), b.WaitAsync(CancellationToken.None)).WaitAsync(Soon);
        Assert.Equal(2, gate.Running);
        Assert.True(gate.WaitUntilNoSuspectAsync(CancellationToken.None).IsCompleted);
        a.Dispose();
        b.Dispose();
    }

    [Fact]
    public async Task A_redelivered_message_behind_a_hung_handler_starts_beside_it_once_that_handler_has_run_the_bound()
    {
        // Before: it waited until the hung handler ended (in production up to the 30-min lock renewal), and the
        // transport received nothing meanwhile.
        var gate = new DeliveryGate(TimeSpan.FromMilliseconds(300));
        var hung = gate.Admit(1);
        await hung.WaitAsync(CancellationToken.None).WaitAsync(Soon);
        var suspect = gate.Admit(2);
        var later = gate.Admit(1);
        var receiving = gate.WaitUntilNoSuspectAsync(CancellationToken.None);

        await suspect.WaitAsync(CancellationToken.None).WaitAsync(Soon); // the hung handler has not finished
        Assert.Equal(2, gate.Running);
        Assert.Equal(1, gate.Hung);
        Assert.False(later.WaitAsync(CancellationToken.None).IsCompleted); // the suspect still runs alone among the live ones
        Assert.False(receiving.IsCompleted);

        suspect.Dispose();
        await later.WaitAsync(CancellationToken.None).WaitAsync(Soon);
        await receiving.WaitAsync(Soon);
        later.Dispose();
        hung.Dispose(); // it ends at last: counted once
        Assert.Equal(0, gate.Running);
        Assert.Equal(0, gate.Hung);
    }

    [Fact]
    public async Task A_redelivered_message_that_hangs_stops_holding_back_the_rest_once_it_has_run_the_bound()
    {
        // Before: nothing else started and the Storage-queue transport received nothing until the hung suspect ended.
        var gate = new DeliveryGate(TimeSpan.FromMilliseconds(300));
        var suspect = gate.Admit(2);
        await suspect.WaitAsync(CancellationToken.None).WaitAsync(Soon);
        var behind = gate.Admit(1);

        await gate.WaitUntilNoSuspectAsync(CancellationToken.None).WaitAsync(Soon);
        await behind.WaitAsync(CancellationToken.None).WaitAsync(Soon);
        Assert.Equal(2, gate.Running);

        behind.Dispose();
        suspect.Dispose();
        Assert.Equal(0, gate.Running);
    }

    [Fact]
    public async Task A_handler_that_finished_within_the_bound_is_not_counted_again_when_its_bound_passes()
    {
        var gate = new DeliveryGate(TimeSpan.FromMilliseconds(200));
        var first = gate.Admit(1);
        await first.WaitAsync(CancellationToken.None).WaitAsync(Soon);
        first.Dispose();
        await Task.Delay(TimeSpan.FromMilliseconds(600)); // past its bound: a timer left running must not touch the counts
        Assert.Equal((0, 0), (gate.Running, gate.Hung));

        var suspect = gate.Admit(2);
        await suspect.WaitAsync(CancellationToken.None).WaitAsync(Soon);
        suspect.Dispose();
        Assert.Equal((0, 0), (gate.Running, gate.Hung));
    }

    [Fact]
    public void The_default_bound_is_two_minutes_and_a_bound_must_be_positive_or_infinite()
    {
        Assert.Equal(TimeSpan.FromMinutes(2), new DeliveryGate().HungAfter);
        Assert.Equal(Timeout.InfiniteTimeSpan, new DeliveryGate(Timeout.InfiniteTimeSpan).HungAfter);
        Assert.Throws<ArgumentOutOfRangeException>(() => new DeliveryGate(TimeSpan.Zero));
    }
}
