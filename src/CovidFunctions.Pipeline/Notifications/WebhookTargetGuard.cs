using System.Net;
using System.Net.Sockets;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>Resolves a host name to addresses (a seam so tests can map names without touching the machine's DNS).</summary>
public interface IHostAddressResolver
{
    Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken);
}

/// <summary>The system resolver (<see cref="Dns.GetHostAddressesAsync(string, CancellationToken)"/>).</summary>
public sealed class DnsHostAddressResolver : IHostAddressResolver
{
    public static DnsHostAddressResolver Instance { get; } = new();

    public Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken) =>
        Dns.GetHostAddressesAsync(host, cancellationToken);
}

/// <summary>A webhook target that may not be called: the message says why (it is stored in the delivery log).</summary>
public sealed class WebhookTargetRefusedException(string message) : Exception(message)
{
    /// <summary>
    /// The host did not resolve (or resolved to nothing) rather than to a refused address: at registration a refusal
    /// like any other, at delivery an outage the attempt is retried after (<see cref="WebhookDispatcher"/>).
    /// </summary>
    public bool HostUnresolved { get; init; }
}

/// <summary>
/// The SSRF guard. A webhook target must be an absolute https URL without credentials whose host resolves only to
/// public unicast addresses: loopback, link-local, private, CGNAT, unique-local, unspecified, multicast, reserved,
/// cloud metadata and the Azure platform address (168.63.129.16) are refused, checked at registration and again at
/// every delivery. The delivery client connects through <see cref="CreateHandler"/>, whose connect callback resolves and vets the host itself
/// and connects only to a vetted address, so a DNS answer that changes between the check and the connect
/// (rebinding) cannot reach an internal address; redirects are not followed and no proxy is used.
/// The target's port must be one of <see cref="WebhookOptions.AllowedPorts"/> (443 only by default), checked with the
/// form and again in the connect callback for the connection actually opened.
/// With <see cref="WebhookOptions.AllowLoopbackWebhooks"/> (local testing only) http and https targets on
/// 127.0.0.1, localhost and [::1] are allowed on any port, and nothing else changes.
/// </summary>
public sealed class WebhookTargetGuard(WebhookOptions options, IHostAddressResolver? resolver = null)
{
    private readonly IHostAddressResolver _resolver = resolver ?? DnsHostAddressResolver.Instance;

    /// <summary>Parsed once, so a bad <see cref="WebhookOptions.AllowedPorts"/> fails where the guard is built (start-up).</summary>
    private readonly IReadOnlySet<int> _allowedPorts = options.ParseAllowedPorts();

    /// <summary>The ports a non-loopback target may use.</summary>
    public IReadOnlySet<int> AllowedPorts => _allowedPorts;

    public bool AllowLoopback => options.AllowLoopbackWebhooks;

