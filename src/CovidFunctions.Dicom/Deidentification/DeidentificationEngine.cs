using System.Text;
using CovidFunctions.Dicom.IO;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>The result of de-identifying one instance: refused with a reason, or done with an audit.</summary>
public sealed record DeidOutcome(DeidRejection? Rejection, DeidAudit? Audit)
{
    /// <summary>
    /// True when the instance was de-identified (and may be written). An accepted file's Pixel Data is pixels only: an
    /// encapsulated value whose frames do not decode is refused (<see cref="DeidRejectReason.PixelDataUnreadable"/>), never
    /// accepted with its fragments as read.
    /// </summary>
    public bool Accepted => Rejection is null;
}

/// <summary>
/// The PS3.15 Annex E de-identifier: table-driven (Table E.1-1 + keep-list, allowlist: no rule → removed), recursive into
/// sequences, applied to the file meta group too, with keyed deterministic UID, pseudonym and date-shift mappings. Two
/// engines with the same key and options produce identical output for identical input, in any process. Thread-safe: one
/// engine may serve many instances in parallel.
/// </summary>
public sealed class DeidentificationEngine
{
    /// <summary>Our Implementation Class UID, written to (0002,0012) of every output.</summary>
    public const string ImplementationClassUid = "2.25.270094735512331431093066447960431785536";

    /// <summary>Our Implementation Version Name, written to (0002,0013).</summary>
    public const string ImplementationVersionName = "COVIDFN_DEID_1";

    /// <summary>CT Image Storage.</summary>
    public const string CtImageStorage = "1.2.840.10008.5.1.4.1.1.2";

    /// <summary>Enhanced CT Image Storage.</summary>
    public const string EnhancedCtImageStorage = "1.2.840.10008.5.1.4.1.1.2.1";

    private static readonly DicomTag PatientName = new(0x0010, 0x0010);
    private static readonly DicomTag PatientId = new(0x0010, 0x0020);
    private static readonly DicomTag IssuerOfPatientId = new(0x0010, 0x0021);
    private static readonly DicomTag SopClassUid = new(0x0008, 0x0016);
    private static readonly DicomTag SopInstanceUid = new(0x0008, 0x0018);
    private static readonly DicomTag ImageType = new(0x0008, 0x0008);
    private static readonly DicomTag BurnedInAnnotation = new(0x0028, 0x0301);
    private static readonly DicomTag PatientIdentityRemoved = new(0x0012, 0x0062);
    private static readonly DicomTag DeidentificationMethod = new(0x0012, 0x0063);
    private static readonly DicomTag DeidentificationMethodCodeSequence = new(0x0012, 0x0064);
    private static readonly DicomTag LongitudinalTemporalInformationModified = new(0x0028, 0x0303);
    private static readonly DicomTag CodeValue = new(0x0008, 0x0100);
    private static readonly DicomTag CodingSchemeDesignator = new(0x0008, 0x0102);
    private static readonly DicomTag CodeMeaning = new(0x0008, 0x0104);
    private static readonly DicomTag FileMetaInformationVersionTag = new(0x0002, 0x0001);
    private static readonly DicomTag MediaStorageSopClassUid = new(0x0002, 0x0002);
    private static readonly DicomTag MediaStorageSopInstanceUid = new(0x0002, 0x0003);
    private static readonly DicomTag ImplementationClassUidTag = new(0x0002, 0x0012);
    private static readonly DicomTag ImplementationVersionNameTag = new(0x0002, 0x0013);

    private readonly KeyedMappings _mappings;
    private readonly DeidKey _key;
    private readonly string[] _methodText;

    /// <summary>An engine under <paramref name="key"/> with <paramref name="options"/> (defaults when null).</summary>
    public DeidentificationEngine(DeidKey key, DeidentificationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        Options = options ?? new DeidentificationOptions();
        Options.Validate();
        Rules = new DeidRuleSet(Options);
        _mappings = new KeyedMappings(key);
        _key = key;
        _methodText = BuildMethodText(Options);
    }

    /// <summary>
    /// A key for another keyed mapping under this engine's key (<see cref="DeidKey.DeriveSubkey"/>), for a holder of the
    /// engine only (ingest keys its upload read list with it); the key itself stays inside.
    /// </summary>
    public byte[] DeriveSubkey(string purpose) => _key.DeriveSubkey(purpose);

    /// <summary>The options in force.</summary>
    public DeidentificationOptions Options { get; }

