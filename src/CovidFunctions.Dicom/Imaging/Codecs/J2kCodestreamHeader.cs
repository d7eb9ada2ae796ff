using System.Buffers.Binary;

namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// Walks the marker segments of a JPEG 2000 frame (J2K codestream, or the 'jp2c' box of a JP2 file) before OpenJPEG
/// sees it, and refuses High-Throughput (Part 15) codestreams and structurally broken headers.
/// </summary>
/// <remarks>
/// Why: Debian 12's libopenjp2 2.5.0 contains an HT block decoder built with assertions on, and on some corrupt HT
/// code-blocks it calls abort() (ht_dec.c mel_init, uclouvain/openjpeg#1500), which kills the process; no exception
/// handler can contain that. The HTJ2K syntaxes (.201–.203) are refused by transfer syntax, but OpenJPEG decodes HT
/// code-blocks whenever a COD or COC code-block style has the HT bit (0x40), whatever syntax the DICOM file declares.
/// So a frame labelled JPEG 2000 (.90/.91) is refused here if its main header has a CAP marker or any COD/COC, in the
/// main header or in any tile-part header, has the HT bit. See docs/pixel-codecs.md, "HTJ2K".
/// <para>
/// Only headers are read: tile-part data is skipped with Psot, so the walk is linear in the number of marker segments
/// and bounded by the frame length. It is stricter than OpenJPEG where the two could diverge: a marker OpenJPEG does
/// not know is refused (in the main header OpenJPEG would scan past it two bytes at a time and could find a COD
/// hidden inside it), as is any length running past the frame or a non-marker where a marker must be (OpenJPEG, in
/// strict mode, fails on those too).
/// </para>
/// </remarks>
internal static class J2kCodestreamHeader
{
    private const ushort Soc = 0xFF4F;
    private const ushort Cap = 0xFF50;
    private const ushort Siz = 0xFF51;
    private const ushort Cod = 0xFF52;
    private const ushort Coc = 0xFF53;
    private const ushort Sot = 0xFF90;
    private const ushort Sod = 0xFF93;
    private const ushort Eoc = 0xFFD9;
    private const byte HighThroughputStyle = 0x40;

    private static readonly uint Jp2c = BinaryPrimitives.ReadUInt32BigEndian("jp2c"u8);

    /// <summary>
    /// Throws a <see cref="DicomFormatException"/> naming <paramref name="transferSyntaxUid"/> when the frame is a
    /// High-Throughput codestream or its headers are inconsistent; returns when OpenJPEG may be given the frame.
    /// </summary>
    public static void EnsurePart1(ReadOnlySpan<byte> frame, bool jp2, string transferSyntaxUid)
    {
        var start = jp2 ? FindCodestreamBox(frame, transferSyntaxUid) : 0;
        Walk(frame[start..], start, transferSyntaxUid);
    }

    /// <summary>Offset of the first top-level 'jp2c' box's contents (OpenJPEG reads the codestream from there to the end).</summary>
    private static int FindCodestreamBox(ReadOnlySpan<byte> file, string uid)
    {
        var position = 0;
        while (position < file.Length)
        {
            var left = file.Length - position;
            if (left < 8)
            {
                throw CodecErrors.Corrupt(uid, $"JP2 box header at offset {position} runs past the end of the frame");
            }

            long length = BinaryPrimitives.ReadUInt32BigEndian(file[position..]);
            var type = BinaryPrimitives.ReadUInt32BigEndian(file[(position + 4)..]);
            var header = 8;
            if (length == 1)
            {
                if (left < 16)
                {
                    throw CodecErrors.Corrupt(uid, $"JP2 box header at offset {position} runs past the end of the frame");
                }

                var extended = BinaryPrimitives.ReadUInt64BigEndian(file[(position + 8)..]);
                length = extended > (ulong)left ? long.MaxValue : (long)extended;
                header = 16;
            }
            else if (length == 0)
            {
                length = left; // the last box, to the end of the file
            }

            if (type == Jp2c)
            {
                return position + header; // OpenJPEG ignores the box length and reads the codestream to the end
            }

            if (length < header || length > left)
            {
                throw CodecErrors.Corrupt(uid, $"JP2 box at offset {position} has length {length}, {left} bytes are left");
            }

            position += (int)length;
        }

        throw CodecErrors.Corrupt(uid, "JP2 file without a codestream ('jp2c') box");
    }

