using System.Buffers.Binary;
using System.IO.Compression;

namespace CovidFunctions.Imaging.Preprocessing;

/// <summary>
/// A TIFF reader for the forms CT slices come in (first image only): strips; uncompressed, PackBits, LZW or Deflate
/// (zlib), with or without horizontal-differencing prediction (Predictor 2); chunky planar configuration; 8- or
/// 16-bit unsigned grey (BlackIsZero / WhiteIsZero), 8-bit palette, and 8- or 16-bit RGB(A). Anything else (JPEG or
/// CCITT compression, pre-6.0 LZW, tiles, floats) is refused with <see cref="ImageFormatException"/> naming what was
/// found. SkiaSharp has no TIFF decoder. LZW with Predictor 2 is not hypothetical: 17 of the `neg-unknown` research
/// slices are such TIFFs under a .jpg name (the training code read them through PIL).
/// </summary>
internal static class TiffDecoder
{
    private const ushort TagWidth = 256;
    private const ushort TagHeight = 257;
    private const ushort TagBitsPerSample = 258;
    private const ushort TagCompression = 259;
    private const ushort TagPhotometric = 262;
    private const ushort TagStripOffsets = 273;
    private const ushort TagSamplesPerPixel = 277;
    private const ushort TagRowsPerStrip = 278;
    private const ushort TagStripByteCounts = 279;
    private const ushort TagPlanarConfiguration = 284;
    private const ushort TagPredictor = 317;
    private const ushort TagColorMap = 320;
    private const ushort TagTileWidth = 322;
    private const ushort TagSampleFormat = 339;

    public static GreyImage Decode(ReadOnlySpan<byte> data, string? source)
    {
        var reader = new TiffReader(data.ToArray(), source);
        return reader.ReadFirstImage();
    }

    private const uint CompressionNone = 1;
    private const uint CompressionLzw = 5;
    private const uint CompressionDeflate = 8;
    private const uint CompressionDeflateOld = 32946;
    private const uint CompressionPackBits = 32773;

    private sealed class TiffReader(byte[] data, string? source)
    {
        private readonly bool _bigEndian = data[0] == (byte)'M';
        private readonly Dictionary<ushort, uint[]> _tags = [];