    /// <summary>The resolved rules.</summary>
    public DeidRuleSet Rules { get; }

    /// <summary>The keyed mappings (UIDs, pseudonyms, date shifts) this engine uses.</summary>
    public KeyedMappings Mappings => _mappings;

    /// <summary>
    /// The burned-in text policy: only CT Image Storage and Enhanced CT Image Storage with Image Type ORIGINAL\PRIMARY and
    /// Burned In Annotation not YES pass. Null when the instance passes.
    /// </summary>
    public static DeidRejection? CheckPolicy(DicomDataset dataset, DicomDataset? fileMeta = null)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        var sopClass = TrimUid(dataset.TryGetString(SopClassUid, out var s) ? s : null)
            ?? TrimUid(fileMeta is not null && fileMeta.TryGetString(MediaStorageSopClassUid, out var m) ? m : null);
        if (string.IsNullOrEmpty(sopClass))
        {
            return new DeidRejection(DeidRejectReason.MissingSopClass, "No SOP Class UID: cannot tell whether pixels may carry burned-in text.");
        }

        if (sopClass is not (CtImageStorage or EnhancedCtImageStorage))
        {
            var shown = KeyedMappings.IsWellKnownUid(sopClass) ? sopClass : "a non-standard SOP class";
            return new DeidRejection(
                DeidRejectReason.UnsupportedSopClass,
                $"SOP class {shown} is not CT Image Storage or Enhanced CT Image Storage; it may carry burned-in text (quarantined).");
        }

        var imageType = dataset.TryGetString(ImageType, out var it) ? it.Split('\\') : [];
        if (imageType.Length < 2
            || !imageType[0].Trim().Equals("ORIGINAL", StringComparison.Ordinal)
            || !imageType[1].Trim().Equals("PRIMARY", StringComparison.Ordinal))
        {
            return new DeidRejection(
                DeidRejectReason.NotOriginalPrimary,
                "Image Type is not ORIGINAL\\PRIMARY (derived, secondary, screen or dose capture): quarantined.");
        }

        // VM is 1, but a multi-valued element with a YES anywhere is still a YES. Read as the CS it is whatever its label: an
        // OB-labelled YES formatted as numbers ("89\69\83") passed, and the keep-list then wrote it back as CS YES.
        if (AsCodeString(dataset, BurnedInAnnotation) is { } burned
            && burned.Split('\\').Any(v => v.Trim().Equals("YES", StringComparison.OrdinalIgnoreCase)))
        {
            return new DeidRejection(DeidRejectReason.BurnedInAnnotation, "Burned In Annotation is YES: quarantined.");
        }

