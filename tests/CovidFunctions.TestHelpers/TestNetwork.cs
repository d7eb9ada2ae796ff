using System.Net;
using System.Net.Sockets;

namespace CovidFunctions.TestHelpers;

/// <summary>Ports for servers a test starts on loopback.</summary>
public static class TestNetwork
{
    /// <summary>
    /// A loopback TCP port free at the time of the call, chosen by the operating system (not a guess: a random port can be
    /// one another listener or an outbound connection holds, which failed a test host with "address already in use").
    /// </summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