        public GreyImage ReadFirstImage()
        {
            var ifd = U32(4);
            if (ifd < 8 || ifd + 2 > data.Length)
            {
                throw Fail($"first IFD offset {ifd} is outside the file");
            }

            var count = U16((int)ifd);
            for (var i = 0; i < count; i++)
            {
                var e = (int)ifd + 2 + (12 * i);
                if (e + 12 > data.Length)
                {
                    throw Fail("IFD runs past the end of the file");
                }

                var tag = U16(e);
                var type = U16(e + 2);
                var n = U32(e + 4);
                var size = type switch
                {
                    1 or 2 or 6 or 7 => 1,
                    3 or 8 => 2,
                    4 or 9 or 11 => 4,
                    _ => 8,
                };
                if (n > 1 << 24)
                {
                    throw Fail($"tag {tag} has an implausible count {n}");
                }

                var valueOffset = size * n <= 4 ? e + 8 : (int)U32(e + 8);
                if (valueOffset < 0 || valueOffset + (size * (long)n) > data.Length)
                {
                    throw Fail($"tag {tag} values lie outside the file");
                }

                var values = new uint[n];
                for (var k = 0; k < n; k++)
                {
                    values[k] = size switch
                    {
                        1 => data[valueOffset + k],
                        2 => U16(valueOffset + (2 * k)),
                        4 => U32(valueOffset + (4 * k)),
                        _ => 0,
                    };
                }

                _tags[tag] = values;
            }

            var width = (int)Required(TagWidth);
            var height = (int)Required(TagHeight);
            if (width < 1 || height < 1 || width > ImageLoader.MaxSide || height > ImageLoader.MaxSide)
            {
                throw Fail($"TIFF size {width}×{height} is outside 1…{ImageLoader.MaxSide}");
            }

            var compression = Optional(TagCompression, 1);
            if (compression is not (CompressionNone or CompressionLzw or CompressionDeflate or CompressionDeflateOld or CompressionPackBits))
            {
                throw Fail($"TIFF compression {compression} is not supported (only none, LZW, Deflate and PackBits)");
            }

            var predictor = Optional(TagPredictor, 1);
            if (predictor is not (1 or 2))
            {
                throw Fail($"TIFF predictor {predictor} is not supported (only none and horizontal differencing)");
            }

            if (_tags.ContainsKey(TagTileWidth))
            {
                throw Fail("tiled TIFF is not supported (only strips)");
            }

            if (Optional(TagPlanarConfiguration, 1) != 1)
            {
                throw Fail("planar TIFF (PlanarConfiguration 2) is not supported");
            }

            if (Optional(TagSampleFormat, 1) != 1)
            {
                throw Fail("only unsigned-integer TIFF samples are supported");
            }

            var samples = (int)Optional(TagSamplesPerPixel, 1);
            var bits = (int)(_tags.TryGetValue(TagBitsPerSample, out var bps) ? bps[0] : 1);
            var photometric = Required(TagPhotometric);
            if (bits is not (8 or 16))
            {
                throw Fail($"TIFF with {bits} bits per sample is not supported (8 or 16)");
            }

            var colour = photometric == 2;
            if (photometric is > 3 || (colour && samples < 3) || (!colour && samples < 1) || (photometric == 3 && bits != 8))
            {
                throw Fail($"TIFF photometric {photometric} with {samples} samples of {bits} bits is not supported");
            }

            var bytesPerSample = bits / 8;
            var stride = width * samples * bytesPerSample;
            var raw = new byte[(long)stride * height];
            var offsets = _tags.TryGetValue(TagStripOffsets, out var so) ? so : throw Fail("StripOffsets is missing");
            var counts = _tags.TryGetValue(TagStripByteCounts, out var sc) ? sc : throw Fail("StripByteCounts is missing");
            if (offsets.Length != counts.Length)
            {
                throw Fail("StripOffsets and StripByteCounts differ in length");
            }

            // Each strip holds RowsPerStrip rows (the last one fewer); decoding is bounded by the rows the header
            // declares, so a crafted strip cannot expand past the image.
            var rowsPerStrip = (long)Math.Min(Optional(TagRowsPerStrip, uint.MaxValue), (uint)height);
            var written = 0;
            for (var s = 0; s < offsets.Length && written < raw.Length; s++)
            {
                if (offsets[s] + (long)counts[s] > data.Length)
                {
                    throw Fail($"strip {s} lies outside the file");
                }

                var strip = data.AsSpan((int)offsets[s], (int)counts[s]);
                var destination = raw.AsSpan(written, (int)Math.Min(raw.Length - written, rowsPerStrip * stride));
                var n = compression switch
                {
                    CompressionNone => CopyInto(strip, destination),
                    CompressionPackBits => UnpackBits(strip, destination),
                    CompressionLzw => DecodeLzw(strip, destination, s),
                    _ => Inflate(strip, destination, s),
                };
                if (n < destination.Length && s < offsets.Length - 1)
                {
                    throw Fail($"strip {s} decodes to {n} bytes; {destination.Length} expected");
                }

                written += n;
            }

            if (written < raw.Length)
            {
                throw Fail("TIFF image data is truncated");
            }

            if (predictor == 2)
            {
                UndoHorizontalDifferencing(raw, stride, samples, bytesPerSample);
            }

            var colourMap = photometric == 3 ? (_tags.TryGetValue(TagColorMap, out var cm) && cm.Length >= 768 ? cm : throw Fail("palette TIFF without a 256-entry ColorMap")) : null;
            var pixels = new float[width * height];
            var max = bits == 8 ? 255f : 65535f;
            for (var i = 0; i < pixels.Length; i++)
            {
                var o = i * samples * bytesPerSample;
                if (colourMap is not null)
                {
                    var index = raw[o];
                    pixels[i] = ImageLoader.Luma((byte)(colourMap[index] >> 8), (byte)(colourMap[256 + index] >> 8), (byte)(colourMap[512 + index] >> 8));
                }
                else if (colour)
                {
                    float r = Sample(raw, o, bytesPerSample);
                    float g = Sample(raw, o + bytesPerSample, bytesPerSample);
                    float b = Sample(raw, o + (2 * bytesPerSample), bytesPerSample);
                    pixels[i] = ((0.299f * r) + (0.587f * g) + (0.114f * b)) / max;
                }
                else
                {
                    var v = Sample(raw, o, bytesPerSample) / max;
                    pixels[i] = photometric == 0 ? 1f - v : v;
                }
            }

            return new GreyImage(width, height, pixels, source);
        }

