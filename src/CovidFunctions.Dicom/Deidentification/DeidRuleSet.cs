using System.Collections.Frozen;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// The action for each tag under one set of options: Table E.1-1 (with the enabled option columns overriding the Basic
/// Profile column, as PS3.15 E.3 says), then the keep-list, then removal. Exact-tag actions are resolved once into a
/// frozen dictionary; per element the engine does one lookup.
/// </summary>
public sealed class DeidRuleSet
{
    private readonly FrozenDictionary<uint, (DeidAction Action, DeidRuleSource Source)> _exact;
    private readonly IReadOnlyList<DeidOption> _enabled;

    /// <summary>Resolves every rule for the options.</summary>
    public DeidRuleSet(DeidentificationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _enabled = options.EnabledOptions;
        var map = new Dictionary<uint, (DeidAction, DeidRuleSource)>();
        foreach (var tag in DeidKeepList.All)
        {
            map[tag] = (DeidAction.Keep, DeidRuleSource.KeepList);
        }

        foreach (var row in AnnexEActionTable.Rows.Where(r => r.IsExactTag))
        {
            map[row.PatternValue] = (Resolve(row), DeidRuleSource.AnnexE);
        }

        _exact = map.ToFrozenDictionary();
    }

    /// <summary>The options in force (Basic Profile first).</summary>
    public IReadOnlyList<DeidOption> EnabledOptions => _enabled;

    /// <summary>The action and its source for a tag (group &lt;&lt; 16 | element).</summary>
    public (DeidAction Action, DeidRuleSource Source) Lookup(uint tag)
    {
        if ((tag & 0x00010000) != 0)
        {
            // Private groups, creators included: removed (the engine itself keeps Table E.3.10-1 elements under 113111).
            return (DeidAction.Remove, DeidRuleSource.Private);
        }

        if (_exact.TryGetValue(tag, out var hit))
        {
            return hit;
        }

        var row = AnnexEActionTable.Find(tag);
        return row is null ? (DeidAction.Remove, DeidRuleSource.Unlisted) : (Resolve(row), DeidRuleSource.AnnexE);
    }

    /// <summary>
    /// The concrete action for a row under the enabled options: an enabled option's K wins, then its C, else the Basic
    /// Profile code. Compound codes resolve to the member that keeps the IOD valid whatever the attribute's type:
    /// Z/D, X/D, X/Z/D → D; X/Z → Z; X/Z/U* → U (the sequence is kept and its UIDs remapped, so references survive).
    /// </summary>
    public DeidAction Resolve(AnnexERow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        var code = row.Basic;
        foreach (var option in _enabled)
        {
            var column = row.ColumnFor(option);
            if (column == AnnexECode.K)
            {
                code = AnnexECode.K;
                break;
            }

            if (column == AnnexECode.C)
            {
                code = AnnexECode.C;
            }
        }

        return code switch
        {
            AnnexECode.K => DeidAction.Keep,
            AnnexECode.C => DeidAction.Clean,
            AnnexECode.X => DeidAction.Remove,
            AnnexECode.Z => DeidAction.Zero,
            AnnexECode.D => DeidAction.Dummy,
            AnnexECode.U => DeidAction.RemapUid,
            AnnexECode.ZD or AnnexECode.XD or AnnexECode.XZD => DeidAction.Dummy,
            AnnexECode.XZ => DeidAction.Zero,
            AnnexECode.XZU => DeidAction.RemapUid,
            _ => DeidAction.Remove,
        };
    }
}
