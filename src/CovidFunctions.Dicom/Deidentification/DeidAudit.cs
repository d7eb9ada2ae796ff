namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// What the engine did to one instance, as counts only: never values, UIDs, names, dates or the date shift (which, with an
/// output date, would reveal the original). Safe to log, store in tables and put in reports.
/// </summary>
public sealed class DeidAudit
{
    /// <summary>Elements kept unchanged (K, including the keep-list).</summary>
    public int Kept { get; internal set; }

    /// <summary>Elements removed by a Table E.1-1 X (or X/… compound) rule.</summary>
    public int Removed { get; internal set; }

    /// <summary>Private elements removed (creators included).</summary>
    public int PrivateRemoved { get; internal set; }

    /// <summary>Elements removed because no rule names them (allowlist), curves and overlays included.</summary>
    public int UnlistedRemoved { get; internal set; }

    /// <summary>Group length elements dropped (the writer recomputes them when asked).</summary>
    public int GroupLengthsRemoved { get; internal set; }

    /// <summary>Elements emptied (Z).</summary>
    public int Zeroed { get; internal set; }

    /// <summary>Elements given a dummy value (D), the pseudonymised Patient Name and Patient ID included.</summary>
    public int Dummied { get; internal set; }

    /// <summary>Elements cleaned (C): text reduced to the descriptor vocabulary.</summary>
    public int Cleaned { get; internal set; }

    /// <summary>Date and date-time elements shifted (C under Retain Longitudinal Modified Dates).</summary>
    public int DatesShifted { get; internal set; }

    /// <summary>UID elements remapped (U); well-known UIDs inside them are kept.</summary>
    public int UidsRemapped { get; internal set; }

    /// <summary>Sequence items visited recursively.</summary>
    public int SequenceItems { get; internal set; }

    /// <summary>The CID 7050 codes applied, as written in (0012,0064).</summary>
    public IReadOnlyList<string> OptionCodes { get; internal set; } = [];
}