        private int Sample(byte[] raw, int offset, int bytes) =>
            bytes == 1 ? raw[offset] : _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(raw.AsSpan(offset)) : BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan(offset));

        private static int CopyInto(ReadOnlySpan<byte> strip, Span<byte> destination)
        {
            var n = Math.Min(strip.Length, destination.Length);
            strip[..n].CopyTo(destination);
            return n;
        }

        private int UnpackBits(ReadOnlySpan<byte> strip, Span<byte> destination)
        {
            int i = 0, o = 0;
            while (i < strip.Length && o < destination.Length)
            {
                var header = (sbyte)strip[i++];
                if (header >= 0)
                {
                    var n = header + 1;
                    if (i + n > strip.Length)
                    {
                        throw Fail("PackBits literal run past the end of the strip");
                    }

                    n = Math.Min(n, destination.Length - o);
                    strip.Slice(i, n).CopyTo(destination[o..]);
                    i += header + 1;
                    o += n;
                }
                else if (header != -128)
                {
                    if (i >= strip.Length)
                    {
                        throw Fail("PackBits repeat run past the end of the strip");
                    }

                    var n = Math.Min(1 - header, destination.Length - o);
                    destination.Slice(o, n).Fill(strip[i++]);
                    o += n;
                }
            }

            return o;
        }

        /// <summary>
        /// TIFF 6.0 LZW (section 13): MSB-first codes of 9–12 bits, Clear 256, EndOfInformation 257, and the code
        /// width growing one code early (after entry 510, 1022, 2046), as every TIFF writer since 6.0 does. Pre-6.0
        /// LSB-first streams start with the bytes 00 01 and are refused.
        /// </summary>
        private int DecodeLzw(ReadOnlySpan<byte> strip, Span<byte> destination, int stripIndex)
        {
            const int Clear = 256, End = 257, First = 258, MaxCodes = 4096;
            if (strip.Length >= 2 && strip[0] == 0 && (strip[1] & 1) == 1)
            {
                throw Fail($"strip {stripIndex} uses pre-TIFF-6.0 (LSB-first) LZW, which is not supported");
            }

            var prefix = new short[MaxCodes];
            var suffix = new byte[MaxCodes];
            var length = new short[MaxCodes];
            for (var c = 0; c < 256; c++)
            {
                suffix[c] = (byte)c;
                length[c] = 1;
            }

            int next = First, width = 9, previous = -1, o = 0;
            long bitPosition = 0, totalBits = strip.Length * 8L;
            while (o < destination.Length && bitPosition + width <= totalBits)
            {
                var code = ReadBits(strip, bitPosition, width);
                bitPosition += width;
                if (code == End)
                {
                    break;
                }

                if (code == Clear)
                {
                    next = First;
                    width = 9;
                    previous = -1;
                    continue;
                }

                int emitted;
                if (previous < 0)
                {
                    if (code > 255)
                    {
                        throw Fail($"strip {stripIndex}: LZW code {code} where a literal must follow Clear");
                    }

                    emitted = code;
                }
                else if (code < next)
                {
                    emitted = code;
                    AddEntry(previous, FirstByte(code));
                }
                else if (code == next && next < MaxCodes)
                {
                    AddEntry(previous, FirstByte(previous));
                    emitted = code;
                }
                else
                {
                    throw Fail($"strip {stripIndex}: LZW code {code} is not in the table (next free {next})");
                }

                o += Emit(emitted, destination[o..]);
                previous = code;
            }

            return o;

            byte FirstByte(int code)
            {
                while (length[code] > 1)
                {
                    code = prefix[code];
                }

                return suffix[code];
            }

            void AddEntry(int before, byte last)
            {
                if (next >= MaxCodes)
                {
                    return; // table full without a Clear: libtiff keeps decoding with the full table
                }

                prefix[next] = (short)before;
                suffix[next] = last;
                length[next] = (short)(length[before] + 1);
                next++;
                if (next >= (1 << width) - 1 && width < 12)
                {
                    width++;
                }
            }

            int Emit(int code, Span<byte> target)
            {
                // A code's string is its prefix chain read backwards; bytes past the end of the strip's rows are
                // dropped.
                var n = length[code];
                for (var k = n - 1; k >= 0; k--)
                {
                    if (k < target.Length)
                    {
                        target[k] = suffix[code];
                    }

                    code = prefix[code];
                }

                return Math.Min(n, target.Length);
            }
        }

