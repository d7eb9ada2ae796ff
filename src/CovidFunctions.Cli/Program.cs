using System.CommandLine;
using CovidFunctions.Cli;

// covidfn: the local host and offline tools. Each command lives in Commands/ and returns an ExitCodes value.
var root = new RootCommand("CovidFunctions: COVID-19 chest CT screening pipeline, local host and offline tools.");
foreach (var command in CommandCatalog.All())
{
    root.Subcommands.Add(command);
}

return await root.Parse(args).InvokeAsync().ConfigureAwait(false);
