using System.Security.Cryptography;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// The secret behind every mapping (UIDs, pseudonyms, date shifts). Changing the key changes every mapping. The bytes are
/// never formatted: <see cref="ToString"/> is redacted, and nothing here logs.
/// </summary>
public sealed class DeidKey
{
    /// <summary>Minimum key size in bytes (HMAC-SHA256 block-strength key).</summary>
    public const int MinimumLength = 32;

    private readonly byte[] _bytes;

    private DeidKey(byte[] bytes)
    {
        if (bytes.Length < MinimumLength)
        {
            throw new DeidKeyException($"A de-identification key needs at least {MinimumLength} bytes; got {bytes.Length}.");
        }

        _bytes = bytes;
    }

    /// <summary>The key bytes (internal: only the keyed mappings see them).</summary>
    internal ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>
    /// A 32-byte key for another keyed mapping, derived from this one with HKDF-SHA256 (RFC 5869; no salt, info =
    /// <paramref name="purpose"/> in UTF-8): one secret serves several mappings without any of them revealing it or
    /// each other (a derived key cannot be turned back into this one). The same key and purpose give the same bytes.
    /// </summary>
    public byte[] DeriveSubkey(string purpose)
    {
        ArgumentException.ThrowIfNullOrEmpty(purpose);
        return HKDF.DeriveKey(HashAlgorithmName.SHA256, _bytes, MinimumLength, salt: [], info: System.Text.Encoding.UTF8.GetBytes(purpose));
    }

    /// <summary>A key from raw bytes (copied).</summary>
    public static DeidKey FromBytes(ReadOnlySpan<byte> bytes) => new(bytes.ToArray());

    /// <summary>A key from base64 text (configuration, a Key Vault secret, a key file).</summary>
    public static DeidKey FromBase64(string base64)
    {
        ArgumentNullException.ThrowIfNull(base64);
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(base64.Trim());
        }
        catch (FormatException ex)
        {
            throw new DeidKeyException("The de-identification key is not valid base64.", ex);
        }

        return new DeidKey(bytes);
    }

    /// <summary>A fresh random key (tests, first use).</summary>
    public static DeidKey Generate() => new(RandomNumberGenerator.GetBytes(MinimumLength));

    /// <summary>
    /// Reads the key file at <paramref name="path"/>, or creates it with 32 random bytes (base64) when it does not exist.
    /// The file is created with mode 0600 atomically (no window where others could read it) on Unix. An existing file that
    /// others can read is accepted but reported through <paramref name="created"/> = false only; callers may warn.
    /// </summary>
    /// <exception cref="DeidKeyException">The file cannot be read, created or parsed (the message has no key material).</exception>
    public static DeidKey LoadOrCreate(string path, out bool created)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        created = false;
        try
        {
            if (File.Exists(path))
            {
                return FromBase64(File.ReadAllText(path));
            }

            var directory = Path.GetDirectoryName(Path.GetFullPath(path));
            if (!string.IsNullOrEmpty(directory) && !Directory.Exists(directory))
            {
                if (OperatingSystem.IsWindows())
                {
                    Directory.CreateDirectory(directory);
                }
                else
                {
                    Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                }
            }

            var bytes = RandomNumberGenerator.GetBytes(MinimumLength);
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            using (var stream = new FileStream(path, options))
            using (var writer = new StreamWriter(stream))
            {
                writer.Write(Convert.ToBase64String(bytes));
                writer.Write('\n');
            }

            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            created = true;
            return new DeidKey(bytes);
        }
        catch (IOException ex)
        {
            throw new DeidKeyException($"The de-identification key file '{path}' cannot be read or created: {ex.Message}", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new DeidKeyException($"The de-identification key file '{path}' cannot be read or created: access denied.", ex);
        }
    }

    /// <summary>Redacted: key material is never formatted.</summary>
    public override string ToString() => "DeidKey(redacted)";
}

/// <summary>The key is missing, unreadable or malformed. Messages never contain key material.</summary>
public sealed class DeidKeyException : DicomException
{
    public DeidKeyException(string message)
        : base(message)
    {
    }

    public DeidKeyException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
