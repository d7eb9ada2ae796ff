namespace CovidFunctions.Dicom.Deidentification;

/// <summary>The concrete action the engine performs on one element (a Table E.1-1 code resolved for the options in force).</summary>
public enum DeidAction
{
    /// <summary>K: keep. Sequences are kept and their items de-identified recursively.</summary>
    Keep,

    /// <summary>X: remove the element.</summary>
    Remove,

    /// <summary>Z: zero-length value (a sequence becomes empty).</summary>
    Zero,

    /// <summary>D: a dummy value of the element's VR (PatientName/PatientID get the pseudonym).</summary>
    Dummy,

    /// <summary>C: clean. Dates and times are shifted; descriptive text keeps only allow-listed vocabulary; sequences recurse.</summary>
    Clean,

    /// <summary>U: every non-well-known UID in the value is replaced by its keyed mapping; sequences recurse.</summary>
    RemapUid,
}

/// <summary>Why an element got its action (recorded in the audit counts).</summary>
public enum DeidRuleSource
{
    /// <summary>A row of PS3.15 Table E.1-1 (generated or supplement).</summary>
    AnnexE,

    /// <summary>The keep-list of non-identifying attributes the image needs (<see cref="DeidKeepList"/>).</summary>
    KeepList,

    /// <summary>A private element (odd group), removed unless an option retains it.</summary>
    Private,

    /// <summary>No rule: removed (allowlist).</summary>
    Unlisted,
}
