namespace CovidFunctions.Cli;

/// <summary>Process exit codes of <c>covidfn</c>; documented in README.md (house style rule 20).</summary>
public static class ExitCodes
{
    /// <summary>The command completed.</summary>
    public const int Success = 0;

    /// <summary>An unexpected internal error.</summary>
    public const int InternalError = 1;

    /// <summary>Bad input: unusable arguments, a malformed file, a missing key. The reason is on stderr.</summary>
    public const int BadInput = 2;
}
