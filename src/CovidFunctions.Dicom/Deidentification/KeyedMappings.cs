using System.Buffers.Binary;
using System.Collections.Frozen;
using System.Globalization;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// The keyed, deterministic mappings: UID → <c>2.25.</c> UUID-derived UID, patient → pseudonym, pseudonym → date shift.
/// Every value is an HMAC-SHA256 under the key with a distinct domain prefix, so two processes with the same key agree
/// and nobody without the key can recompute or reverse a mapping. Thread-safe (no state beyond the key).
/// </summary>
public sealed partial class KeyedMappings
{
    /// <summary>The DICOM root: UIDs under it (SOP classes, transfer syntaxes, coding schemes, well-known frames of reference) are kept.</summary>
    public const string DicomRoot = "1.2.840.10008.";

    /// <summary>The prefix of every pseudonym.</summary>
    public const string PseudonymPrefix = "ANON-";

    private const string Base32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    private readonly byte[] _key;

    /// <summary>Mappings under <paramref name="key"/>.</summary>
    public KeyedMappings(DeidKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        _key = key.Bytes.ToArray();
    }

    /// <summary>True for UIDs that are kept as they are: empty, or under the DICOM root 1.2.840.10008.</summary>
    public static bool IsWellKnownUid(string uid) =>
        uid.Length == 0 || uid.StartsWith(DicomRoot, StringComparison.Ordinal) || uid == "1.2.840.10008";

    /// <summary>
    /// Maps a UID: well-known UIDs are returned unchanged; any other becomes <c>2.25.</c> followed by the decimal value of a
    /// 128-bit UUID taken from HMAC-SHA256(key, "uid:" + uid), with the RFC 9562 version 8 (custom) and variant bits set,
    /// as PS3.5 B.2 describes for UUID-derived UIDs. At most 44 characters.
    /// </summary>
    public string MapUid(string uid)
    {
        ArgumentNullException.ThrowIfNull(uid);
        var trimmed = uid.TrimEnd('\0', ' ');
        return IsWellKnownUid(trimmed) ? trimmed : Map(trimmed);
    }

    /// <summary>
    /// Maps the UID of an instance, series, study, frame of reference or other identified thing (Table E.1-1's U rows):
    /// like <see cref="MapUid"/>, but a UID under the DICOM root is kept only when it is a well-known instance or frame of
    /// reference of the registry (<see cref="IsWellKnownInstanceUid"/>). A device that roots its instance UIDs at
    /// 1.2.840.10008 (it may not) writes whatever digits it likes after it, an MRN or a birth date; kept as "well-known",
    /// they survived. Class UIDs (SOP classes, transfer syntaxes) go through <see cref="MapUid"/>.
    /// </summary>
    public string MapInstanceUid(string uid)
    {
        ArgumentNullException.ThrowIfNull(uid);
        var trimmed = uid.TrimEnd('\0', ' ');
        return trimmed.Length == 0 || IsWellKnownInstanceUid(trimmed) ? trimmed : Map(trimmed);
    }

    /// <summary>
    /// True for the well-known instance UIDs of PS3.6 Table A-1/A-2 an instance attribute may hold: well-known frames of
    /// reference (1.2.840.10008.1.4.n.m, n and m of one or two digits, too short to carry an identifier), the synchronization
    /// frame of reference UTC, and the well-known SOP instances (storage commitment, printer, logging, UPS subscription,
    /// color palettes). Any other UID under the root, in an instance attribute, is mapped: the cost of a missed well-known
    /// instance is its well-known meaning, never a value kept.
    /// </summary>
    public static bool IsWellKnownInstanceUid(string uid)
    {
        ArgumentNullException.ThrowIfNull(uid);
        return WellKnownInstances.Contains(uid) || WellKnownFrameOfReference().IsMatch(uid);
    }

