using System.CommandLine;
using CovidFunctions.Cli;

// covidfn: the local host and offline tools. Each command lives in Commands/ and returns an ExitCodes value.
var root = new RootCommand("CovidFunctions: COVID-19 chest CT screening pipeline, local host and offline tools.");
foreach (var command in CommandCatalog.All())
{
    root.Subcommands.Add(command);
}

var parsed = root.Parse(args);

// Ctrl+C or SIGTERM cancels the command's token, and System.CommandLine ends the process ProcessTerminationTimeout
// later whether the command has finished or not (2 s by default). `up` needs longer for its ordered stop: the scorer
// finishes its model batch and gives its chunk back, then the worker, the sidecar and Azurite stop. Cut at 2 s it
// exited 130/143 half-stopped, and the chunk it held stayed invisible for the scorer's 2-minute visibility timeout, so
// the study waited that long after the restart (found by the load soak, docs/benchmarks.md). The other commands keep
// the default.
var invocation = new InvocationConfiguration();
if (parsed.CommandResult.Command.Name == "up")
{
    invocation.ProcessTerminationTimeout = TimeSpan.FromSeconds(60);
}

var exitCode = await parsed.InvokeAsync(invocation).ConfigureAwait(false);

// A parse error (a required option or argument missing, an unknown option, a value of the wrong type) is bad input:
// System.CommandLine prints it and the help and answers 1, which README and ExitCodes keep for internal errors, so
// a script could not tell `covidfn segment x` (no --out-dir) from a crash.
return parsed.Errors.Count > 0 ? ExitCodes.BadInput : exitCode;