        return null;
    }

    /// <summary>
    /// De-identifies <paramref name="dataset"/> (and <paramref name="fileMeta"/> when given) in place. A refused instance
    /// is left untouched. Not for concurrent use on the same dataset; one engine may serve many datasets at once.
    /// </summary>
    /// <remarks>
    /// Attributes only: a top-level encapsulated Pixel Data is refused (<see cref="DeidRejectReason.PixelDataUnreadable"/>),
    /// since without the file's transfer syntax its frames cannot be decoded and rewritten as pixels, and its fragments
    /// kept as they are could carry anything. <see cref="DeidentifyFile"/> rewrites them.
    /// </remarks>
    public DeidOutcome Deidentify(DicomDataset dataset, DicomDataset? fileMeta = null)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        var rejection = CheckPolicy(dataset, fileMeta);
        if (rejection is not null)
        {
            return new DeidOutcome(rejection, null);
        }

        if (dataset.TryGet(DicomTags.PixelData, out var pixelData) && pixelData is DicomFragmentSequence)
        {
            return new DeidOutcome(
                new DeidRejection(
                    DeidRejectReason.PixelDataUnreadable,
                    "Encapsulated Pixel Data without its file's transfer syntax cannot be decoded and rewritten as pixels; its fragments are not kept."),
                null);
        }

        return DeidentifyAttributes(dataset, fileMeta);
    }

    /// <summary>The attribute rules, the pseudonym and the de-identification record, on a dataset the policy accepted.</summary>
    private DeidOutcome DeidentifyAttributes(DicomDataset dataset, DicomDataset? fileMeta)
    {
        var pseudonym = _mappings.Pseudonym(
            dataset.TryGetString(IssuerOfPatientId, out var issuer) ? issuer : null,
            dataset.TryGetString(PatientId, out var pid) ? pid : null,
            dataset.TryGetString(PatientName, out var pname) ? pname : null,
            Options.PseudonymLength);
        var (frames, dimensions) = KeptValueForms.FrameShape(dataset);
        var context = new Context(this, pseudonym, _mappings.DateShiftDays(pseudonym), new DeidAudit(), frames, dimensions);

        Process(dataset, context, depth: 0);

        // Always present, always the pseudonym (Type 2 in the CT IOD).
        dataset.SetString(PatientName, DicomVR.PN, pseudonym);
        dataset.SetString(PatientId, DicomVR.LO, pseudonym);
        WriteDeidentificationRecord(dataset);
        context.Audit.OptionCodes = [.. Rules.EnabledOptions.Select(o => ((int)o).ToString(System.Globalization.CultureInfo.InvariantCulture))];

        if (fileMeta is not null)
        {
            ProcessFileMeta(fileMeta, dataset, context);
        }

        return new DeidOutcome(null, context.Audit);
    }

    /// <summary>
    /// De-identifies a file in place: dataset, file meta group, preamble (zeroed: vendors have put text there) and Pixel
    /// Data (<see cref="PixelDataRewrite"/>: encapsulated frames decoded and written native, bytes beyond the frames
    /// dropped). Encapsulated frames that do not decode cannot be rewritten as pixels, so the file is refused
    /// (<see cref="DeidRejectReason.PixelDataUnreadable"/>): no accepted outcome carries fragments as read, whatever the
    /// caller checks. A refused file is left untouched.
    /// </summary>
    public DeidOutcome DeidentifyFile(DicomFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var rejection = CheckPolicy(file.Dataset, file.FileMetaInformation);
        if (rejection is not null)
        {
            return new DeidOutcome(rejection, null);
        }

        // Decoded before anything changes, so a refusal leaves the file as it was read.
        var pixels = PixelDataRewrite.Prepare(file, out var pixelRefusal);
        if (pixelRefusal is not null)
        {
            return new DeidOutcome(pixelRefusal, null);
        }

        var outcome = DeidentifyAttributes(file.Dataset, file.FileMetaInformation);
        file.Preamble = new byte[128];
        pixels?.Apply(file);
        return outcome;
    }

    private static string? TrimUid(string? uid) => uid?.Trim('\0', ' ');

    /// <summary>A CS value's text; under a binary VR label (OB, OW, ...) its bytes read as the text they are.</summary>
    private static string? AsCodeString(DicomDataset dataset, DicomTag tag) =>
        dataset.TryGet(tag, out var element) && element is DicomValueElement { VR.IsString: false, VR.Code: not "UN" } value
            ? Encoding.Latin1.GetString(value.RawValue.Span).TrimEnd('\0', ' ')
            : dataset.TryGetString(tag, out var text) ? text : null;

    private static string[] BuildMethodText(DeidentificationOptions options) =>
    [
        "CovidFunctions deid 1: PS3.15 Annex E " + AnnexEActionTable.Edition + " Basic Profile",
        "allowlist; keyed HMAC-SHA256 UIDs, pseudonym, date shift",
        "CID 7050: " + string.Join(' ', options.EnabledOptions.Select(o => ((int)o).ToString(System.Globalization.CultureInfo.InvariantCulture))),
    ];

    private void WriteDeidentificationRecord(DicomDataset dataset)
    {
        dataset.SetString(PatientIdentityRemoved, DicomVR.CS, "YES");
        dataset.SetValues(DeidentificationMethod, DicomVR.LO, _methodText);
        var items = new List<DicomDataset>();
        foreach (var option in Rules.EnabledOptions)
        {
            var item = new DicomDataset();
            item.SetString(CodeValue, DicomVR.SH, ((int)option).ToString(System.Globalization.CultureInfo.InvariantCulture));
            item.SetString(CodingSchemeDesignator, DicomVR.SH, "DCM");
            item.SetString(CodeMeaning, DicomVR.LO, DeidOptionMeanings.Of(option));
            items.Add(item);
        }

        dataset.AddOrUpdate(new DicomSequence(DeidentificationMethodCodeSequence, items));
        dataset.SetString(LongitudinalTemporalInformationModified, DicomVR.CS, Options.RetainLongitudinalModifiedDates ? "MODIFIED" : "REMOVED");
    }

    private void ProcessFileMeta(DicomDataset meta, DicomDataset dataset, Context context)
    {
        foreach (var element in meta.ToArray())
        {
            switch (element.Tag.Value)
            {
                case 0x00020010:
                    context.Audit.Kept++;
                    break;
                case 0x00020001 or 0x00020002 or 0x00020003 or 0x00020012 or 0x00020013:
                    break; // rewritten below
                default:
                    // Group length (recomputed by the writer), source/sending/receiving AE titles, private information.
                    meta.Remove(element.Tag);
                    if (element.Tag.IsGroupLength)
                    {
                        context.Audit.GroupLengthsRemoved++;
                    }
                    else
                    {
                        context.Audit.Removed++;
                    }

                    break;
            }
        }

        // Written, not carried over: the version is OB (any bytes could follow 00\01), and the class is the one the
        // policy accepted (the dataset's, else the meta group's own), never another UID the meta group held.
        meta.AddOrUpdate(new DicomValueElement(FileMetaInformationVersionTag, DicomVR.OB, new byte[] { 0, 1 }));
        var sopClass = TrimUid(dataset.TryGetString(SopClassUid, out var c) ? c : null) is { Length: > 0 } datasetClass
            ? datasetClass
            : TrimUid(meta.TryGetString(MediaStorageSopClassUid, out var m) ? m : null);
        if (!string.IsNullOrEmpty(sopClass))
        {
            meta.SetString(MediaStorageSopClassUid, DicomVR.UI, sopClass);
        }

        if (dataset.TryGetString(SopInstanceUid, out var sop) && sop.Length > 0)
        {
            meta.SetString(MediaStorageSopInstanceUid, DicomVR.UI, sop);
            context.Audit.UidsRemapped++;
        }
        else
        {
            meta.Remove(MediaStorageSopInstanceUid);
        }

        meta.SetString(ImplementationClassUidTag, DicomVR.UI, ImplementationClassUid);
        meta.SetString(ImplementationVersionNameTag, DicomVR.SH, ImplementationVersionName);
    }

    private void Process(DicomDataset dataset, Context context, int depth)
    {
        var safePrivate = Options.RetainSafePrivate ? SafePrivateTags(dataset) : null;
        foreach (var read in dataset.ToArray())
        {
            var element = read;
            var tag = element.Tag;
            var value = tag.Value;
            if (tag.IsPrivate)
            {
                if (safePrivate is not null && safePrivate.TryGetValue(value, out var safeRow))
                {
                    // Retain Safe Private (113111): a Table E.3.10-1 element or the creator of its block.
                    if (element is DicomSequence safeSequence)
                    {
                        ProcessItems(safeSequence, context, depth);
                    }
                    else if (safeRow?.VR == "UI")
                    {
                        // A UID is an identifier whatever block holds it (NQHeader's Analyzed Series UID names the series):
                        // remapped like every other, so it still matches the remapped attribute it refers to.
                        RemapUidValue(dataset, element, context, instance: true);
                        continue;
                    }

                    context.Audit.Kept++;
                    continue;
                }

                dataset.Remove(tag);
                context.Audit.PrivateRemoved++;
                continue;
            }

            if (tag.IsGroupLength)
            {
                dataset.Remove(tag);
                context.Audit.GroupLengthsRemoved++;
                continue;
            }

            if (element is DicomValueElement { VR.Code: "UN" } unknown && IsSequenceInDictionary(tag))
            {
                // A sequence re-encoded as UN by a node that did not know its VR (PS3.5 6.2.2: implicit VR little endian
                // items). Parsed so its items go through the rules like any sequence's; kept as bytes, it would carry
                // whatever its items hold. Bytes that are not items cannot be inspected: removed.
                var parsed = TryReadUNSequence(unknown, depth);
                if (parsed is null)
                {
                    dataset.Remove(tag);
                    context.Audit.Removed++;
                    continue;
                }

                dataset.AddOrUpdate(parsed);
                element = parsed;
            }

            if (depth > 0 && tag.Group == 0x7FE0)
            {
                // Pixel Data and its offset tables belong to the top level; inside an item (other than the Icon Image
                // Sequence, removed whole) they are an image nobody inspects.
                dataset.Remove(tag);
                context.Audit.Removed++;
                continue;
            }

            if (element is DicomFragmentSequence && (depth > 0 || value != DicomTags.PixelData.Value))
            {
                // An OB/OW value of undefined length is read as fragments; only the top-level Pixel Data may be encapsulated
                // (PS3.5 A.4), and it is decoded and rewritten. Fragments anywhere else are bytes no rule can inspect.
                dataset.Remove(tag);
                context.Audit.Removed++;
                continue;
            }

            if (value is 0x00080008 or 0x00089007 && element is DicomValueElement)
            {
                // Image Type / Frame Type: values 1-2 are checked by the policy; later values are defined terms that reach
                // the series report, anything else there (a name) is emptied, its position kept.
                dataset.SetString(tag, DicomVR.CS, ImageTypeValues.Clean(dataset.GetString(tag) ?? string.Empty));
                context.Audit.Cleaned++;
                continue;
            }

            if (value is 0x00100010 or 0x00100020)
            {
                // Patient Name / Patient ID: Z in Table E.1-1; Z allows a dummy, and ours is the keyed pseudonym.
                var vr = value == 0x00100010 ? DicomVR.PN : DicomVR.LO;
                dataset.SetString(tag, vr, context.Pseudonym);
                context.Audit.Dummied++;
                continue;
            }

            if (value is 0x00120062 or 0x00120063 or 0x00120064 or 0x00280303)
            {
                // The de-identification record is rewritten at the top level, never carried over.
                dataset.Remove(tag);
                context.Audit.Removed++;
                continue;
            }

            var (action, source) = Rules.Lookup(value);
            if (action == DeidAction.Keep && element is DicomValueElement characteristic && PatientCharacteristics.IsChecked(value)
                && !PatientCharacteristics.Fits(value, characteristic, EffectiveVR(element).IsString ? dataset.GetString(tag) : null))
            {
                // Kept by 113108 as a characteristic; this value is not one (a name, an ID): emptied.
                Zero(dataset, element);
                context.Audit.Cleaned++;
                continue;
            }

            switch (action)
            {
                case DeidAction.Keep:
                    element = AsAttributeVR(dataset, element);
                    if (element is DicomSequence keptSequence)
                    {
                        ProcessItems(keptSequence, context, depth);
                    }
                    else if (EffectiveVR(element) == DicomVR.UI)
                    {
                        // A kept UID attribute (a class UID): well-known UIDs stay, anything else is remapped.
                        Remap(dataset, element, context, depth, instance: source != DeidRuleSource.KeepList);
                        break;
                    }
                    else if (MeantVR(element) == DicomVR.UI)
                    {
                        // The same under another text VR (a VR changed in transit): mapped, and written as the UI it is.
                        RemapUidValue(dataset, element, context, instance: source != DeidRuleSource.KeepList);
                        break;
                    }
                    else if (element is DicomValueElement keptValue && !KeepsItsForm(dataset, keptValue, source, context))
                    {
                        break;
                    }

                    context.Audit.Kept++;
                    break;
                case DeidAction.Remove:
                    dataset.Remove(tag);
                    if (source == DeidRuleSource.Unlisted)
                    {
                        context.Audit.UnlistedRemoved++;
                    }
                    else
                    {
                        context.Audit.Removed++;
                    }

                    break;
                case DeidAction.Zero:
                    Zero(dataset, element);
                    context.Audit.Zeroed++;
                    break;
                case DeidAction.Dummy:
                    Dummy(dataset, element, context, depth);
                    break;
                case DeidAction.Clean:
                    Clean(dataset, element, context, depth);
                    break;
                case DeidAction.RemapUid:
                    Remap(dataset, element, context, depth);
                    break;
            }
        }
    }

    /// <summary>
    /// The private tags of <paramref name="dataset"/> (this level only) kept by the Retain Safe Private Option: each data
    /// element whose group, block creator (resolved from (gggg,00xx), padding trimmed, case-sensitive) and element offset
    /// match a row of Table E.3.10-1, plus the creator elements of those blocks (mapped to null). A row whose VR is SQ is
    /// kept only when the element was parsed as a sequence (so its items can be de-identified); raw bytes of an unknown
    /// sequence are removed, as is a value that is not what its row says (<see cref="SafePrivateAttributes.ValueFits"/>).
    /// </summary>
    private static Dictionary<uint, SafePrivateAttribute?> SafePrivateTags(DicomDataset dataset)
    {
        var kept = new Dictionary<uint, SafePrivateAttribute?>();
        foreach (var element in dataset)
        {
            var tag = element.Tag;
            if (tag.PrivateCreatorTag is not { } creatorTag
                || !dataset.TryGetString(creatorTag, out var creator))
            {
                continue;
            }

            var row = SafePrivateAttributes.Find(tag.Group, creator, (byte)(tag.Element & 0xFF));
            if (row is null
                || (row.VR == "SQ" && element is not DicomSequence)
                || (element is DicomValueElement safeValue && !SafePrivateAttributes.ValueFits(row, safeValue.RawValue.Span)))
            {
                continue;
            }

            kept[tag.Value] = row;
            kept[creatorTag.Value] = null;
        }

        return kept;
    }

    private void ProcessItems(DicomSequence sequence, Context context, int depth)
    {
        foreach (var item in sequence.Items)
        {
            context.Audit.SequenceItems++;
            Process(item, context, depth + 1);
        }
    }

    private static bool IsSequenceInDictionary(DicomTag tag) =>
        !tag.IsPrivate && DicomDictionary.Lookup(tag) is { } entry && entry.ValueRepresentations.Contains(DicomVR.SQ);

    /// <summary>
    /// The items of a UN-encoded sequence, or null when its bytes are not items or would nest deeper than the reader's
    /// limit counted from the top level (a UN inside a UN item inside ... must not recurse without bound).
    /// </summary>
    private static DicomSequence? TryReadUNSequence(DicomValueElement element, int depth)
    {
        var remainingDepth = DicomReadOptions.Default.MaxSequenceDepth - depth;
        if (remainingDepth < 1)
        {
            return null;
        }

        try
        {
            return DicomReader.ReadUNValueAsSequence(
                element.Tag, element.RawValue, DicomReadOptions.Default with { MaxSequenceDepth = remainingDepth }, sourceName: null);
        }
        catch (DicomException)
        {
            return null;
        }
    }

    private static void Zero(DicomDataset dataset, DicomElement element)
    {
        switch (element)
        {
            case DicomSequence sequence:
                sequence.Clear();
                break;
            default:
                dataset.AddOrUpdate(new DicomValueElement(element.Tag, EffectiveVR(element), ReadOnlyMemory<byte>.Empty));
                break;
        }
    }

    private void Dummy(DicomDataset dataset, DicomElement element, Context context, int depth)
    {
        if (element is DicomSequence sequence)
        {
            // D on a sequence: keep the items' structure, every attribute in them de-identified by its own rule.
            ProcessItems(sequence, context, depth);
            context.Audit.Dummied++;
            return;
        }

        var vr = EffectiveVR(element);
        if (vr == DicomVR.UI)
        {
            Remap(dataset, element, context, depth);
            return;
        }

        if (vr.IsString)
        {
            dataset.SetString(element.Tag, vr, DummyText(vr));
        }
        else if (vr == DicomVR.UN)
        {
            // An unknown VR cannot be given a meaningful dummy: remove it (stricter).
            dataset.Remove(element.Tag);
            context.Audit.Removed++;
            return;
        }
        else
        {
            var size = Math.Max(vr.UnitSize, 2);
            dataset.AddOrUpdate(new DicomValueElement(element.Tag, vr, new byte[size]));
        }

        context.Audit.Dummied++;
    }

    private void Clean(DicomDataset dataset, DicomElement element, Context context, int depth)
    {
        if (element is DicomSequence sequence)
        {
            ProcessItems(sequence, context, depth);
            context.Audit.Cleaned++;
            return;
        }

        var vr = EffectiveVR(element);
        if (vr == DicomVR.DA || vr == DicomVR.DT)
        {
            if (!Options.RetainLongitudinalModifiedDates)
            {
                Dummy(dataset, element, context, depth);
                return;
            }

            var text = dataset.GetString(element.Tag) ?? string.Empty;
            var shifted = vr == DicomVR.DA ? DateShifter.ShiftDA(text, context.DateShiftDays) : DateShifter.ShiftDT(text, context.DateShiftDays);
            dataset.SetString(element.Tag, vr, shifted ?? string.Empty);
            context.Audit.DatesShifted++;
            return;
        }

        if (vr == DicomVR.TM)
        {
            // A whole-day shift leaves times of day unchanged, so date + time pairs stay consistent; a value that is not a
            // time (a name) is emptied.
            var time = dataset.GetString(element.Tag) ?? string.Empty;
            if (!KeptValueForms.IsTimeValue(time))
            {
                Zero(dataset, element);
                context.Audit.Cleaned++;
                return;
            }

            context.Audit.Kept++;
            return;
        }

        if (vr == DicomVR.UI)
        {
            Remap(dataset, element, context, depth);
            return;
        }

        if (vr.IsString)
        {
            var text = dataset.GetString(element.Tag) ?? string.Empty;
            dataset.SetString(element.Tag, vr, DescriptorCleaner.Clean(text));
            context.Audit.Cleaned++;
            return;
        }

        Dummy(dataset, element, context, depth);
    }

    /// <summary>
    /// A kept value keeps only its form (<see cref="KeptValueForms"/>): DS/IS/TM of any kept attribute and keep-list text
    /// are emptied or cleaned when they are not what the attribute holds; a binary number or tag list that is not whole
    /// values within the VM, or a binary number whose bytes are text (<see cref="KeptValueForms.ReadsAsNumbers"/>), is
    /// removed. False when the element was changed (counted here).
    /// </summary>
    private static bool KeepsItsForm(DicomDataset dataset, DicomValueElement element, DeidRuleSource source, Context context)
    {
        var vr = AttributeVR(element) ?? MeantVR(element);
        var tag = element.Tag;
        if (vr.IsString)
        {
            if (source != DeidRuleSource.KeepList && vr != DicomVR.DS && vr != DicomVR.IS && vr != DicomVR.TM)
            {
                return true; // an Annex E K (an option's column) keeps its text as written
            }

            var text = dataset.GetString(tag) ?? string.Empty;
            var cleaned = KeptValueForms.CleanText(tag.Value, vr, text);
            if (string.Equals(cleaned, text, StringComparison.Ordinal))
            {
                return true;
            }

            dataset.SetString(tag, vr, cleaned);
            context.Audit.Cleaned++;
            return false;
        }

        // Bulk data (a value over 64 KiB left in the source file) is loaded and checked like any other: a kept number that
        // large is not one.
        if ((vr.IsBinaryNumber || vr == DicomVR.AT) && !KeptValueForms.BinaryFits(tag, vr, element.RawValue.Span))
        {
            dataset.Remove(tag);
            context.Audit.Removed++;
            return false;
        }

        // Whole values within the VM can still be text written as numbers (a name as Dimension Index Values UL, a birth
        // date as CTDIvol FD): removed like any binary value not of its form. Pixel Data (group 7FE0) is the pixel
        // rewrite's and holds no kept number.
        if (tag.Group != 0x7FE0 && !KeptValueForms.ReadsAsNumbers(vr, element.RawValue.Span))
        {
            dataset.Remove(tag);
            context.Audit.Removed++;
            return false;
        }

        // Dimension Index Values are indices of this instance's frames, one per dimension (round 5): a name one character
        // per value (72\66\81) reads as numbers, not as indices of a one- or two-frame instance.
        if (tag.Value == 0x00209157 && !KeptValueForms.DimensionIndexValuesFit(element.RawValue.Span, context.Frames, context.Dimensions))
        {
            dataset.Remove(tag);
            context.Audit.Removed++;
            return false;
        }

        return true;
    }

    /// <summary>
    /// A UID attribute's value mapped (<see cref="RemapUidValue"/>); a sequence's items de-identified. <paramref name="instance"/>:
    /// the attribute names an instance (every rule but a keep: Table E.1-1's U rows), not a class.
    /// </summary>
    private void Remap(DicomDataset dataset, DicomElement element, Context context, int depth, bool instance = true)
    {
        if (element is DicomSequence sequence)
        {
            ProcessItems(sequence, context, depth);
            context.Audit.UidsRemapped++;
            return;
        }

        var vr = EffectiveVR(element);
        if (vr != DicomVR.UI)
        {
            // U names UID attributes; anything else found under such a tag is not understood: remove it.
            dataset.Remove(element.Tag);
            context.Audit.Removed++;
            return;
        }

        RemapUidValue(dataset, element, context, instance);
    }

    /// <summary>
    /// Every UID in the value (multi-valued: value by value) replaced by its keyed mapping; written as UI. An instance UID
    /// under the DICOM root is mapped unless it is a registry's well-known instance (<see cref="KeyedMappings.MapInstanceUid"/>);
    /// a class UID under the root stays.
    /// </summary>
    private void RemapUidValue(DicomDataset dataset, DicomElement element, Context context, bool instance)
    {
        var text = element is DicomValueElement raw && raw.VR == DicomVR.UN
            ? Encoding.Latin1.GetString(raw.RawValue.Span).TrimEnd('\0', ' ')
            : dataset.GetString(element.Tag) ?? string.Empty;
        var parts = text.Split('\\');
        for (var i = 0; i < parts.Length; i++)
        {
            parts[i] = instance ? _mappings.MapInstanceUid(parts[i].Trim('\0', ' ')) : _mappings.MapUid(parts[i].Trim('\0', ' '));
        }

        dataset.SetString(element.Tag, DicomVR.UI, string.Join('\\', parts));
        context.Audit.UidsRemapped++;
    }

    /// <summary>
    /// The VR of a kept value's attribute when the element carries one the attribute never has (explicit VR: any writer can
    /// label a value OB, or UN where the dictionary gives two VRs, US or SS); null when its own VR is one of the attribute's,
    /// for a sequence, for Pixel Data (group 7FE0: the pixel rewrite's) and for an attribute the dictionary does not know.
    /// Judged as OB or UN, a Manufacturer or Pixel Padding Value was bytes nobody looked at.
    /// </summary>
    private static DicomVR? AttributeVR(DicomElement element) =>
        element is DicomValueElement value
        && element.Tag.Group != 0x7FE0
        && DicomDictionary.Lookup(element.Tag) is { } entry
        && !entry.ValueRepresentations.Contains(value.VR)
        && !entry.ValueRepresentations.Contains(DicomVR.SQ)
            ? entry.VR
            : null;

    /// <summary>
    /// A kept text value under a VR its attribute never has (<see cref="AttributeVR"/>) is relabelled with the attribute's
    /// VR, so the checks of its form apply and it is written as what it is; text has no byte order, so the bytes stay. A
    /// binary number under another label keeps its label and bytes (relabelled, a UN value of a big endian file would be
    /// swapped on writing) and is checked as its attribute's VR by <see cref="KeepsItsForm"/>.
    /// </summary>
    private static DicomElement AsAttributeVR(DicomDataset dataset, DicomElement element)
    {
        if (AttributeVR(element) is not { IsString: true } vr)
        {
            return element;
        }

        var relabelled = new DicomValueElement(element.Tag, vr, ((DicomValueElement)element).RawValue);
        dataset.AddOrUpdate(relabelled);
        return relabelled;
    }

    /// <summary>
    /// The VR a kept value is judged by: the dictionary's (single, text) VR when the element carries another text VR (a VR
    /// changed in transit: a SOP Class UID labelled DS is still a UID), else <see cref="EffectiveVR"/>.
    /// </summary>
    private static DicomVR MeantVR(DicomElement element)
    {
        var vr = EffectiveVR(element);
        return vr.IsString && DicomDictionary.Lookup(element.Tag) is { ValueRepresentations.Count: 1 } entry && entry.VR.IsString
            ? entry.VR
            : vr;
    }

    private static DicomVR EffectiveVR(DicomElement element)
    {
        if (element.VR != DicomVR.UN)
        {
            return element.VR;
        }

        var entry = DicomDictionary.Lookup(element.Tag);
        return entry is { ValueRepresentations.Count: 1 } && entry.VR != DicomVR.SQ ? entry.VR : DicomVR.UN;
    }

    private static string DummyText(DicomVR vr) => vr.Code switch
    {
        "AE" => "ANONYMOUS",
        "AS" => "000Y",
        "CS" => "ANONYMIZED",
        "DA" => "19000101",
        "DS" or "IS" => "0",
        "DT" => "19000101000000",
        "TM" => "000000",
        "UR" => "urn:anonymized",
        "PN" => "ANONYMIZED",
        _ => "ANONYMIZED",
    };

    /// <summary>One de-identification run's state.</summary>
    /// <param name="Engine">The engine.</param>
    /// <param name="Pseudonym">The patient's pseudonym.</param>
    /// <param name="DateShiftDays">The patient's date shift.</param>
    /// <param name="Audit">What was done, counted.</param>
    /// <param name="Frames">The instance's frames (<see cref="KeptValueForms.FrameShape"/>), read before anything changed.</param>
    /// <param name="Dimensions">The items of its Dimension Index Sequence, or null.</param>
    private sealed record Context(DeidentificationEngine Engine, string Pseudonym, int DateShiftDays, DeidAudit Audit, int Frames, int? Dimensions);
}