    private static readonly FrozenSet<string> WellKnownInstances = new[]
    {
        "1.2.840.10008.1.20", // Storage Commitment Push Model SOP Instance
        "1.2.840.10008.1.40", // Procedural Event Logging SOP Instance
        "1.2.840.10008.1.42", // Substance Administration Logging SOP Instance
        "1.2.840.10008.5.1.1.17", // Printer SOP Instance
        "1.2.840.10008.5.1.1.17.376", // Printer Configuration Retrieval SOP Instance
        "1.2.840.10008.5.1.4.34.5", // UPS Global Subscription SOP Instance
        "1.2.840.10008.5.1.4.34.5.1", // UPS Filtered Global Subscription SOP Instance
        "1.2.840.10008.15.1.1", // Universal Coordinated Time (synchronization frame of reference)
        "1.2.840.10008.1.5.1", "1.2.840.10008.1.5.2", "1.2.840.10008.1.5.3", "1.2.840.10008.1.5.4", // color palettes
        "1.2.840.10008.1.5.5", "1.2.840.10008.1.5.6", "1.2.840.10008.1.5.7", "1.2.840.10008.1.5.8",
    }.ToFrozenSet(StringComparer.Ordinal);

    [System.Text.RegularExpressions.GeneratedRegex(@"\A1\.2\.840\.10008\.1\.4\.[1-9]\.[1-9][0-9]?\z", System.Text.RegularExpressions.RegexOptions.CultureInvariant)]
    private static partial System.Text.RegularExpressions.Regex WellKnownFrameOfReference();

    private string Map(string trimmed)
    {
        Span<byte> mac = stackalloc byte[32];
        Hmac("uid:", trimmed, mac);
        mac[6] = (byte)((mac[6] & 0x0F) | 0x80); // version 8
        mac[8] = (byte)((mac[8] & 0x3F) | 0x80); // variant 10xx
        var value = new BigInteger(mac[..16], isUnsigned: true, isBigEndian: true);
        return "2.25." + value.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The patient pseudonym: <c>ANON-</c> + the first <paramref name="length"/> base32 characters of
    /// HMAC-SHA256(key, "patient:" + issuer + "|" + patientId). When the Patient ID is empty the name stands in
    /// ("patient-name:" + name), so unnamed patients do not all collapse into one pseudonym.
    /// </summary>
    public string Pseudonym(string? issuerOfPatientId, string? patientId, string? patientName, int length)
    {
        Span<byte> mac = stackalloc byte[32];
        if (!string.IsNullOrWhiteSpace(patientId))
        {
            Hmac("patient:", (issuerOfPatientId ?? string.Empty).Trim() + "|" + patientId.Trim(), mac);
        }
        else
        {
            Hmac("patient-name:", (patientName ?? string.Empty).Trim(), mac);
        }

        return PseudonymPrefix + Base32(mac, length);
    }

    /// <summary>
    /// The date shift of a patient in days: ±1..±365, never 0 (a zero shift would leave real dates), from
    /// HMAC-SHA256(key, "dateshift:" + pseudonym).
    /// </summary>
    public int DateShiftDays(string pseudonym)
    {
        ArgumentNullException.ThrowIfNull(pseudonym);
        Span<byte> mac = stackalloc byte[32];
        Hmac("dateshift:", pseudonym, mac);
        var v = BinaryPrimitives.ReadUInt32BigEndian(mac);
        var magnitude = (int)(v % 365) + 1;
        return (mac[4] & 1) == 0 ? -magnitude : magnitude;
    }

    private void Hmac(string domain, string value, Span<byte> destination)
    {
        var text = domain + value;
        var max = Encoding.UTF8.GetMaxByteCount(text.Length);
        var buffer = max <= 512 ? stackalloc byte[max] : new byte[max];
        var n = Encoding.UTF8.GetBytes(text, buffer);
        HMACSHA256.HashData(_key, buffer[..n], destination);
    }

    private static string Base32(ReadOnlySpan<byte> data, int length)
    {
        var sb = new StringBuilder(length);
        var buffer = 0;
        var bits = 0;
        foreach (var b in data)
        {
            buffer = (buffer << 8) | b;
            bits += 8;
            while (bits >= 5 && sb.Length < length)
            {
                sb.Append(Base32Alphabet[(buffer >> (bits - 5)) & 0x1F]);
                bits -= 5;
            }

            buffer &= (1 << bits) - 1;
            if (sb.Length == length)
            {
                break;
            }
        }

        return sb.ToString();
    }
}
