using CovidFunctions.Cli.Commands;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn deid --help</c> names the default key file DeidKeys uses: <c>$XDG_CONFIG_HOME/covidfn/deid.key</c> when
/// that variable is set. Before, the help said only <c>~/.config/covidfn/deid.key</c>, so a user with XDG_CONFIG_HOME
/// set looked for the key (which keys every pseudonym and date shift) in the wrong place.
/// </summary>
public sealed class DeidKeyFileHelpTests
{
    [Fact]
    public void KeyFileHelp_NamesTheXdgConfigHomeKeyFile()
    {
        var option = DeidCommand.Create().Options.Single(o => o.Name == "--key-file");

        Assert.Contains("$XDG_CONFIG_HOME/covidfn/deid.key (~/.config/covidfn/deid.key when XDG_CONFIG_HOME is unset)", option.Description, StringComparison.Ordinal);
    }
}
