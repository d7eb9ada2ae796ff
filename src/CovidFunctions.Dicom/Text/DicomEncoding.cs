using System.Text;

namespace CovidFunctions.Dicom.Text;

/// <summary>
/// The character repertoire of a dataset, from Specific Character Set (0008,0005): decodes and encodes the values of
/// string VRs. Single-valued terms without code extensions (<c>ISO_IR 100</c>, <c>ISO_IR 192</c>, <c>GB18030</c>, ...) use
/// one encoding for the whole value; terms with code extensions (<c>ISO 2022 IR nnn</c>) switch the G0 and G1 code
/// elements with escape sequences (PS3.5 6.1.2.5, PS3.3 C.12.1.1.2) and return to the initial designation of value 1 at
/// the delimiters the standard gives per VR: <c>\</c> between the values of multi-valued VRs (not LT, ST, UT, UR),
/// <c>^</c> and <c>=</c> for PN, CR, LF, FF and TAB in every VR.
/// </summary>
/// <remarks>
/// Deliberate leniencies, shared with pydicom: bytes 0x80–0xFF under the default repertoire decode as ISO 8859-1;
/// JIS X 0201 Romaji (<c>ESC ( J</c>) decodes as ASCII (0x5C stays the value delimiter rather than a yen sign); unknown
/// terms are ignored (their bytes decode under the remaining terms, or the default) and listed in
/// <see cref="UnknownTerms"/>; an unknown escape sequence is kept as text.
/// </remarks>
public sealed class DicomEncoding : IEquatable<DicomEncoding>
{
    private const byte Esc = 0x1B;

    private static readonly Encoding Latin1 = Encoding.Latin1;

    private readonly CodeElement _initialG0;
    private readonly CodeElement? _initialG1;
    private readonly CodeElement[] _extensions;
    private readonly Encoding? _whole;

    private DicomEncoding(string[] terms, CodeElement initialG0, CodeElement? initialG1, CodeElement[] extensions, Encoding? whole, string[] unknown)
    {
        Terms = terms;
        _initialG0 = initialG0;
        _initialG1 = initialG1;
        _extensions = extensions;
        _whole = whole;
        UnknownTerms = unknown;
    }

    /// <summary>The default repertoire, ISO-IR 6 (ASCII; bytes above 0x7F read as ISO 8859-1).</summary>
    public static DicomEncoding Default { get; } = new([], CodeElement.Ascii, null, [], null, []);

    /// <summary>The Specific Character Set values this encoding was made from (empty for <see cref="Default"/>).</summary>
    public IReadOnlyList<string> Terms { get; }

    /// <summary>Terms that were not recognised and were ignored.</summary>
    public IReadOnlyList<string> UnknownTerms { get; }

    /// <summary>True when the values use ISO 2022 code extensions (escape sequences).</summary>
    public bool UsesCodeExtensions => _extensions.Length > 0;