    private static void Walk(ReadOnlySpan<byte> cs, int origin, string uid)
    {
        if (cs.Length < 4 || BinaryPrimitives.ReadUInt16BigEndian(cs) != Soc || BinaryPrimitives.ReadUInt16BigEndian(cs[2..]) != Siz)
        {
            throw CodecErrors.Corrupt(uid, $"JPEG 2000 codestream at offset {origin} does not start with SOC and SIZ (FF4F FF51)");
        }

        // Main header: SIZ first, then marker segments up to the first SOT.
        var components = -1;
        var position = WalkHeader(cs, 2, cs.Length, Sot, ref components, origin, uid, "main header");

        // Tile-parts: SOT, tile-part header up to SOD, data skipped with Psot; Psot 0 runs to the end.
        while (cs.Length - position >= 2)
        {
            var marker = BinaryPrimitives.ReadUInt16BigEndian(cs[position..]);
            if (marker == Eoc)
            {
                return;
            }

            if (marker != Sot)
            {
                throw CodecErrors.Corrupt(uid, $"expected SOT or EOC at offset {origin + position}, found 0x{marker:X4}");
            }

            var sot = position;
            if (cs.Length - sot < 12 || BinaryPrimitives.ReadUInt16BigEndian(cs[(sot + 2)..]) != 10)
            {
                throw CodecErrors.Corrupt(uid, $"SOT marker segment at offset {origin + sot} is truncated or not 10 bytes long");
            }

            var psot = BinaryPrimitives.ReadUInt32BigEndian(cs[(sot + 6)..]);
            if (psot != 0 && (psot < 14 || psot > (uint)(cs.Length - sot)))
            {
                throw CodecErrors.Corrupt(uid, $"tile-part at offset {origin + sot} has length (Psot) {psot}, {cs.Length - sot} bytes are left");
            }

            var end = psot == 0 ? cs.Length : sot + (int)psot;
            WalkHeader(cs, sot + 12, end, Sod, ref components, origin, uid, "tile-part header");

            if (psot == 0)
            {
                return; // the last tile-part: the rest of the stream is its data
            }

            position = end;
        }
    }

    /// <summary>
    /// Checks the marker segments of one header (the main header, or a tile-part header) from <paramref name="position"/>
    /// up to the marker <paramref name="until"/> (SOT, or SOD), and returns that marker's position. SIZ is allowed only
    /// as the first segment of the main header, where it sets <paramref name="components"/>; SOT and SOD are not
    /// header segments (<see cref="IsKnownSegment"/>), so they are refused anywhere but as <paramref name="until"/>.
    /// </summary>
    private static int WalkHeader(ReadOnlySpan<byte> cs, int position, int end, ushort until, ref int components, int origin, string uid, string where)
    {
        while (true)
        {
            var marker = ReadMarker(cs, position, end, origin, uid, where);
            if (marker == until)
            {
                return position;
            }

            var payload = Segment(cs, position, end, marker, origin, uid, where);
            if (marker == Siz)
            {
                if (components >= 0 || position != 2)
                {
                    throw CodecErrors.Corrupt(uid, $"SIZ marker in the {where} at offset {origin + position} (only the first main-header segment may be SIZ)");
                }

                // Rsiz(2), Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz (4 each), Csiz(2), then 3 bytes per component.
                if (payload.Length < 36 || payload.Length < 36 + (3 * BinaryPrimitives.ReadUInt16BigEndian(payload[34..])))
                {
                    throw CodecErrors.Corrupt(uid, $"SIZ marker segment of {payload.Length} bytes is too short");
                }

                components = BinaryPrimitives.ReadUInt16BigEndian(payload[34..]);
            }

            CheckSegment(marker, payload, components, origin + position, uid, where);
            position += 2 + 2 + payload.Length;
        }
    }

