using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>
/// The <c>X-CovidFunctions-Signature</c> header: <c>t=&lt;unix seconds&gt;,v1=&lt;hex HMAC-SHA256(secret, "t.body")&gt;</c>.
/// Signing the timestamp with the body lets receivers refuse replays older than their tolerance (docs/webhooks.md).
/// </summary>
public static class WebhookSignature
{
    public const string SignatureHeader = "X-CovidFunctions-Signature";
    public const string DeliveryHeader = "X-CovidFunctions-Delivery";
    public const string EventHeader = "X-CovidFunctions-Event";

    /// <summary>The header value for <paramref name="body"/> signed at <paramref name="timestamp"/>.</summary>
    public static string Sign(string secret, DateTimeOffset timestamp, string body) => Sign([secret], timestamp, body);

    /// <summary>
    /// The header value signed with each of <paramref name="secrets"/> (the current secret first, then the previous one
    /// during a rotation's overlap): <c>t=…,v1=…,v1=…</c>, one <c>v1</c> per secret over the same timestamp. A receiver
    /// that knows either secret finds its signature among them (docs/webhooks.md, Rotating the secret).
    /// </summary>
    public static string Sign(IReadOnlyList<string> secrets, DateTimeOffset timestamp, string body)
    {
        ArgumentNullException.ThrowIfNull(secrets);
        ArgumentNullException.ThrowIfNull(body);
        if (secrets.Count == 0)
        {
            throw new ArgumentException("at least one secret is needed to sign", nameof(secrets));
        }

        var t = timestamp.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        var header = new StringBuilder("t=").Append(t);
        foreach (var secret in secrets)
        {
            ArgumentException.ThrowIfNullOrEmpty(secret, nameof(secrets));
            header.Append(",v1=").Append(Compute(secret, t, body));
        }

        return header.ToString();
    }

    /// <summary>
    /// Verifies a header value against the body (constant-time comparison); false when it is malformed, does not match,
    /// or its timestamp is further than <paramref name="tolerance"/> from <paramref name="now"/>.
    /// </summary>
    public static bool Verify(string secret, string? header, string body, DateTimeOffset now, TimeSpan tolerance)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        if (string.IsNullOrEmpty(header))
        {
            return false;
        }

        string? t = null;
        var signatures = new List<string>();
        foreach (var part in header.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (part.StartsWith("t=", StringComparison.Ordinal))
            {
                t = part[2..];
            }
            else if (part.StartsWith("v1=", StringComparison.Ordinal))
            {
                signatures.Add(part[3..]);
            }
        }

        // A timestamp past year 9999 parses as a long but is no date (FromUnixTimeSeconds would throw): malformed.
        if (t is null || !long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var unix) || signatures.Count == 0
            || unix > DateTimeOffset.MaxValue.ToUnixTimeSeconds())
        {
            return false;
        }

        if ((now - DateTimeOffset.FromUnixTimeSeconds(unix)).Duration() > tolerance)
        {
            return false;
        }

        var expected = Encoding.ASCII.GetBytes(Compute(secret, t, body));
        return signatures.Any(s => CryptographicOperations.FixedTimeEquals(expected, Encoding.ASCII.GetBytes(s.ToLowerInvariant())));
    }

    /// <summary>A new random secret: 32 bytes, as <c>whsec_</c> + 64 hex digits.</summary>
    public static string NewSecret() => "whsec_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    private static string Compute(string secret, string t, string body) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(t + "." + body)));
}

