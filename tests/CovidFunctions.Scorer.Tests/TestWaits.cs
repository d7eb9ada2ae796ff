using System.Net;
using System.Net.Sockets;

namespace CovidFunctions.Scorer.Tests;

/// <summary>Polling and port helpers shared by the scorer's host and process tests.</summary>
internal static class TestWaits
{
    /// <summary>Polls a condition (a generous bound for a loaded 2-core machine; not a timing assertion).</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(4);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("gave up waiting for " + what);
            }

            await Task.Delay(200);
        }
    }
}
