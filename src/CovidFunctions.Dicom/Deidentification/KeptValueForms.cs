using System.Collections.Frozen;
using System.Globalization;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// A kept attribute keeps its value only when the value has the attribute's form. The keep-list and the K/C actions say an
/// attribute is safe to keep because of what it means (a slice thickness, a kernel, a modality), not whatever bytes a writer
/// put there: a name in Slice Thickness (DS), an MRN in Series Number (IS), a word in a time (TM), a patient name in
/// Manufacturer or Body Part Examined, ASCII text posing as Rows (US) or as a tag list (AT) would otherwise be copied to the
/// output. What does not fit is emptied (text, positions of multiple values kept) or removed (binary).
/// </summary>
public static class KeptValueForms
{
    /// <summary>
    /// Coded (CS) keep-list attributes with a closed list of terms (PS3.3 defined/enumerated terms, and the PS3.5 E.2.2
    /// character set terms): a value that is not one of them is emptied, its position kept.
    /// </summary>
    private static readonly FrozenDictionary<uint, FrozenSet<string>> Enumerated = new Dictionary<uint, FrozenSet<string>>
    {
        [0x00080005] = Terms( // Specific Character Set (PS3.3 C.12.1.1.2)
            "ISO_IR 6", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 144", "ISO_IR 127", "ISO_IR 126", "ISO_IR 138",
            "ISO_IR 148", "ISO_IR 203", "ISO_IR 13", "ISO_IR 166", "ISO 2022 IR 6", "ISO 2022 IR 100", "ISO 2022 IR 101",
            "ISO 2022 IR 109", "ISO 2022 IR 110", "ISO 2022 IR 144", "ISO 2022 IR 127", "ISO 2022 IR 126", "ISO 2022 IR 138",
            "ISO 2022 IR 148", "ISO 2022 IR 203", "ISO 2022 IR 13", "ISO 2022 IR 166", "ISO 2022 IR 87", "ISO 2022 IR 159",
            "ISO 2022 IR 149", "ISO 2022 IR 58", "ISO_IR 192", "GB18030", "GBK"),
        [0x00080060] = Terms( // Modality (PS3.3 C.7.3.1.1.1, current and retired terms)
            "AR", "ASMT", "AU", "BDUS", "BI", "BMD", "CFM", "CR", "CT", "CTPROTOCOL", "DG", "DMS", "DOC", "DX", "ECG", "EEG", "EMG",
            "EOG", "EPS", "ES", "FID", "GM", "HC", "HD", "IO", "IOL", "IVOCT", "IVUS", "KER", "KO", "LEN", "LS", "MG", "MR", "M3D",
            "NM", "OAM", "OCT", "OP", "OPM", "OPT", "OPTBSV", "OPTENF", "OPV", "OSS", "OT", "PA", "PLAN", "POS", "PR", "PT", "PX",
            "REG", "RESP", "RF", "RG", "RTDOSE", "RTIMAGE", "RTINTENT", "RTPLAN", "RTRAD", "RTRECORD", "RTSEGANN", "RTSTRUCT",
            "RWV", "SEG", "SM", "SMR", "SR", "SRF", "STAIN", "TEXTUREMAP", "TG", "US", "VA", "XA", "XAPROTOCOL", "XC", "CD", "CF",
            "CP", "CS", "DD", "DF", "DM", "DS", "EC", "FA", "FS", "LP", "MA", "MS", "OPR", "ST", "VF"),
        [0x00089205] = Terms("MONOCHROME", "COLOR", "MIXED", "TRUE_COLOR", "COLOR_RANGE", "COLOR_REF"), // Pixel Presentation
        [0x00089206] = Terms("VOLUME", "SAMPLED", "DISTORTED", "MIXED"), // Volumetric Properties
        [0x00089207] = Terms("MAX_IP", "MIN_IP", "VOLUME_RENDER", "SURFACE_RENDER", "MPR", "CURVED_MPR", "NONE", "MIXED"),
        [0x00181140] = Terms("CW", "CC"), // Rotation Direction
        [0x00185100] = Terms( // Patient Position
            "HFP", "HFS", "HFDR", "HFDL", "FFDR", "FFDL", "FFP", "FFS", "LFP", "LFS", "RFP", "RFS", "AFDR", "AFDL", "PFDR", "PFDL",
            "SITTING"),
        [0x00189004] = Terms("PRODUCT", "RESEARCH", "SERVICE"), // Content Qualification
        [0x00189302] = Terms("SEQUENCED", "SPIRAL", "CONSTANT_ANGLE", "STATIONARY", "FREE"), // Acquisition Type
        [0x00189315] = Terms("FILTER_BACK_PROJ", "ITERATIVE"), // Reconstruction Algorithm
        [0x00189316] = Terms("BRAIN", "SOFT_TISSUE", "LUNG", "BONE", "CONSTANT_ANGLE"), // Convolution Kernel Group
        [0x00280004] = Terms([.. Imaging.PhotometricInterpretations.SamplesPerPixel.Keys]), // Photometric Interpretation
        [0x00280301] = Terms("YES", "NO"), // Burned In Annotation
        [0x00280302] = Terms("YES", "NO"), // Recognizable Visual Features
        [0x00281040] = Terms("LIN", "LOG", "DISP"), // Pixel Intensity Relationship
        [0x00282110] = Terms("00", "01"), // Lossy Image Compression
        [0x00282114] = Terms( // Lossy Image Compression Method
            "ISO_10918_1", "ISO_14495_1", "ISO_15444_1", "ISO_15444_15", "ISO_13818_2", "ISO_14496_10", "ISO_23008_2", "ISO_18181_1"),
        [0x00281054] = Terms("HU", "US", "OD", "MGML", "Z_EFF", "ED", "EDW", "HU_MOD", "PCT", "CNR", "NONE"), // Rescale Type
    }.ToFrozenDictionary();