/// <summary>Deterministic webhook identifiers.</summary>
public static class WebhookIds
{
    /// <summary>A new subscription id: <c>wh</c> + 20 random hex digits.</summary>
    public static string NewSubscriptionId() => "wh" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(10));

    /// <summary>
    /// The idempotency id of one event of one ingest attempt of a study for one subscription: <c>evt_</c> + 32 hex
    /// digits of SHA-256("{tenant}\n{subscription}\n{study}\n{event}\n{attempt}"), where the attempt is the Studies
    /// row's <see cref="Storage.StudyRecord.CreatedAt"/> in UTC ticks. The same inputs always give the same id, so
    /// receivers can de-duplicate on it and the delivery claim keys on it. The row's creation time tells attempts of one
    /// study id apart: a new upload at the path of a study settled unscreened (rejected, or failed before it was
    /// ingested) is, once its quarantine is gone, a new attempt from a fresh row (created then), whose outcome is a new
    /// event with a new id, while every notification of one attempt's outcome reads the same row and gets the same id.
    /// </summary>
    public static string DeliveryId(string tenant, string subscriptionId, string studyId, string eventType, DateTimeOffset studyCreatedAt) =>
        Hash(string.Create(CultureInfo.InvariantCulture, $"{tenant}\n{subscriptionId}\n{studyId}\n{eventType}\n{studyCreatedAt.UtcTicks}"));

    /// <summary>
    /// The id deliveries had before ids named the study's attempt (SHA-256("{tenant}\n{subscription}\n{study}\n{event}")):
    /// delivery records written then are keyed by it, and the notifier looks for one before it claims a new id, so an
    /// outcome already claimed under it is not delivered again (<see cref="WebhookNotifier"/>).
    /// </summary>
    public static string LegacyDeliveryId(string tenant, string subscriptionId, string studyId, string eventType) =>
        Hash($"{tenant}\n{subscriptionId}\n{studyId}\n{eventType}");

    private static string Hash(string text) => "evt_" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..32];

    /// <summary>The secret's name in the secret store (Key Vault names allow letters, digits and '-').</summary>
    public static string SecretName(string tenant, string subscriptionId) => $"webhook-{tenant}-{subscriptionId}";

    /// <summary>
    /// The name of a secret issued by a rotation: <c>webhook-{tenant}-{id}-r</c> + 16 random hex digits. Every rotation
    /// gets a name never used before: Key Vault keeps a deleted secret's name (soft delete) and refuses to set it again.
    /// </summary>
    public static string RotatedSecretName(string tenant, string subscriptionId) =>
        $"webhook-{tenant}-{subscriptionId}-r{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}";

    /// <summary>The prefix every secret name of every subscription has (<see cref="SecretName"/>, <see cref="RotatedSecretName"/>).</summary>
    public const string SecretNamePrefix = "webhook-";

    /// <summary>
    /// The tenant and subscription id a secret name belongs to: <c>webhook-{tenant}-{id}</c> or a rotated
    /// <c>webhook-{tenant}-{id}-r</c> + 16 hex digits; false for any other name. Unambiguous: the id is the fixed-length
    /// <c>wh</c> + 20 hex digits right before the end or the rotation suffix, and a tenant is 1-40 of a-z, 0-9 and '-'.
    /// </summary>
    public static bool TryParseSecretName(string? name, out string tenant, out string subscriptionId)
    {
        tenant = subscriptionId = "";
        if (name is null || !name.StartsWith(SecretNamePrefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = name.AsSpan(SecretNamePrefix.Length);
        if (rest.Length > 18 && rest[^18] == '-' && rest[^17] == 'r' && IsLowerHex(rest[^16..]))
        {
            rest = rest[..^18];
        }

        // "{tenant}-wh" + 20 hex digits.
        if (rest.Length < 24 || rest[^23] != '-' || !IsValidSubscriptionId(rest[^22..].ToString()))
        {
            return false;
        }

        var parsedTenant = rest[..^23].ToString();
        if (!StudyIds.IsValidTenant(parsedTenant))
        {
            return false;
        }

        tenant = parsedTenant;
        subscriptionId = rest[^22..].ToString();
        return true;
    }

    private static bool IsLowerHex(ReadOnlySpan<char> text) => !text.ContainsAnyExcept("0123456789abcdef");

    public static bool IsValidSubscriptionId(string? id) =>
        id is { Length: 22 } && id.StartsWith("wh", StringComparison.Ordinal) && id.AsSpan(2).ContainsAnyExcept("0123456789abcdef") is false;
}