    /// <summary>Parses and checks a target URL (its form and the addresses its host resolves to); throws <see cref="WebhookTargetRefusedException"/>.</summary>
    public async Task<Uri> ValidateAsync(string url, CancellationToken cancellationToken)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            throw new WebhookTargetRefusedException($"'{url}' is not an absolute URL");
        }

        CheckForm(uri);
        await ResolveAllowedAsync(uri.IdnHost, cancellationToken).ConfigureAwait(false);
        return uri;
    }

    /// <summary>Checks the URL's form only: scheme, credentials, port, and the loopback rule for http.</summary>
    public void CheckForm(Uri uri)
    {
        ArgumentNullException.ThrowIfNull(uri);
        if (!uri.IsAbsoluteUri)
        {
            throw new WebhookTargetRefusedException("the target must be an absolute URL");
        }

        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            throw new WebhookTargetRefusedException("the target URL must not carry credentials");
        }

        if (uri.Scheme == Uri.UriSchemeHttps)
        {
            CheckPort(uri.IdnHost, uri.Port);
            return;
        }

        if (uri.Scheme == Uri.UriSchemeHttp && options.AllowLoopbackWebhooks && IsLoopbackName(uri.IdnHost))
        {
            return;
        }

        throw new WebhookTargetRefusedException(options.AllowLoopbackWebhooks
            ? $"only https targets (or http on 127.0.0.1, localhost, [::1]) are allowed, not {uri.Scheme}://{uri.Authority}"
            : $"only https targets are allowed, not {uri.Scheme}://{uri.Authority}");
    }

    /// <summary>
    /// Throws <see cref="WebhookTargetRefusedException"/> unless <paramref name="port"/> is one of
    /// <see cref="WebhookOptions.AllowedPorts"/>, or the host is a loopback name under the loopback allowance.
    /// </summary>
    public void CheckPort(string host, int port)
    {
        ArgumentNullException.ThrowIfNull(host);
        if (_allowedPorts.Contains(port) || (options.AllowLoopbackWebhooks && IsLoopbackName(host)))
        {
            return;
        }

        throw new WebhookTargetRefusedException(
            $"port {port.ToString(System.Globalization.CultureInfo.InvariantCulture)} is not allowed for webhook targets (allowed: {string.Join(", ", _allowedPorts.Order())})");
    }

    /// <summary>
    /// Resolves <paramref name="host"/> (an IP literal resolves to itself) and returns its addresses when every one is
    /// allowed; throws <see cref="WebhookTargetRefusedException"/> naming the first refused address otherwise.
    /// </summary>
    public async Task<IReadOnlyList<IPAddress>> ResolveAllowedAsync(string host, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        var bare = host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;
        IPAddress[] addresses;
        if (IPAddress.TryParse(bare, out var literal))
        {
            addresses = [literal];
        }
        else
        {
            try
            {
                addresses = await _resolver.ResolveAsync(bare, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex)
            {
                throw new WebhookTargetRefusedException($"host '{bare}' does not resolve: {ex.SocketErrorCode}") { HostUnresolved = true };
            }
        }

        if (addresses.Length == 0)
        {
            throw new WebhookTargetRefusedException($"host '{bare}' resolves to no address") { HostUnresolved = true };
        }

        foreach (var address in addresses)
        {
            var reason = RefusalReason(address, options.AllowLoopbackWebhooks);
            if (reason is not null)
            {
                // The range only, never the address a name resolved to: the message reaches API callers (422, the
                // test endpoint's error), who could otherwise map internal DNS names to internal addresses.
                throw new WebhookTargetRefusedException(literal is null
                    ? $"host '{bare}' resolves to a {reason} address"
                    : $"host '{bare}' is a {reason} address");
            }
        }

        return addresses;
    }

    /// <summary>
    /// The delivery client's handler: no redirects, no proxy, no cookies, and a connect callback that connects only to
    /// addresses this guard has just vetted for the request's host.
    /// </summary>
    public SocketsHttpHandler CreateHandler() => new()
    {
        AllowAutoRedirect = false,
        UseProxy = false,
        UseCookies = false,
        PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        ConnectCallback = async (context, cancellationToken) =>
        {
            CheckPort(context.DnsEndPoint.Host, context.DnsEndPoint.Port);
            var addresses = await ResolveAllowedAsync(context.DnsEndPoint.Host, cancellationToken).ConfigureAwait(false);
            Exception? last = null;
            foreach (var address in addresses)
            {
                var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(new IPEndPoint(address, context.DnsEndPoint.Port), cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch (SocketException ex)
                {
                    socket.Dispose();
                    last = ex;
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            }

            throw new HttpRequestException($"could not connect to {context.DnsEndPoint.Host}:{context.DnsEndPoint.Port}", last);
        },
    };

    /// <summary>Why an address may not be a webhook target (null when it may): the range's name.</summary>
    public static string? RefusalReason(IPAddress address, bool allowLoopback)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (IPAddress.IsLoopback(address))
        {
            return allowLoopback ? null : "loopback";
        }

        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            return IPv4Reason(address.GetAddressBytes());
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return "non-IP";
        }

        var b = address.GetAddressBytes();
        if (address.Equals(IPAddress.IPv6Any))
        {
            return "unspecified";
        }

        if (address.Equals(AwsMetadataV6))
        {
            return "cloud metadata";
        }

        if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        {
            return "link-local";
        }

        if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        {
            return "site-local";
        }

        if ((b[0] & 0xfe) == 0xfc)
        {
            return "unique-local (private)";
        }

        if (b[0] == 0xff)
        {
            return "multicast";
        }

        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) embed an IPv4 address that the network may route to: judge that one.
        if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b.AsSpan(4, 8).IndexOfAnyExcept((byte)0) < 0)
        {
            return IPv4Reason(b[12..16]);
        }

        if (b[0] == 0x20 && b[1] == 0x02)
        {
            return IPv4Reason(b[2..6]);
        }

        // SRv6 segment identifiers (5f00::/16, RFC 9602): routed only inside an operator's segment-routing domain.
        if (b[0] == 0x5f && b[1] == 0x00)
        {
            return "SRv6 segment identifier";
        }

        // Teredo (2001::/32) tunnels to a client whose IPv4 address (any, private included) sits obfuscated in the
        // last 32 bits, through a relay the guard does not see: nothing tells where it ends, so no Teredo target passes.
        if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00)
        {
            return "Teredo tunnel";
        }

        // Anything else in ::/8 (IPv4-compatible, reserved) or the documentation range 2001:db8::/32.
        if (b[0] == 0x00 || (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8))
        {
            return "reserved";
        }

        // The other special-purpose ranges that are no public unicast (RFC 6890 registry): discard-only 100::/64,
        // benchmarking 2001:2::/48 (as 198.18/15 for IPv4), documentation 3fff::/20 (RFC 9637).
        if (b[0] == 0x01 && b[1] == 0x00 && b.AsSpan(2, 6).IndexOfAnyExcept((byte)0) < 0)
        {
            return "discard-only";
        }

        if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x02 && b[4] == 0x00 && b[5] == 0x00)
        {
            return "benchmarking";
        }

        if (b[0] == 0x3f && b[1] == 0xff && (b[2] & 0xf0) == 0x00)
        {
            return "documentation";
        }

        return null;
    }

    private static readonly IPAddress AwsMetadataV6 = IPAddress.Parse("fd00:ec2::254");

    private static string? IPv4Reason(ReadOnlySpan<byte> b) => (b[0], b[1]) switch
    {
        (169, 254) when b[2] == 169 && b[3] == 254 => "cloud metadata",

        // Azure's virtual public IP (WireServer, platform DNS and health probes): public in form, internal in use.
        (168, 63) when b[2] == 129 && b[3] == 16 => "Azure platform",
        (169, 254) => "link-local",
        (0, _) => "unspecified",
        (127, _) => "loopback",
        (10, _) => "private",
        (172, >= 16 and <= 31) => "private",
        (192, 168) => "private",
        (100, >= 64 and <= 127) => "carrier-grade NAT",
        (192, 0) when b[2] == 0 => "IETF protocol assignment",

        // The documentation ranges TEST-NET-1/2/3 and the retired 6to4 relay anycast (RFC 7526): no public unicast.
        (192, 0) when b[2] == 2 => "documentation",
        (198, 51) when b[2] == 100 => "documentation",
        (203, 0) when b[2] == 113 => "documentation",
        (192, 88) when b[2] == 99 => "reserved",
        (198, 18 or 19) => "benchmarking",
        (>= 224 and <= 239, _) => "multicast",
        (>= 240, _) => "reserved",
        _ => null,
    };

    private static bool IsLoopbackName(string host)
    {
        var bare = host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;
        return string.Equals(bare, "localhost", StringComparison.OrdinalIgnoreCase)
            || (IPAddress.TryParse(bare, out var address) && IPAddress.IsLoopback(address));
    }
}
