using System.Security.Cryptography;
using System.Text;
using CovidFunctions.Dicom.Deidentification;

namespace CovidFunctions.Pipeline.Ingest;

/// <summary>
/// The key of the upload read list (<see cref="UploadArchive.ReadListPath"/>): an HMAC-SHA256 key derived from the
/// de-identification key with its own label (<see cref="DerivationLabel"/>), as <see cref="StudyIdKey"/> is with its
/// own. Upload names can carry patient names and MRNs, and an unkeyed hash of a short name is reversed by trying
/// names; keyed, an entry of the list cannot be checked against a guess without this key. Ingest and every step that
/// deletes a completed study's upload (the AggregateStudy activity, the retention sweep) must derive it from the same
/// de-identification key, or the list is unreadable to them (they then refuse to delete, nothing is lost). The bytes
/// are never formatted.
/// </summary>
public sealed class UploadReadKey
{
    /// <summary>The HKDF info of the derivation; changing it makes every keyed read list unreadable.</summary>
    public const string DerivationLabel = "covidfn/upload-read/v1";

    private readonly byte[] _key;

    private UploadReadKey(byte[] key) => _key = key;

    /// <summary>The upload-read key of <paramref name="deidKey"/>.</summary>
    public static UploadReadKey From(DeidKey deidKey)
    {
        ArgumentNullException.ThrowIfNull(deidKey);
        return new UploadReadKey(deidKey.DeriveSubkey(DerivationLabel));
    }

    /// <summary>The upload-read key of the key <paramref name="engine"/> de-identifies with (ingest holds only the engine).</summary>
    public static UploadReadKey From(DeidentificationEngine engine)
    {
        ArgumentNullException.ThrowIfNull(engine);
        return new UploadReadKey(engine.DeriveSubkey(DerivationLabel));
    }

    /// <summary>HMAC-SHA256 over <paramref name="name"/>'s UTF-8, as 64 lower-case hex digits.</summary>
    internal string Mac(string name) => Convert.ToHexStringLower(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(name)));

    public override string ToString() => "UploadReadKey(redacted)";
}