    /// <summary>
    /// The encoding for the values of (0008,0005). An empty list, or a list of empty terms, is <see cref="Default"/>.
    /// Terms are matched case-sensitively after trimming spaces, as the standard spells them; a missing first value means
    /// ISO-IR 6.
    /// </summary>
    public static DicomEncoding FromSpecificCharacterSet(IReadOnlyList<string> terms)
    {
        ArgumentNullException.ThrowIfNull(terms);
        var trimmed = terms.Select(t => (t ?? string.Empty).Trim(' ', '\0')).ToArray();
        if (trimmed.All(t => t.Length == 0))
        {
            return Default;
        }

        var unknown = new List<string>();

        // Single-valued, no code extensions: one encoding for the whole value (also for the multi-byte sets that
        // forbid extensions: UTF-8, GB18030, GBK).
        if (trimmed.Length == 1 || !trimmed.Any(t => t.StartsWith("ISO 2022", StringComparison.Ordinal)))
        {
            var first = trimmed.First(t => t.Length > 0);
            if (WholeValueEncoding(first) is { } whole)
            {
                return new DicomEncoding(trimmed, CodeElement.Ascii, null, [], whole, [.. trimmed.Skip(1).Where(t => t.Length > 0)]);
            }

            if (first == "ISO_IR 6")
            {
                return new DicomEncoding(trimmed, CodeElement.Ascii, null, [], null, []);
            }

            if (first == "ISO_IR 13")
            {
                return new DicomEncoding(trimmed, CodeElement.Romaji, CodeElement.Katakana, [], null, []);
            }

            if (NonExtensionTo2022(first) is { } asExtension && CodeElement.ForTerm(asExtension) is { } element)
            {
                return new DicomEncoding(trimmed, CodeElement.Ascii, element, [], null, []);
            }

            unknown.Add(first);
            return new DicomEncoding(trimmed, CodeElement.Ascii, null, [], null, [.. unknown]);
        }

        // Code extensions. Value 1 gives the initial G0/G1; every value may be designated by escape sequence.
        CodeElement initialG0 = CodeElement.Ascii;
        CodeElement? initialG1 = null;
        var extensions = new List<CodeElement> { CodeElement.Ascii };
        for (var i = 0; i < trimmed.Length; i++)
        {
            var term = trimmed[i];
            if (term.Length == 0)
            {
                continue;
            }

            var name = NonExtensionTo2022(term) ?? term;
            var elements = CodeElement.ElementsForTerm(name);
            if (elements.Length == 0)
            {
                unknown.Add(term);
                continue;
            }

            foreach (var element in elements)
            {
                if (!extensions.Contains(element))
                {
                    extensions.Add(element);
                }

                if (i == 0)
                {
                    if (element.IsG0)
                    {
                        initialG0 = element;
                    }
                    else
                    {
                        initialG1 = element;
                    }
                }
            }
        }

        return new DicomEncoding(trimmed, initialG0, initialG1, [.. extensions], null, [.. unknown]);
    }

    /// <summary>
    /// Decodes the raw value of a string VR (padding included; the caller trims). Escape sequences are honoured and not
    /// returned; the designations return to the initial ones at the delimiters for <paramref name="vrCode"/>. VRs the
    /// character set does not apply to (see <see cref="IsAffectedVR"/>) decode with <see cref="Default"/>.
    /// </summary>
    public string Decode(ReadOnlySpan<byte> value, string vrCode)
    {
        if (value.IsEmpty)
        {
            return string.Empty;
        }

        if (!IsAffectedVR(vrCode) && !ReferenceEquals(this, Default))
        {
            return Default.Decode(value, vrCode);
        }

        if (_whole is not null)
        {
            return _whole.GetString(value);
        }

        if (!value.ContainsAnyExceptInRange((byte)0x00, (byte)0x7F) && _initialG0 == CodeElement.Ascii)
        {
            if (value.IndexOf(Esc) < 0)
            {
                return Encoding.ASCII.GetString(value);
            }
        }

        if (this == Default || (_extensions.Length == 0 && _initialG1 is null && _initialG0 == CodeElement.Ascii))
        {
            return Latin1.GetString(value);
        }

        return DecodeExtended(value, vrCode);
    }

