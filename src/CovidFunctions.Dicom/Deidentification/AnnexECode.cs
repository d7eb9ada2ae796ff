namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// An action code of PS3.15 Table E.1-1 as printed in the standard (names follow fo-dicom's
/// <c>SecurityProfileActions</c>). <see cref="None"/> is an empty cell.
/// </summary>
public enum AnnexECode
{
    /// <summary>Empty cell: the column says nothing for this attribute.</summary>
    None = 0,

    /// <summary>D: replace with a non-zero length dummy value consistent with the VR.</summary>
    D,

    /// <summary>Z: replace with a zero-length value, or a dummy value consistent with the VR.</summary>
    Z,

    /// <summary>X: remove.</summary>
    X,

    /// <summary>K: keep (sequences are still cleaned recursively).</summary>
    K,

    /// <summary>C: clean, replace with values of similar meaning known not to identify.</summary>
    C,

    /// <summary>U: replace with a non-zero length UID, consistent within a set of instances.</summary>
    U,

    /// <summary>Z/D: Z unless D is required by the IOD.</summary>
    ZD,

    /// <summary>X/Z: X unless Z is required by the IOD.</summary>
    XZ,

    /// <summary>X/D: X unless D is required by the IOD.</summary>
    XD,

    /// <summary>X/Z/D: X unless Z or D is required by the IOD.</summary>
    XZD,

    /// <summary>X/Z/U*: X unless Z or replacement of the contained instance UIDs is required by the IOD.</summary>
    XZU,
}

/// <summary>
/// The strictness order used to prove our table is at least as strict as the standard
/// (docs/compliance/deid-conformance.md): K (0) &lt; C (1) &lt; U (2) &lt; D = Z (3) &lt; X (4).
/// D and Z are equal because PS3.15 lets Z be "a zero length value, or a non-zero length value that may be a dummy value".
/// A compound code permits each of its members, so the strictness it demands is that of its weakest member.
/// </summary>
public static class AnnexEStrictness
{
    /// <summary>The strictness an action code demands (see the type remarks).</summary>
    public static int Of(AnnexECode code) => code switch
    {
        AnnexECode.K => 0,
        AnnexECode.C => 1,
        AnnexECode.U => 2,
        AnnexECode.D or AnnexECode.Z => 3,
        AnnexECode.X => 4,
        AnnexECode.ZD or AnnexECode.XZ or AnnexECode.XD or AnnexECode.XZD => 3,
        AnnexECode.XZU => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(code), code, "An empty cell has no strictness."),
    };

    /// <summary>The strictness of an action our engine performs.</summary>
    public static int Of(DeidAction action) => action switch
    {
        DeidAction.Keep => 0,
        DeidAction.Clean => 1,
        DeidAction.RemapUid => 2,
        DeidAction.Dummy or DeidAction.Zero => 3,
        DeidAction.Remove => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(action), action, null),
    };

    /// <summary>Parses the text of a Table E.1-1 cell ("", "X/Z/U*", ...).</summary>
    public static AnnexECode Parse(string cell) => cell.Trim() switch
    {
        "" => AnnexECode.None,
        "D" => AnnexECode.D,
        "Z" => AnnexECode.Z,
        "X" => AnnexECode.X,
        "K" => AnnexECode.K,
        "C" => AnnexECode.C,
        "U" => AnnexECode.U,
        "Z/D" => AnnexECode.ZD,
        "X/Z" => AnnexECode.XZ,
        "X/D" => AnnexECode.XD,
        "X/Z/D" => AnnexECode.XZD,
        "X/Z/U*" => AnnexECode.XZU,
        _ => throw new FormatException("Unknown Table E.1-1 action code: " + cell),
    };
}
