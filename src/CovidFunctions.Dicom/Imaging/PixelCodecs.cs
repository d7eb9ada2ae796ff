using CovidFunctions.Dicom.Imaging.Codecs;

namespace CovidFunctions.Dicom.Imaging;

/// <summary>
/// The registry of pixel codecs: the instances listed in <c>Imaging/Codecs/CodecRegistrations.cs</c>. Native
/// libraries are probed lazily by the codecs themselves when they first decode.
/// </summary>
public static class PixelCodecs
{
    private static readonly Lazy<Dictionary<string, IPixelCodec>> ByUid = new(Build);

    /// <summary>Every registered codec.</summary>
    public static IReadOnlyList<IPixelCodec> All => [.. ByUid.Value.Values.Distinct()];

    /// <summary>The codec for a transfer syntax UID, or null when none is registered.</summary>
    public static IPixelCodec? Find(string transferSyntaxUid)
    {
        ArgumentNullException.ThrowIfNull(transferSyntaxUid);
        return ByUid.Value.TryGetValue(transferSyntaxUid.Trim(' ', '\0'), out var codec) ? codec : null;
    }

    /// <summary>The codec for a transfer syntax UID.</summary>
    /// <exception cref="UnsupportedTransferSyntaxException">No codec is registered for it.</exception>
    public static IPixelCodec Get(string transferSyntaxUid) =>
        Find(transferSyntaxUid) ?? throw new UnsupportedTransferSyntaxException(transferSyntaxUid,
            $"No pixel codec is registered for {TransferSyntax.Lookup(transferSyntaxUid)}");

    private static Dictionary<string, IPixelCodec> Build()
    {
        var map = new Dictionary<string, IPixelCodec>(StringComparer.Ordinal);
        foreach (var codec in CodecRegistrations.All)
        {
            foreach (var uid in codec.TransferSyntaxUids)
            {
                // First registration wins: the list order is the preference order.
                map.TryAdd(uid, codec);
            }
        }

        return map;
    }
}