    /// <summary>
    /// Keep-list attributes whose text is free in principle and a vendor or protocol vocabulary in practice: each token must
    /// be a <see cref="DescriptorCleaner"/> token (protocol words, small numbers, kernel codes), a word of this list, or at
    /// most two letters or digits (Philips kernels B, C, L, YA; filter codes); a value with any other token keeps only
    /// its allowed tokens.
    /// </summary>
    private static readonly FrozenSet<uint> FreeText = new uint[]
    {
        0x00080070, // Manufacturer
        0x00180015, // Body Part Examined
        0x00180022, // Scan Options
        0x00181160, // Filter Type
        0x00181210, // Convolution Kernel
        0x00189323, // Exposure Modulation Type
        0x00209056, // Stack ID
    }.ToFrozenSet();

    private static readonly FrozenSet<string> FreeTextWords = new[]
    {
        // Manufacturers and company words.
        "SIEMENS", "HEALTHINEERS", "GE", "MEDICAL", "SYSTEMS", "SYSTEM", "HEALTHCARE", "PHILIPS", "TOSHIBA", "CANON", "HITACHI",
        "UIH", "UNITED", "IMAGING", "NEUSOFT", "FUJIFILM", "FUJI", "SAMSUNG", "IMATRON", "PICKER", "INTERNATIONAL", "ELSCINT",
        "MARCONI", "SHIMADZU", "KONICA", "MINOLTA", "AGFA", "CARESTREAM", "HOLOGIC", "MINFOUND", "SINOVISION", "ANKE",
        "NANOVISION", "PLANMED", "ANALOGIC", "NEUROLOGICA", "XORAN", "CORPORATION", "CORP", "CORP.", "INC", "INC.", "LLC", "LTD",
        "LTD.", "CO", "CO.", "AG", "GMBH", "NV", "B.V.", "BV", "KK", "AMERICA", "NEDERLAND", "SOLUTIONS", "TECHNOLOGIES",
        // Body parts (PS3.16 Annex L codes for the trunk) and scan/filter/modulation words.
        "CHESTABDOMEN", "CHESTABDPELVIS", "ABDOMENPELVIS", "NECKCHEST", "NECKCHESTABDOMEN", "NECKCHESTABDPELV", "HEADNECK",
        "WHOLEBODY", "TORSO", "HEART", "SPINE", "TSPINE", "LSPINE", "CSPINE", "CHEST_TO_PELVIS", "ABD", "TRUNK", "MODE", "HELIX",
        "SPI", "SEQ", "TOP", "CARE", "DOSE4D", "CINE", "GATED", "DUAL", "ENERGY", "FAST", "STEP", "SHOOT", "SCAN", "FILTER",
        "FLAT", "WEDGE", "BOWTIE", "SHAPED", "TIN", "ALUMINUM", "COPPER", "CARDIAC", "TUBE", "CURRENT", "MODULATION",
        "ANGULAR", "XYZ", "XY", "Z", "EC", "XYZ_EC", "XY_EC", "Z_EC", "DOSERIGHT", "SMART", "SMARTMA", "AUTOMA", "SUREEXPOSURE",
        "EXPOSURE", "AEC", "ATCM", "DOM", "D-DOM", "Z-DOM", "ACS", "CHST", "EDGE", "BONEPLUS", "ULTRA", "LUNGENHANCED",
        "HU", "OD", "US", "FIL", "PANCREAS", "LIVER", "KIDNEY", "SPLEEN", "STOMACH", "BLADDER", "HIP", "KNEE", "SHOULDER",
        "BRAIN", "SKULL", "ORBIT", "SINUS", "FACE", "JAW", "EXTREMITY", "ARM", "LEG", "FOOT", "HAND", "AORTA", "BREAST",
        "MEDIASTINUM", "RIB", "STERNUM", "CLAVICLE", "SCAPULA", "COLON", "UPPER", "LOWER", "LEFT", "RIGHT",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    private static readonly char[] TokenSeparators = [' ', '\t', '_', ',', ';', ':', '(', ')', '-', '/', '+', '"', '\'', '^', '='];

    // The magnitude windows of ReadsAsNumbers: 2^-16 .. 2^16 (4-byte floats), 2^-64 .. 2^40 (8-byte floats).
    private const double MinFloat = 1.0 / 65536;
    private const double MaxFloat = 65536;
    private const double MinDouble = 1.0 / 18446744073709551616.0;
    private const double MaxDouble = 1099511627776;

    /// <summary>
    /// The value a kept text attribute may keep: <paramref name="text"/> itself when it has the attribute's form, else the
    /// cleaned text (empty when nothing fits). DS/IS must be numbers, TM a time, enumerated CS a term, free-text keep-list
    /// attributes vocabulary tokens; other kept text is returned as it is.
    /// </summary>
    public static string CleanText(uint tag, DicomVR vr, string text)
    {
        ArgumentNullException.ThrowIfNull(vr);
        ArgumentNullException.ThrowIfNull(text);
        if (vr == DicomVR.DS)
        {
            // Image Orientation (Patient), at the top level or in a Plane Orientation item, is six direction cosines: a
            // value beyond +-1 is not one, and a character code (72\66\81, round 5) is at least 32.
            return AllValues(text, IsDecimalString) && (tag != 0x00200037 || AllValues(text, IsCosine)) ? text : string.Empty;
        }

        if (vr == DicomVR.IS)
        {
            return AllValues(text, IsIntegerString) ? text : string.Empty;
        }

        if (vr == DicomVR.TM)
        {
            return AllValues(text, IsTime) ? text : string.Empty;
        }

        if (Enumerated.TryGetValue(tag, out var terms))
        {
            var parts = text.Split('\\');
            for (var i = 0; i < parts.Length; i++)
            {
                var term = parts[i].Trim(' ', '\0');
                parts[i] = term.Length == 0 || terms.Contains(term) ? term : string.Empty;
            }

            var joined = string.Join('\\', parts).TrimEnd('\\');
            return joined == text.TrimEnd(' ', '\0') ? text : joined;
        }

        if (tag == 0x00200020)
        {
            // Patient Orientation: direction letters only (A P L R H F, and the quadruped/eye terms' letters are not CT).
            return text.All(c => c is 'A' or 'P' or 'L' or 'R' or 'H' or 'F' or '\\' or ' ') ? text : string.Empty;
        }

        if (FreeText.Contains(tag))
        {
            return CleanFreeText(text);
        }

        return text;
    }

    /// <summary>
    /// True when a kept binary value has its VR's form: a whole number of values, no more than the dictionary's VM allows,
    /// and for AT every value a standard attribute of the dictionary (a tag list is where four-byte text hides).
    /// </summary>
    public static bool BinaryFits(DicomTag tag, DicomVR vr, ReadOnlySpan<byte> value)
    {
        ArgumentNullException.ThrowIfNull(vr);
        var unit = vr == DicomVR.AT ? 4 : vr.UnitSize; // AT's swap unit is 2, its value a group and element pair
        if (unit < 1 || value.Length % unit != 0)
        {
            return false;
        }

        var count = value.Length / unit;
        if (DicomDictionary.Lookup(tag) is { } entry && MaxValues(entry.VM) is { } max && count > max)
        {
            return false;
        }

        if (vr == DicomVR.AT)
        {
            for (var i = 0; i < value.Length; i += 4)
            {
                // Values are little endian in memory whatever the file's byte order (the reader swaps).
                var pointed = new DicomTag(
                    System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(value[i..]),
                    System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(value[(i + 2)..]));
                if (pointed.IsPrivate || DicomDictionary.Lookup(pointed) is null)
                {
                    return false;
                }
            }
        }

        return true;
    }

    /// <summary>
    /// True when a kept binary number's bytes read as numbers rather than as text written into a number's bytes (a name,
    /// a birth date or an MRN as whole 4- or 8-byte values of Dimension Index Values, CTDIvol or a float triple). The
    /// count check (<see cref="BinaryFits"/>) cannot see it: text is whole values. Judged by what real values look like:
    /// <list type="bullet">
    /// <item>Integers (US SS UL SL UV SV, OL OV): no run of three or more printable ASCII bytes (0x20-0x7E), nor three or
    /// more UTF-16 characters (a printable byte beside a NUL), in the bytes as held or with each value's bytes reversed
    /// (as a big endian file writes them). A real count, index, size or pixel value has NUL or 0xFF high bytes: three
    /// printable bytes need a value of at least 0x202020 (2,105,376), two values in a row with printable high bytes
    /// or a UTF-16 pair at least 0x200020.</item>
    /// <item>Floats (FL FD OF OD): bytes cannot tell (38.4 as FD is <c>333333C@</c>; the corpus's Calcium Scoring Mass
    /// Factor Device is twelve printable bytes), but the exponent can: text puts a character in the top byte, and so
    /// a magnitude no measurement has. Each value must be zero, a subnormal of at most two non-zero bytes (the bit
    /// pattern of a small integer, as GE writes integers into FL rows), or finite with a magnitude within
    /// [2^-16, 2^16] (4-byte floats, whose 8-bit exponent puts most text in any wider window) or [2^-64, 2^40] (8-byte
    /// floats: only a top character of <c>&lt;=&gt;?@AB</c> lands there). A value whose mantissa bytes (the low three of
    /// a 4-byte float, the low six of an 8-byte one) hold text must also be the nearest float to a decimal of at most 6
    /// (4-byte, or a 4-byte float widened) or 12 (8-byte) significant digits (round 5): text shaped to the window fills
    /// the mantissa.</item>
    /// </list>
    /// Other VRs (OB, OW: bytes and words of anything; AT: <see cref="BinaryFits"/>) are not judged here (true).
    /// </summary>
    public static bool ReadsAsNumbers(DicomVR vr, ReadOnlySpan<byte> value)
    {
        ArgumentNullException.ThrowIfNull(vr);
        if (vr == DicomVR.FL || vr == DicomVR.OF)
        {
            return FloatsFit(value, 4);
        }

        if (vr == DicomVR.FD || vr == DicomVR.OD)
        {
            return FloatsFit(value, 8);
        }

        if (!vr.IsBinaryNumber && vr != DicomVR.OL && vr != DicomVR.OV)
        {
            return true;
        }

        var unit = vr.UnitSize;
        return unit < 2 || value.Length % unit != 0 || !HoldsText(value, unit);
    }

    /// <summary>Three or more printable ASCII characters in a row (either byte order of each value), or in UTF-16.</summary>
    private static bool HoldsText(ReadOnlySpan<byte> value, int unit)
    {
        const int Run = 3;
        int asIs = 0, swapped = 0, utf16 = 0;
        for (var i = 0; i < value.Length; i++)
        {
            var start = i - (i % unit);
            var mirrored = value[start + unit - 1 - (i % unit)];
            asIs = IsPrintable(value[i]) ? asIs + 1 : 0;
            swapped = IsPrintable(mirrored) ? swapped + 1 : 0;
            if (asIs >= Run || swapped >= Run)
            {
                return true;
            }

            if (i % 2 == 1)
            {
                // A 16-bit unit holding one character and a NUL, in either order (UTF-16LE or BE, or a US value 32-126).
                var (a, b) = (value[i - 1], value[i]);
                utf16 = (IsPrintable(a) && b == 0) || (a == 0 && IsPrintable(b)) ? utf16 + 1 : 0;
                if (utf16 >= Run)
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static bool IsPrintable(byte b) => b is >= 0x20 and <= 0x7E;

    private static bool FloatsFit(ReadOnlySpan<byte> value, int unit)
    {
        if (value.Length % unit != 0)
        {
            return false;
        }

        for (var i = 0; i < value.Length; i += unit)
        {
            var bytes = value.Slice(i, unit);
            double magnitude;
            bool subnormal;
            if (unit == 4)
            {
                var f = System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(bytes);
                subnormal = float.IsSubnormal(f);
                magnitude = Math.Abs((double)f);
            }
            else
            {
                var d = System.Buffers.Binary.BinaryPrimitives.ReadDoubleLittleEndian(bytes);
                subnormal = double.IsSubnormal(d);
                magnitude = Math.Abs(d);
            }

            if (!double.IsFinite(magnitude))
            {
                return false;
            }

            if (magnitude == 0)
            {
                continue;
            }

            if (subnormal)
            {
                var nonZero = 0;
                foreach (var b in bytes)
                {
                    nonZero += b == 0 ? 0 : 1;
                }

                if (nonZero > 2)
                {
                    return false;
                }

                continue;
            }

            var (min, max) = unit == 4 ? (MinFloat, MaxFloat) : (MinDouble, MaxDouble);
            if (magnitude < min || magnitude > max)
            {
                return false;
            }

            // Text shaped to the window (round 5): the top byte a character that lands in it, the bytes below a name.
            // Printable bytes alone do not tell (38.4 is 333333C@), the digits do: a measured value is the nearest float to
            // a decimal of a few significant digits, text fills the mantissa. So a value whose mantissa bytes (the low three
            // of a 4-byte float, the low six of an 8-byte one; the bytes above hold the sign and exponent, printable for
            // most magnitudes: 9.7 is ..d#@) hold text, a run of three printable bytes or UTF-16 as for integers, must
            // also be such a decimal.
            if (HoldsText(bytes[..(unit == 4 ? 3 : 6)], unit == 4 ? 3 : 6) && !IsShortDecimal(magnitude, unit))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The most significant digits of a measured value's shortest decimal: 4-byte floats (or an 8-byte float that is a 4-byte one widened), 8-byte floats.</summary>
    private const int FloatDigits = 6;
    private const int DoubleDigits = 12;

    /// <summary>
    /// True when <paramref name="magnitude"/> is the nearest float of its width to a decimal of at most
    /// <see cref="FloatDigits"/> (4-byte) or <see cref="DoubleDigits"/> (8-byte) significant digits. An 8-byte value that is
    /// a 4-byte float widened (0.35f is 0.3499999940395355) is judged as the 4-byte float it was. The shortest round-trip
    /// decimal of text in a mantissa needs 8 or 9 digits (4-byte) and 15 to 17 (8-byte); the corpus's values need at most
    /// 11 (Siemens 129.60000193).
    /// </summary>
    private static bool IsShortDecimal(double magnitude, int unit)
    {
        var asFloat = (float)magnitude;
        return unit == 4 || (double)asFloat == magnitude
            ? SignificantDigits(asFloat.ToString("R", CultureInfo.InvariantCulture)) <= FloatDigits
            : SignificantDigits(magnitude.ToString("R", CultureInfo.InvariantCulture)) <= DoubleDigits;
    }

    /// <summary>Significant digits of a shortest round-trip decimal ("0.000123" 3, "250" 2, "6.1E-17" 2).</summary>
    private static int SignificantDigits(string shortest)
    {
        var e = shortest.IndexOfAny(['E', 'e']);
        var digits = (e < 0 ? shortest : shortest[..e]).Where(char.IsAsciiDigit).ToArray();
        var text = new string(digits).TrimStart('0').TrimEnd('0');
        return Math.Max(text.Length, 1);
    }

    /// <summary>
    /// What the instance says of its frames and dimensions, read before anything changes: the frames are the larger of
    /// Number of Frames (an integer string) and the Per-frame Functional Groups items (a file may lack the former:
    /// liver_1frame.dcm in the corpus), at least 1; the dimensions the top level's Dimension Index Sequence items, or null
    /// without one. Dimension Index Values are judged against them (<see cref="DimensionIndexValuesFit"/>).
    /// </summary>
    public static (int Frames, int? Dimensions) FrameShape(DicomDataset dataset)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        var frames = 1;
        if (dataset.TryGetString(new DicomTag(0x0028, 0x0008), out var declared)
            && int.TryParse(declared.Trim(' ', '\0'), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n))
        {
            frames = Math.Max(frames, n);
        }

        if (dataset.TryGet(new DicomTag(0x5200, 0x9230), out var perFrame) && perFrame is DicomSequence items)
        {
            frames = Math.Max(frames, items.Items.Count);
        }

        int? dimensions = dataset.TryGet(new DicomTag(0x0020, 0x9222), out var index) && index is DicomSequence dimensionItems
            ? dimensionItems.Items.Count
            : null;
        return (frames, dimensions);
    }

    /// <summary>
    /// True when Dimension Index Values (UL, little endian in memory) are indices of this instance: as many values as the
    /// top level's Dimension Index Sequence has items (<paramref name="dimensions"/>; none without that sequence: there is
    /// nothing to index), each within [1, <paramref name="frames"/>]. PS3.3 C.7.6.17.1: the values are the positions, starting
    /// at 1, of the frame's value along each dimension, and a dimension has at most as many distinct values as there are
    /// frames. A name one character per value (72\66\81) is neither in a one- or two-frame instance.
    /// </summary>
    public static bool DimensionIndexValuesFit(ReadOnlySpan<byte> value, int frames, int? dimensions)
    {
        if (dimensions is not { } count || value.Length != count * 4)
        {
            return false;
        }

        for (var i = 0; i < value.Length; i += 4)
        {
            var index = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(value[i..]);
            if (index < 1 || index > (uint)Math.Max(frames, 1))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// True when every value of a TM text is a time (PS3.5 Table 6.2-1): HH[MM[SS[.F{1,6}]]], a range of two with '-', or the
    /// ACR-NEMA HH:MM:SS form; empty values fit.
    /// </summary>
    public static bool IsTimeValue(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return AllValues(text, IsTime);
    }

    private static bool IsTime(string value)
    {
        var v = value.Trim(' ', '\0');
        if (v.Length == 0)
        {
            return true;
        }

        var dash = v.IndexOf('-', StringComparison.Ordinal);
        return dash < 0 ? IsOneTime(v) : (dash == 0 || IsOneTime(v[..dash])) && (dash == v.Length - 1 || IsOneTime(v[(dash + 1)..]));
    }

    private static bool IsOneTime(string v)
    {
        var s = v.Replace(":", string.Empty, StringComparison.Ordinal);
        var dot = s.IndexOf('.', StringComparison.Ordinal);
        var whole = dot < 0 ? s : s[..dot];
        if (whole.Length is not (2 or 4 or 6) || !whole.All(char.IsAsciiDigit))
        {
            return false;
        }

        if (dot >= 0)
        {
            var fraction = s[(dot + 1)..];
            if (whole.Length != 6 || fraction.Length is 0 or > 6 || !fraction.All(char.IsAsciiDigit))
            {
                return false;
            }
        }

        return int.Parse(whole[..2], CultureInfo.InvariantCulture) < 24
            && (whole.Length < 4 || int.Parse(whole[2..4], CultureInfo.InvariantCulture) < 60)
            && (whole.Length < 6 || int.Parse(whole[4..6], CultureInfo.InvariantCulture) < 61);
    }

    private static bool IsDecimalString(string v) =>
        v.Length <= 16 && (v.Length == 0 || (double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d)
            && v.All(c => char.IsAsciiDigit(c) || c is '+' or '-' or '.' or 'e' or 'E')));

    /// <summary>A direction cosine: within [-1, 1], with 0.01 for a writer's rounding (an empty value fits).</summary>
    private static bool IsCosine(string v) =>
        v.Length == 0 || (double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && Math.Abs(d) <= 1.01);

    private static bool IsIntegerString(string v) =>
        v.Length <= 12 && (v.Length == 0 || (long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n)
            && n is >= int.MinValue and <= int.MaxValue));

    private static bool AllValues(string text, Func<string, bool> fits) =>
        text.Split('\\').All(v => fits(v.Trim(' ', '\0')));

    private static string CleanFreeText(string text)
    {
        var values = text.Split('\\');
        var changed = false;
        for (var i = 0; i < values.Length; i++)
        {
            var tokens = values[i].Split(TokenSeparators, StringSplitOptions.RemoveEmptyEntries);
            if (tokens.All(IsFreeTextToken))
            {
                continue; // kept as written, separators included
            }

            values[i] = string.Join(' ', tokens.Where(IsFreeTextToken));
            changed = true;
        }

        return changed ? string.Join('\\', values).TrimEnd('\\') : text;
    }

    /// <summary>
    /// A free-text token: a <see cref="DescriptorCleaner"/> token, a word of <see cref="FreeTextWords"/>, a kernel code, one
    /// letter or digit (Philips kernels B, C, D; an initial carries one character), or a listed two-character code
    /// (<see cref="TwoCharacterCodes"/>). Until session 22 any two letters passed, and with them the two-letter surnames
    /// (Li, Wu, Ng, Xu, Yu, Ho, Le, Lu, Ma: 30 in the Faker locales' surname lists).
    /// </summary>
    private static bool IsFreeTextToken(string token) =>
        DescriptorCleaner.IsAllowed(token)
        || FreeTextWords.Contains(token)
        || (token.Length == 1 && char.IsAsciiLetterOrDigit(token[0]))
        || TwoCharacterCodes.Contains(token)
        || IsKernelCode(token);

    /// <summary>
    /// Two-character codes of the free-text attributes: the MR Scan Options defined terms of two letters (PS3.3 C.8.3.1:
    /// FC flow compensation, SP spatial presaturation, FS fat saturation, RG respiratory and CG cardiac gating; the corpus
    /// has FC, SP, FS), Philips CT kernels (YA-YD, EA-EC, UA-UC beside the one-letter A-E, L), filter materials (Cu, Al,
    /// Sn). Vendor abbreviations (GE, AG, CO, NV, BV, KK) and modulation codes (XY, EC) are in <see cref="FreeTextWords"/>.
    /// </summary>
    private static readonly FrozenSet<string> TwoCharacterCodes = new[]
    {
        "FC", "SP", "FS", "RG", "CG", "YA", "YB", "YC", "YD", "EA", "EB", "EC", "UA", "UB", "UC", "CU", "AL", "SN", "MR",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// A reconstruction kernel code of any vendor prefix: one or two letters, two digits, an optional letter (Siemens
    /// <c>Bf37f</c>, <c>Sa36f</c>, <c>Hc44</c>, <c>Qd40</c>; <see cref="DescriptorCleaner"/> knows only the common prefixes).
    /// </summary>
    private static bool IsKernelCode(string token)
    {
        var letters = 0;
        while (letters < token.Length && char.IsAsciiLetter(token[letters]))
        {
            letters++;
        }

        var rest = token.AsSpan(letters);
        return letters is 1 or 2
            && rest.Length is 2 or 3
            && char.IsAsciiDigit(rest[0]) && char.IsAsciiDigit(rest[1])
            && (rest.Length == 2 || char.IsAsciiLetter(rest[2]));
    }

    /// <summary>The most values a VM allows (<c>1</c>, <c>3</c>, <c>1-3</c>), or null when unbounded (<c>1-n</c>, <c>2-2n</c>).</summary>
    private static int? MaxValues(string vm)
    {
        var last = vm.Contains('-', StringComparison.Ordinal) ? vm[(vm.LastIndexOf('-') + 1)..] : vm;
        return int.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out var max) ? max : null;
    }

    private static FrozenSet<string> Terms(params string[] terms) => terms.ToFrozenSet(StringComparer.Ordinal);
}