        private static int ReadBits(ReadOnlySpan<byte> bytes, long bitPosition, int width)
        {
            var i = (int)(bitPosition >> 3);
            var window = (uint)bytes[i] << 16;
            if (i + 1 < bytes.Length)
            {
                window |= (uint)bytes[i + 1] << 8;
            }

            if (i + 2 < bytes.Length)
            {
                window |= bytes[i + 2];
            }

            var shift = 24 - (int)(bitPosition & 7) - width;
            return (int)((window >> shift) & ((1u << width) - 1));
        }

        private int Inflate(ReadOnlySpan<byte> strip, Span<byte> destination, int stripIndex)
        {
            try
            {
                using var zlib = new ZLibStream(new MemoryStream(strip.ToArray(), writable: false), CompressionMode.Decompress);
                var o = 0;
                int n;
                while (o < destination.Length && (n = zlib.Read(destination[o..])) > 0)
                {
                    o += n;
                }

                return o;
            }
            catch (InvalidDataException ex)
            {
                throw Fail($"strip {stripIndex}: Deflate data is corrupt ({ex.Message})");
            }
        }

        /// <summary>Predictor 2: each sample was stored as the difference from the same sample of the pixel to its left.</summary>
        private void UndoHorizontalDifferencing(byte[] raw, int stride, int samples, int bytesPerSample)
        {
            for (var row = 0; row + stride <= raw.Length; row += stride)
            {
                if (bytesPerSample == 1)
                {
                    for (var i = row + samples; i < row + stride; i++)
                    {
                        raw[i] += raw[i - samples];
                    }

                    continue;
                }

                var step = samples * 2;
                for (var i = row + step; i < row + stride; i += 2)
                {
                    var value = (ushort)(Sample(raw, i, 2) + Sample(raw, i - step, 2));
                    if (_bigEndian)
                    {
                        BinaryPrimitives.WriteUInt16BigEndian(raw.AsSpan(i), value);
                    }
                    else
                    {
                        BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(i), value);
                    }
                }
            }
        }

        private uint Required(ushort tag) => _tags.TryGetValue(tag, out var v) && v.Length > 0 ? v[0] : throw Fail($"required TIFF tag {tag} is missing");

        private uint Optional(ushort tag, uint fallback) => _tags.TryGetValue(tag, out var v) && v.Length > 0 ? v[0] : fallback;

        private ushort U16(int offset)
        {
            if (offset < 0 || offset + 2 > data.Length)
            {
                throw Fail($"read past the end of the file at byte {offset}");
            }

            return _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(offset)) : BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(offset));
        }

        private uint U32(int offset)
        {
            if (offset < 0 || offset + 4 > data.Length)
            {
                throw Fail($"read past the end of the file at byte {offset}");
            }

            return _bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(offset)) : BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(offset));
        }

        private ImageFormatException Fail(string reason) => ImageFormatException.For(source, reason);
    }
}
