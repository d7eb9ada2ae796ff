using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// Huffman lossless JPEG (ITU-T T.81 Annex H, SOF3): processes 14 and 14 SV1, predictors 0–7, point transform,
/// restart intervals, interleaved or one-component-per-scan. Written here rather than taken from JpegLibrary because
/// JpegLibrary keeps reconstructed samples as <c>short</c>, so with 16-bit precision predictors 5–7 (which halve a
/// difference) go wrong once a sample exceeds 32767; CT written with predictor 6 hits this. Reconstruction here is
/// modulo 2^16 as H.1.2.1 specifies.
/// </summary>
internal static class JpegLosslessDecoder
{
    public static DecodedFrame Decode(ReadOnlySpan<byte> data, JpegStreamInfo info, PixelFormat format, FrameGeometry geometry, string uid)
    {
        if (info.IsSubsampled)
        {
            throw CodecErrors.Unsupported(uid, "lossless JPEG with subsampled components is not supported");
        }

        var width = info.Width;
        var height = info.Height;
        var componentCount = info.ComponentCount;
        var planes = new ushort[componentCount][];
        for (var c = 0; c < componentCount; c++)
        {
            planes[c] = new ushort[width * height];
        }

        var tables = new HuffmanTable?[4];
        var restartInterval = 0;
        var pos = 2;
        var scans = 0;
        while (pos + 2 <= data.Length)
        {
            if (data[pos] != 0xFF)
            {
                throw CodecErrors.Corrupt(uid, $"expected a JPEG marker at byte {pos}");
            }

            var marker = data[pos + 1];
            if (marker == 0xFF)
            {
                pos++;
                continue;
            }

            if (marker == 0xD9)
            {
                break;
            }

            if (marker is 0x01 or (>= 0xD0 and <= 0xD7))
            {
                pos += 2;
                continue;
            }

            if (pos + 4 > data.Length)
            {
                break;
            }

            var length = BinaryPrimitives.ReadUInt16BigEndian(data[(pos + 2)..]);
            if (length < 2 || pos + 2 + length > data.Length)
            {
                throw CodecErrors.Corrupt(uid, $"marker FF{marker:X2} segment of {length} bytes runs past the end of the frame");
            }

            var segment = data.Slice(pos + 4, length - 2);
            pos += 2 + length;
            switch (marker)
            {
                case 0xC4:
                    ReadHuffmanTables(segment, tables, uid);
                    break;
                case 0xDD:
                    restartInterval = segment.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(segment) : 0;
                    break;
                case 0xDA:
                    pos = DecodeScan(data, pos, segment, info, tables, restartInterval, planes, uid);
                    scans++;
                    break;
                default:
                    break;
            }
        }

        if (scans == 0)
        {
            throw CodecErrors.Corrupt(uid, "lossless JPEG frame has no scan");
        }

        var output = new byte[geometry.FrameBytes];
        var mask = info.Precision == 16 ? 0xFFFF : (1 << info.Precision) - 1;
        var pixels = width * height;
        for (var c = 0; c < componentCount; c++)
        {
            var plane = planes[c];
            if (geometry.BytesPerSample == 1)
            {
                for (int p = 0, o = c; p < pixels; p++, o += componentCount)
                {
                    output[o] = (byte)(plane[p] & mask);
                }
            }
            else
            {
                for (int p = 0, o = 2 * c; p < pixels; p++, o += 2 * componentCount)
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(output.AsSpan(o), (ushort)(plane[p] & mask));
                }
            }
        }