    /// <summary>The marker at <paramref name="position"/>, which must lie before <paramref name="end"/> and be a marker.</summary>
    private static ushort ReadMarker(ReadOnlySpan<byte> cs, int position, int end, int origin, string uid, string where)
    {
        if (end - position < 2)
        {
            throw CodecErrors.Corrupt(uid, $"JPEG 2000 {where} runs past its end at offset {origin + position}");
        }

        var marker = BinaryPrimitives.ReadUInt16BigEndian(cs[position..]);
        if (marker < 0xFF00)
        {
            throw CodecErrors.Corrupt(uid, $"expected a marker in the JPEG 2000 {where} at offset {origin + position}, found 0x{marker:X4}");
        }

        return marker;
    }

    /// <summary>The payload of the marker segment at <paramref name="position"/> (after its length field).</summary>
    private static ReadOnlySpan<byte> Segment(ReadOnlySpan<byte> cs, int position, int end, ushort marker, int origin, string uid, string where)
    {
        if (!IsKnownSegment(marker))
        {
            throw CodecErrors.Corrupt(uid, $"marker 0x{marker:X4} at offset {origin + position} is not a JPEG 2000 {where} marker segment");
        }

        if (end - position < 4)
        {
            throw CodecErrors.Corrupt(uid, $"marker 0x{marker:X4} at offset {origin + position} runs past the {where}");
        }

        int length = BinaryPrimitives.ReadUInt16BigEndian(cs[(position + 2)..]);
        if (length < 2 || length > end - position - 2)
        {
            throw CodecErrors.Corrupt(uid, $"marker 0x{marker:X4} at offset {origin + position} has length {length}, which runs past the {where}");
        }

        return cs.Slice(position + 4, length - 2);
    }

    /// <summary>Refuses CAP, and COD / COC with the HT code-block style.</summary>
    private static void CheckSegment(ushort marker, ReadOnlySpan<byte> payload, int components, int offset, string uid, string where)
    {
        int styleAt;
        switch (marker)
        {
            case Cap:
                throw HighThroughput(uid, $"CAP marker in the {where} at offset {offset}");
            case Cod:
                styleAt = 1 + 4 + 3; // Scod, SGcod, then SPcod: levels, xcb, ycb, cblksty
                break;
            case Coc:
                styleAt = (components < 257 ? 1 : 2) + 1 + 3; // Ccoc, Scoc, then SPcoc: levels, xcb, ycb, cblksty
                break;
            default:
                return;
        }

        if (payload.Length <= styleAt)
        {
            throw CodecErrors.Corrupt(uid, $"{(marker == Cod ? "COD" : "COC")} marker segment of {payload.Length} bytes at offset {offset} is too short");
        }

        if ((payload[styleAt] & HighThroughputStyle) != 0)
        {
            throw HighThroughput(uid, $"HT code-block style 0x{payload[styleAt]:X2} in the {(marker == Cod ? "COD" : "COC")} of the {where} at offset {offset}");
        }
    }

    private static DicomFormatException HighThroughput(string uid, string evidence) =>
        CodecErrors.Corrupt(uid, $"the frame is a High-Throughput JPEG 2000 (Part 15) codestream ({evidence}), which this build does not decode in-process (OpenJPEG 2.5.0 can abort the process on corrupt HT data; see docs/pixel-codecs.md)");

    /// <summary>The marker segments OpenJPEG 2.5.0 reads in a main or tile-part header (j2k.c marker table, JPWL/JPSEC off).</summary>
    private static bool IsKnownSegment(ushort marker) => marker switch
    {
        Cap or Siz or Cod or Coc => true,
        0xFF55 or 0xFF57 or 0xFF58 or 0xFF59 => true, // TLM, PLM, PLT, CPF
        0xFF5C or 0xFF5D or 0xFF5E or 0xFF5F => true, // QCD, QCC, RGN, POC
        0xFF60 or 0xFF61 or 0xFF63 or 0xFF64 => true, // PPM, PPT, CRG, COM
        0xFF74 or 0xFF75 or 0xFF77 or 0xFF78 => true, // MCT, MCC, MCO, CBD
        _ => false,
    };
}
