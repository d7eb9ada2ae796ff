using System.Runtime.InteropServices;

namespace CovidFunctions.Imaging.Diagnostics;

/// <summary>
/// The CPU time the calling thread has used so far (Linux <c>clock_gettime(CLOCK_THREAD_CPUTIME_ID)</c>, Windows
/// <c>GetThreadTimes</c>). Per-thread time is what lets one study's work be metered while other studies run in the same
/// process: the process-wide <see cref="Environment.CpuUsage"/> counts all of them.
/// </summary>
public static partial class ThreadCpuTime
{
    private const int ClockThreadCpuTimeId = 3;

    /// <summary>Whether this platform reports per-thread CPU time (probed once).</summary>
    public static bool IsSupported { get; } = Probe();

    /// <summary>The calling thread's user + kernel CPU time; <see cref="TimeSpan.Zero"/> where not <see cref="IsSupported"/>.</summary>
    public static TimeSpan Current()
    {
        if (!IsSupported)
        {
            return TimeSpan.Zero;
        }

        if (OperatingSystem.IsWindows())
        {
            return NativeMethods.GetThreadTimes(NativeMethods.GetCurrentThread(), out _, out _, out var kernel, out var user)
                ? TimeSpan.FromTicks(kernel + user) // FILETIME units are 100 ns, the same as ticks
                : TimeSpan.Zero;
        }

        return NativeMethods.ClockGetTime(ClockThreadCpuTimeId, out var now) == 0
            ? TimeSpan.FromTicks((now.Seconds * TimeSpan.TicksPerSecond) + (now.Nanoseconds / 100))
            : TimeSpan.Zero;
    }

    private static bool Probe()
    {
        try
        {
            if (OperatingSystem.IsWindows())
            {
                return NativeMethods.GetThreadTimes(NativeMethods.GetCurrentThread(), out _, out _, out _, out _);
            }

            return (OperatingSystem.IsLinux() || OperatingSystem.IsFreeBSD()) && NativeMethods.ClockGetTime(ClockThreadCpuTimeId, out _) == 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    private static partial class NativeMethods
    {
        [LibraryImport("libc", EntryPoint = "clock_gettime")]
        internal static partial int ClockGetTime(int clockId, out Timespec value);

        [LibraryImport("kernel32.dll")]
        internal static partial IntPtr GetCurrentThread();

        [LibraryImport("kernel32.dll")]
        [return: MarshalAs(UnmanagedType.Bool)]
        internal static partial bool GetThreadTimes(IntPtr thread, out long creation, out long exit, out long kernel, out long user);
    }
}

/// <summary>
/// CPU time of one unit of work (a study's ingest) summed over the synchronous sections it runs, on whichever threads
/// they run: each <see cref="Measure{T}"/> adds the thread CPU time its delegate used. Work of other units running at
/// the same time on other threads is not counted, unlike a process-wide delta. What runs outside measured sections
/// (awaited I/O completions, the storage SDK's own work) is not counted either, so the total is the unit's compute, a
/// slight undercount of everything it caused. Thread-safe.
/// </summary>
public sealed class CpuTimeAccount
{
    private long _ticks;

    /// <summary>The CPU time added so far.</summary>
    public TimeSpan Total => TimeSpan.FromTicks(Interlocked.Read(ref _ticks));

    /// <summary>Whether <see cref="Total"/> is per-thread time (false: the platform has none and the total stays 0).</summary>
    public static bool IsSupported => ThreadCpuTime.IsSupported;

    /// <summary>Runs <paramref name="work"/> on the calling thread and adds the CPU time it used.</summary>
    public T Measure<T>(Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var before = ThreadCpuTime.Current();
        try
        {
            return work();
        }
        finally
        {
            Interlocked.Add(ref _ticks, (ThreadCpuTime.Current() - before).Ticks);
        }
    }
}