        // Lossless JPEG applies no colour transform: the samples are what the header says.
        return new DecodedFrame(output, format.PhotometricInterpretation, 0);
    }

    private static void ReadHuffmanTables(ReadOnlySpan<byte> segment, HuffmanTable?[] tables, string uid)
    {
        var pos = 0;
        while (pos < segment.Length)
        {
            if (pos + 17 > segment.Length)
            {
                throw CodecErrors.Corrupt(uid, "truncated DHT segment");
            }

            var tableClass = segment[pos] >> 4;
            var tableId = segment[pos] & 0x0F;
            var counts = segment.Slice(pos + 1, 16);
            var total = 0;
            foreach (var count in counts)
            {
                total += count;
            }

            if (total > 256 || pos + 17 + total > segment.Length || tableId > 3)
            {
                throw CodecErrors.Corrupt(uid, "invalid DHT segment");
            }

            // Lossless scans use the DC (class 0) tables only.
            if (tableClass == 0)
            {
                tables[tableId] = new HuffmanTable(counts, segment.Slice(pos + 17, total), uid);
            }

            pos += 17 + total;
        }
    }

    /// <returns>The position just after the scan's entropy-coded data.</returns>
    private static int DecodeScan(ReadOnlySpan<byte> data, int entropyStart, ReadOnlySpan<byte> header, JpegStreamInfo info,
        HuffmanTable?[] tables, int restartInterval, ushort[][] planes, string uid)
    {
        int ns = header[0];
        if (ns is < 1 or > 4 || header.Length < 4 + (2 * ns))
        {
            throw CodecErrors.Corrupt(uid, $"SOS with {ns} components");
        }

        var componentIndex = new int[ns];
        var scanTables = new HuffmanTable[ns];
        for (var i = 0; i < ns; i++)
        {
            var id = header[1 + (2 * i)];
            var index = Array.IndexOf(info.ComponentIds, id);
            var table = tables[header[2 + (2 * i)] >> 4];
            if (index < 0 || table is null)
            {
                throw CodecErrors.Corrupt(uid, $"scan component {id} has no frame component or Huffman table");
            }

            componentIndex[i] = index;
            scanTables[i] = table;
        }

        int predictor = header[1 + (2 * ns)];
        var pointTransform = header[3 + (2 * ns)] & 0x0F;
        if (predictor > 7 || pointTransform >= info.Precision)
        {
            throw CodecErrors.Corrupt(uid, $"invalid predictor {predictor} or point transform {pointTransform}");
        }

        var width = info.Width;
        var height = info.Height;
        var initial = 1 << (info.Precision - pointTransform - 1);
        var reader = new BitReader(data, entropyStart);
        if (ns == 1 && restartInterval == 0)
        {
            DecodeSingleComponent(ref reader, scanTables[0], planes[componentIndex[0]], width, height, predictor, initial, uid);
            ShiftPointTransform(planes, componentIndex, pointTransform);
            return reader.EndPosition();
        }

        var mcusToRestart = restartInterval;
        var resetRow = true; // the first line of the scan (and of each restart interval) predicts from Ra only
        var resetSample = true;
        for (var y = 0; y < height; y++)
        {
            var firstLine = resetRow;
            resetRow = false;
            var row = y * width;
            for (var x = 0; x < width; x++)
            {
                if (restartInterval > 0)
                {
                    if (mcusToRestart == 0)
                    {
                        reader.Restart(uid);
                        mcusToRestart = restartInterval;
                        resetSample = true;
                        if (x == 0)
                        {
                            firstLine = true;
                        }
                    }

                    mcusToRestart--;
                }

                for (var i = 0; i < ns; i++)
                {
                    var plane = planes[componentIndex[i]];
                    var diff = reader.DecodeDifference(scanTables[i], uid);
                    int prediction;
                    if (resetSample)
                    {
                        prediction = initial;
                    }
                    else if (firstLine)
                    {
                        prediction = plane[row + x - 1];
                    }
                    else if (x == 0)
                    {
                        prediction = plane[row - width];
                    }
                    else
                    {
                        int ra = plane[row + x - 1], rb = plane[row - width + x], rc = plane[row - width + x - 1];
                        prediction = predictor switch
                        {
                            1 => ra,
                            2 => rb,
                            3 => rc,
                            4 => ra + rb - rc,
                            5 => ra + ((rb - rc) >> 1),
                            6 => rb + ((ra - rc) >> 1),
                            7 => (ra + rb) >> 1,
                            _ => 0,
                        };
                    }

                    plane[row + x] = (ushort)(prediction + diff);
                }

                resetSample = false;
            }
        }

        ShiftPointTransform(planes, componentIndex, pointTransform);
        return reader.EndPosition();
    }

    private static void ShiftPointTransform(ushort[][] planes, int[] componentIndex, int pointTransform)
    {
        if (pointTransform == 0)
        {
            return;
        }

        foreach (var index in componentIndex)
        {
            var plane = planes[index];
            for (var p = 0; p < plane.Length; p++)
            {
                plane[p] = (ushort)(plane[p] << pointTransform);
            }
        }
    }

    /// <summary>
    /// The common case (greyscale CT: one component, no restart interval) with the predictor chosen once per row rather
    /// than per sample. Same arithmetic as the general loop: first row from Ra, first column from Rb, modulo 2^16.
    /// </summary>
    private static void DecodeSingleComponent(ref BitReader reader, HuffmanTable table, ushort[] plane, int width, int height,
        int predictor, int initial, string uid)
    {
        var first = plane.AsSpan(0, width);
        first[0] = (ushort)(initial + reader.DecodeDifference(table, uid));
        for (var x = 1; x < width; x++)
        {
            first[x] = (ushort)(first[x - 1] + reader.DecodeDifference(table, uid));
        }

        for (var y = 1; y < height; y++)
        {
            var above = plane.AsSpan((y - 1) * width, width);
            var row = plane.AsSpan(y * width, width);
            row[0] = (ushort)(above[0] + reader.DecodeDifference(table, uid));
            switch (predictor)
            {
                case 1:
                    for (var x = 1; x < row.Length; x++)
                    {
                        row[x] = (ushort)(row[x - 1] + reader.DecodeDifference(table, uid));
                    }

                    break;
                case 2:
                    for (var x = 1; x < row.Length; x++)
                    {
                        row[x] = (ushort)(above[x] + reader.DecodeDifference(table, uid));
                    }

                    break;
                default:
                    for (var x = 1; x < row.Length && x < above.Length; x++)
                    {
                        int ra = row[x - 1], rb = above[x], rc = above[x - 1];
                        var prediction = predictor switch
                        {
                            3 => rc,
                            4 => ra + rb - rc,
                            5 => ra + ((rb - rc) >> 1),
                            6 => rb + ((ra - rc) >> 1),
                            7 => (ra + rb) >> 1,
                            _ => 0,
                        };
                        row[x] = (ushort)(prediction + reader.DecodeDifference(table, uid));
                    }

                    break;
            }
        }
    }

    /// <summary>A canonical Huffman table with a 9-bit lookahead table and the T.81 F.2.2.3 slow path.</summary>
    private sealed class HuffmanTable
    {
        public const int LookaheadBits = 9;

        // Lookahead entry: (code length << 8) | value; 0 means the code is longer than LookaheadBits.
        public readonly ushort[] Lookahead = new ushort[1 << LookaheadBits];
        public readonly int[] MaxCode = new int[18];
        public readonly int[] ValueOffset = new int[17];
        public readonly byte[] Values;

        public HuffmanTable(ReadOnlySpan<byte> counts, ReadOnlySpan<byte> values, string uid)
        {
            Values = values.ToArray();
            var code = 0;
            var k = 0;
            for (var length = 1; length <= 16; length++)
            {
                int count = counts[length - 1];
                ValueOffset[length] = k - code;
                for (var i = 0; i < count; i++, k++, code++)
                {
                    if (length <= LookaheadBits)
                    {
                        var shift = LookaheadBits - length;
                        var first = code << shift;
                        for (var j = 0; j < 1 << shift; j++)
                        {
                            Lookahead[first + j] = (ushort)((length << 8) | Values[k]);
                        }
                    }
                }

                MaxCode[length] = count > 0 ? code - 1 : -1;
                if (code > 1 << length)
                {
                    throw CodecErrors.Corrupt(uid, "Huffman table has more codes than its lengths allow");
                }

                code <<= 1;
            }

            MaxCode[17] = int.MaxValue;
        }
    }

    /// <summary>Reads entropy-coded bits, removing stuffed zero bytes and stopping (feeding zeros) at a marker.</summary>
    private ref struct BitReader(ReadOnlySpan<byte> data, int start)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos = start;
        private ulong _bits;
        private int _count;
        private bool _atMarker;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int DecodeDifference(HuffmanTable table, string uid)
        {
            if (_count < 32)
            {
                Fill();
            }

            var peek = (int)(_bits >> (_count - HuffmanTable.LookaheadBits)) & ((1 << HuffmanTable.LookaheadBits) - 1);
            var entry = table.Lookahead[peek];
            int ssss;
            if (entry != 0)
            {
                _count -= entry >> 8;
                ssss = entry & 0xFF;
            }
            else
            {
                ssss = SlowDecode(table, uid);
            }

            if (ssss == 0)
            {
                return 0;
            }

            if (ssss >= 16)
            {
                return 32768;
            }

            if (_count < ssss)
            {
                Fill();
            }

            _count -= ssss;
            var value = (int)(_bits >> _count) & ((1 << ssss) - 1);
            return value < 1 << (ssss - 1) ? value - (1 << ssss) + 1 : value;
        }

        private int SlowDecode(HuffmanTable table, string uid)
        {
            var code = 0;
            for (var length = 1; length <= 16; length++)
            {
                if (_count < 1)
                {
                    Fill();
                }

                _count--;
                code = (code << 1) | (int)((_bits >> _count) & 1);
                if (code <= table.MaxCode[length])
                {
                    return table.Values[table.ValueOffset[length] + code];
                }
            }

            throw CodecErrors.Corrupt(uid, "invalid Huffman code in lossless JPEG scan");
        }

        private void Fill()
        {
            while (_count <= 56)
            {
                byte next = 0;
                if (!_atMarker && _pos < _data.Length)
                {
                    next = _data[_pos];
                    if (next == 0xFF)
                    {
                        var following = _pos + 1 < _data.Length ? _data[_pos + 1] : (byte)0xD9;
                        if (following == 0x00)
                        {
                            _pos += 2;
                        }
                        else
                        {
                            // A marker ends the entropy-coded segment; the decoder sees zero bits after it.
                            _atMarker = true;
                            next = 0;
                        }
                    }
                    else
                    {
                        _pos++;
                    }
                }

                _bits = (_bits << 8) | next;
                _count += 8;
            }
        }

        /// <summary>Drops the buffered bits and consumes the RSTn marker that must follow.</summary>
        public void Restart(string uid)
        {
            _bits = 0;
            _count = 0;
            _atMarker = false;
            while (_pos + 1 < _data.Length && !(_data[_pos] == 0xFF && _data[_pos + 1] != 0x00 && _data[_pos + 1] != 0xFF))
            {
                _pos++;
            }

            if (_pos + 1 >= _data.Length || _data[_pos + 1] is < 0xD0 or > 0xD7)
            {
                throw CodecErrors.Corrupt(uid, "expected a restart marker in lossless JPEG scan");
            }

            _pos += 2;
        }

        /// <summary>The position of the marker after the scan (or the end of the data).</summary>
        public readonly int EndPosition()
        {
            var pos = _pos;
            while (pos + 1 < _data.Length && !(_data[pos] == 0xFF && _data[pos + 1] != 0x00 && _data[pos + 1] != 0xFF && _data[pos + 1] is < 0xD0 or > 0xD7))
            {
                pos++;
            }

            return pos + 1 < _data.Length ? pos : _data.Length;
        }
    }
}