    /// <summary>
    /// Encodes a string value (no padding added). With code extensions, each character is written in the first of the
    /// active or declared repertoires that has it, with the escape sequences needed, returning G0 to the initial set
    /// before each delimiter and at the end of the value. Characters no declared repertoire has become <c>?</c>.
    /// </summary>
    public byte[] Encode(string value, string vrCode)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length == 0)
        {
            return [];
        }

        if (!IsAffectedVR(vrCode) && !ReferenceEquals(this, Default))
        {
            return Default.Encode(value, vrCode);
        }

        if (_whole is not null)
        {
            return _whole.GetBytes(value);
        }

        if (!value.AsSpan().ContainsAnyExceptInRange('\0', '\u007F'))
        {
            return Encoding.ASCII.GetBytes(value);
        }

        if (_extensions.Length == 0 && _initialG1 is null && _initialG0 == CodeElement.Ascii)
        {
            // Default repertoire: Latin-1 round-trips what Decode produces.
            return EncodeLatin1Lenient(value);
        }

        if (_extensions.Length == 0)
        {
            // Non-extension single-byte set (or ISO_IR 13): G0 ASCII/Romaji plus one G1.
            var output = new List<byte>(value.Length);
            foreach (var rune in value.EnumerateRunes())
            {
                if (rune.Value < 0x80)
                {
                    output.Add((byte)rune.Value);
                }
                else if (_initialG1 is not null && _initialG1.TryEncode(rune, out var bytes))
                {
                    output.AddRange(bytes);
                }
                else
                {
                    output.Add((byte)'?');
                }
            }

            return [.. output];
        }

        return EncodeExtended(value, vrCode);
    }

    /// <summary>
    /// The VRs whose values use the Specific Character Set (PS3.5 6.1.2.3): SH, LO, UC, ST, LT, UT, PN. All other
    /// string VRs (AE, AS, CS, DA, DS, DT, IS, TM, UI, UR) use the default repertoire whatever (0008,0005) says.
    /// </summary>
    public static bool IsAffectedVR(string vrCode) => vrCode is "SH" or "LO" or "UC" or "ST" or "LT" or "UT" or "PN";

    private static byte[] EncodeLatin1Lenient(string value)
    {
        var bytes = new byte[value.Length];
        for (var i = 0; i < value.Length; i++)
        {
            bytes[i] = value[i] <= 0xFF ? (byte)value[i] : (byte)'?';
        }

        return bytes;
    }

    /// <summary>
    /// Where the designations return to value 1's (PS3.5 6.1.2.5.3): CR, LF, FF and TAB (and the other controls but ESC)
    /// in every VR, <c>\</c> between values of multi-valued VRs (not LT, ST, UT, UR), <c>^</c> and <c>=</c> in PN.
    /// </summary>
    private static bool IsDelimiter(byte b, string vrCode) => b switch
    {
        (byte)'\\' => vrCode is not ("LT" or "ST" or "UT" or "UR"),
        (byte)'^' or (byte)'=' => vrCode == "PN",
        < 0x20 and not Esc => true,
        _ => false,
    };

    private string DecodeExtended(ReadOnlySpan<byte> value, string vrCode)
    {
        var g0 = _initialG0;
        var g1 = _initialG1;
        var sb = new StringBuilder(value.Length);
        var i = 0;
        while (i < value.Length)
        {
            var b = value[i];
            if (b == Esc)
            {
                var element = CodeElement.FromEscape(value[i..], out var length);
                if (element is not null)
                {
                    if (element.IsG0)
                    {
                        g0 = element;
                    }
                    else
                    {
                        g1 = element;
                    }

                    i += length;
                    continue;
                }

                // Unknown escape: keep it as text.
                sb.Append((char)b);
                i++;
                continue;
            }

            if (b < 0x80)
            {
                if (g0.BytesPerChar == 1)
                {
                    if (IsDelimiter(b, vrCode))
                    {
                        g0 = _initialG0;
                        g1 = _initialG1;
                    }

                    sb.Append((char)b);
                    i++;
                    continue;
                }

                // A multi-byte G0 (JIS X 0208/0212): a run of bytes up to the next ESC or control character.
                var end = i;
                while (end < value.Length && value[end] >= 0x21 && value[end] < 0x7F)
                {
                    end++;
                }

                if (end == i)
                {
                    // Control or space in a multi-byte G0: single byte as ASCII; CR/LF reset the designations.
                    if (IsDelimiter(b, vrCode) || b is 0x0D or 0x0A)
                    {
                        g0 = _initialG0;
                        g1 = _initialG1;
                    }

                    sb.Append((char)b);
                    i++;
                    continue;
                }

                g0.DecodeRun(value[i..end], sb);
                i = end;
                continue;
            }

            // G1 (bytes 0x80-0xFF): a run up to the next byte below 0x80.
            var stop = i;
            while (stop < value.Length && value[stop] >= 0x80)
            {
                stop++;
            }

            if (g1 is null)
            {
                sb.Append(Latin1.GetString(value[i..stop]));
            }
            else
            {
                g1.DecodeRun(value[i..stop], sb);
            }

            i = stop;
        }

        return sb.ToString();
    }

    private byte[] EncodeExtended(string value, string vrCode)
    {
        var output = new List<byte>(value.Length * 2);
        var g0 = _initialG0;
        var g1 = _initialG1;
        foreach (var rune in value.EnumerateRunes())
        {
            if (rune.Value < 0x80 && g0.BytesPerChar == 1 && IsDelimiter((byte)rune.Value, vrCode))
            {
                output.Add((byte)rune.Value);
                g0 = _initialG0;
                g1 = _initialG1;
                continue;
            }

            if (rune.Value < 0x80 && IsDelimiter((byte)rune.Value, vrCode))
            {
                // Return G0 to the initial set before a delimiter.
                output.AddRange(_initialG0.Escape);
                output.Add((byte)rune.Value);
                g0 = _initialG0;
                g1 = _initialG1;
                continue;
            }

            if (rune.Value < 0x80 && rune.Value is < 0x21 or 0x7F && g0.BytesPerChar != 1)
            {
                // Controls and space are written in a single-byte G0.
                var back = _initialG0.BytesPerChar == 1 ? _initialG0 : CodeElement.Ascii;
                output.AddRange(back.Escape);
                g0 = back;
                output.Add((byte)rune.Value);
                continue;
            }

            if (g0.TryEncode(rune, out var bytes))
            {
                output.AddRange(bytes);
                continue;
            }

            if (g1 is not null && g1.TryEncode(rune, out bytes))
            {
                output.AddRange(bytes);
                continue;
            }

            var found = false;
            foreach (var element in _extensions)
            {
                if (element.TryEncode(rune, out bytes))
                {
                    output.AddRange(element.Escape);
                    output.AddRange(bytes);
                    if (element.IsG0)
                    {
                        g0 = element;
                    }
                    else
                    {
                        g1 = element;
                    }

                    found = true;
                    break;
                }
            }

            if (!found)
            {
                if (g0.BytesPerChar != 1)
                {
                    output.AddRange(CodeElement.Ascii.Escape);
                    g0 = CodeElement.Ascii;
                }

                output.Add((byte)'?');
            }
        }

        if (g0 != _initialG0)
        {
            output.AddRange(_initialG0.Escape);
        }

        return [.. output];
    }

    private static Encoding? WholeValueEncoding(string term) => term switch
    {
        "ISO_IR 192" => new UTF8Encoding(false, false),
        "GB18030" => CodePage(54936),
        "GBK" => CodePage(936),
        _ => null,
    };

    /// <summary>A code page of <see cref="CodePagesEncodingProvider"/> (registered on first use; registering twice is a no-op).</summary>
    private static Encoding CodePage(int codePage)
    {
        Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);
        return Encoding.GetEncoding(codePage, EncoderFallback.ExceptionFallback, DecoderFallback.ReplacementFallback);
    }

    /// <summary>Maps a non-extension term (<c>ISO_IR 100</c>) to its code-extension form (<c>ISO 2022 IR 100</c>).</summary>
    private static string? NonExtensionTo2022(string term) =>
        term.StartsWith("ISO_IR ", StringComparison.Ordinal) ? "ISO 2022 IR " + term["ISO_IR ".Length..] : null;

    /// <inheritdoc />
    public bool Equals(DicomEncoding? other) =>
        other is not null && (ReferenceEquals(this, other) || Terms.SequenceEqual(other.Terms, StringComparer.Ordinal));

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as DicomEncoding);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var term in Terms)
        {
            hash.Add(term, StringComparer.Ordinal);
        }

        return hash.ToHashCode();
    }

    /// <inheritdoc />
    public override string ToString() => Terms.Count == 0 ? "ISO_IR 6" : string.Join('\\', Terms);

    public static bool operator ==(DicomEncoding? left, DicomEncoding? right) => left is null ? right is null : left.Equals(right);

    public static bool operator !=(DicomEncoding? left, DicomEncoding? right) => !(left == right);

    /// <summary>One graphic character set designated to G0 or G1 by an escape sequence.</summary>
    private sealed class CodeElement
    {
        private readonly Kind _kind;
        private readonly Encoding? _encoding;

        private CodeElement(string name, Kind kind, bool isG0, int bytesPerChar, byte[] escape, Encoding? encoding)
        {
            Name = name;
            _kind = kind;
            IsG0 = isG0;
            BytesPerChar = bytesPerChar;
            Escape = escape;
            _encoding = encoding;
        }

        private enum Kind
        {
            Ascii,
            Romaji,
            Katakana,
            SingleByteHigh,
            JisX0208,
            JisX0212,
            EucPairs,
        }

        public string Name { get; }

        public bool IsG0 { get; }

        public int BytesPerChar { get; }

        public byte[] Escape { get; }

        public static CodeElement Ascii { get; } = new("ISO 2022 IR 6", Kind.Ascii, true, 1, [Esc, (byte)'(', (byte)'B'], null);

        public static CodeElement Romaji { get; } = new("ISO 2022 IR 13 (G0)", Kind.Romaji, true, 1, [Esc, (byte)'(', (byte)'J'], null);

        public static CodeElement Katakana { get; } = new("ISO 2022 IR 13", Kind.Katakana, false, 1, [Esc, (byte)')', (byte)'I'], null);

        private static readonly Lazy<CodeElement[]> AllLazy = new(CreateAll);

        private static readonly Lazy<Dictionary<char, int>> JisX0212Reverse = new(() =>
        {
            var map = new Dictionary<char, int>(JisX0212Table.MappedCount);
            for (var i = 0; i < JisX0212Table.Cells.Length; i++)
            {
                if (JisX0212Table.Cells[i] != '\uFFFD')
                {
                    map.TryAdd(JisX0212Table.Cells[i], i);
                }
            }

            return map;
        });

        private static CodeElement[] All => AllLazy.Value;

        private static CodeElement[] CreateAll()
        {
            static CodeElement High(string ir, char final, int codePage) =>
                new("ISO 2022 IR " + ir, Kind.SingleByteHigh, false, 1, [Esc, (byte)'-', (byte)final], CodePage(codePage));

            var eucJp = CodePage(20932);
            return
            [
                Ascii,
                Romaji,
                Katakana,
                High("100", 'A', 28591),
                High("101", 'B', 28592),
                High("109", 'C', 28593),
                High("110", 'D', 28594),
                High("144", 'L', 28595),
                High("127", 'G', 28596),
                High("126", 'F', 28597),
                High("138", 'H', 28598),
                High("148", 'M', 28599),
                High("166", 'T', 874),
                new("ISO 2022 IR 87", Kind.JisX0208, true, 2, [Esc, (byte)'$', (byte)'B'], eucJp),
                new("ISO 2022 IR 159", Kind.JisX0212, true, 2, [Esc, (byte)'$', (byte)'(', (byte)'D'], null),
                new("ISO 2022 IR 149", Kind.EucPairs, false, 2, [Esc, (byte)'$', (byte)')', (byte)'C'],
                    CodePage(51949)),
                new("ISO 2022 IR 58", Kind.EucPairs, false, 2, [Esc, (byte)'$', (byte)')', (byte)'A'],
                    CodePage(936)),
            ];
        }

        /// <summary>The code elements a Specific Character Set term designates (IR 13 designates both G0 and G1).</summary>
        public static CodeElement[] ElementsForTerm(string term) => term switch
        {
            "ISO 2022 IR 6" => [Ascii],
            "ISO 2022 IR 13" => [Katakana, Romaji],
            _ => All.Where(e => e.Name == term).ToArray(),
        };

        public static CodeElement? ForTerm(string term) => ElementsForTerm(term).FirstOrDefault();

        public static CodeElement? FromEscape(ReadOnlySpan<byte> span, out int length)
        {
            foreach (var element in All)
            {
                if (span.StartsWith(element.Escape))
                {
                    length = element.Escape.Length;
                    return element;
                }
            }

            length = 0;
            return null;
        }

        public void DecodeRun(ReadOnlySpan<byte> run, StringBuilder sb)
        {
            switch (_kind)
            {
                case Kind.Ascii:
                case Kind.Romaji:
                    foreach (var b in run)
                    {
                        sb.Append((char)b);
                    }

                    break;
                case Kind.Katakana:
                    foreach (var b in run)
                    {
                        sb.Append(b is >= 0xA1 and <= 0xDF ? (char)(0xFF61 + (b - 0xA1)) : '\uFFFD');
                    }

                    break;
                case Kind.SingleByteHigh:
                    sb.Append(_encoding!.GetString(run));
                    break;
                case Kind.JisX0208:
                {
                    var euc = new byte[run.Length];
                    for (var k = 0; k < run.Length; k++)
                    {
                        euc[k] = (byte)(run[k] | 0x80);
                    }

                    sb.Append(_encoding!.GetString(euc));
                    break;
                }

                case Kind.JisX0212:
                    for (var k = 0; k + 1 < run.Length; k += 2)
                    {
                        var row = run[k] - 0x21;
                        var cell = run[k + 1] - 0x21;
                        sb.Append(row is >= 0 and < 94 && cell is >= 0 and < 94 ? JisX0212Table.Cells[(row * 94) + cell] : '\uFFFD');
                    }

                    if (run.Length % 2 == 1)
                    {
                        sb.Append('\uFFFD');
                    }

                    break;
                case Kind.EucPairs:
                    sb.Append(_encoding!.GetString(run));
                    break;
                default:
                    throw new InvalidOperationException(_kind.ToString());
            }
        }

        public bool TryEncode(Rune rune, out byte[] bytes)
        {
            bytes = [];
            switch (_kind)
            {
                case Kind.Ascii:
                case Kind.Romaji:
                    if (rune.Value < 0x80)
                    {
                        bytes = [(byte)rune.Value];
                        return true;
                    }

                    return false;
                case Kind.Katakana:
                    if (rune.Value is >= 0xFF61 and <= 0xFF9F)
                    {
                        bytes = [(byte)(rune.Value - 0xFF61 + 0xA1)];
                        return true;
                    }

                    return false;
                case Kind.JisX0212:
                    if (rune.IsBmp && JisX0212Reverse.Value.TryGetValue((char)rune.Value, out var code))
                    {
                        bytes = [(byte)(0x21 + (code / 94)), (byte)(0x21 + (code % 94))];
                        return true;
                    }

                    return false;
                default:
                    if (rune.Value < 0x80)
                    {
                        return false;
                    }

                    byte[] encoded;
                    try
                    {
                        encoded = _encoding!.GetBytes(rune.ToString());
                    }
                    catch (EncoderFallbackException)
                    {
                        return false;
                    }

                    switch (_kind)
                    {
                        case Kind.SingleByteHigh when encoded.Length == 1 && encoded[0] >= 0xA0:
                            bytes = encoded;
                            return true;
                        case Kind.JisX0208 when encoded.Length == 2 && encoded[0] >= 0xA1 && encoded[1] >= 0xA1:
                            bytes = [(byte)(encoded[0] & 0x7F), (byte)(encoded[1] & 0x7F)];
                            return true;
                        case Kind.EucPairs when encoded.Length == 2 && encoded[0] >= 0xA1 && encoded[1] >= 0xA1:
                            bytes = encoded;
                            return true;
                        default:
                            return false;
                    }
            }
        }
    }
}
