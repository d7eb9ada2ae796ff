using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Azure;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn usage [--tenant T] [--month yyyy-MM] [--json]</c>: the month's usage per tenant from the local host's
/// Usage table (studies, slices screened, CPU/GPU seconds, bytes stored), each study and stage counted once; a closed
/// month shows its final snapshot. <c>covidfn usage close --month yyyy-MM [--tenant T] [--json]</c> closes a past month
/// (<see cref="UsageClosing"/>; docs/api.md "Metering").
/// </summary>
public static class UsageCommand
{
    public static Command Create()
    {
        var tenant = new Option<string?>("--tenant") { Description = "Only this tenant (default: every tenant with usage records that month)." };
        var month = new Option<string?>("--month") { Description = "The month, yyyy-MM (default: the current UTC month)." };
        var json = new Option<bool>("--json") { Description = "Print JSON (one object with --tenant, else an array)." };
        var storage = StorageCommandOptions.Create();
        var command = new Command("usage", "Show the month's metered usage per tenant (slices screened, compute seconds, bytes stored).");
        command.Options.Add(tenant);
        command.Options.Add(month);
        command.Options.Add(json);
        storage.AddTo(command);
        command.Subcommands.Add(CreateClose());
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var t = parseResult.GetValue(tenant);
            var m = parseResult.GetValue(month) ?? UsageQueries.MonthOf(DateTimeOffset.UtcNow);
            if (!StorageCommandOptions.IsValidTenant("usage", t, error))
            {
                return ExitCodes.BadInput;
            }

            if (!UsageQueries.IsValidMonth(m))
            {
                error.WriteLine($"usage: month '{m}' is not yyyy-MM");
                return ExitCodes.BadInput;
            }

            var store = await storage.OpenAsync("usage", parseResult, error, cancellationToken).ConfigureAwait(false);
            if (store is null)
            {
                return ExitCodes.InternalError;
            }

            try
            {
                var queries = new UsageQueries(store.Usage, store.Studies);
                IReadOnlyList<UsageTotals> totals;
                try
                {
                    totals = t is null
                        ? await queries.MonthlyTotalsForAllAsync(m, cancellationToken).ConfigureAwait(false)
                        : [await queries.MonthlyTotalsAsync(t, m, cancellationToken).ConfigureAwait(false)];
                }
                catch (RequestFailedException ex) when (ex.Status == 404)
                {
                    // No table yet: nothing has run on this storage, so nothing was used.
                    totals = t is null ? [] : [UsageQueries.Total(t, m, Array.Empty<UsageRecord>())];
                }

                return WriteTotals(output, totals, single: t is not null, parseResult.GetValue(json), $"no usage recorded in {m}");
            }
            catch (RequestFailedException ex)
            {
                error.WriteLine(StorageCommandOptions.Refused("usage", "query", ex));
                return ExitCodes.InternalError;
            }
        });
        return command;
    }

    /// <summary><c>covidfn usage close --month yyyy-MM [--tenant T] [--json]</c>: makes a past month's bill final.</summary>
    private static Command CreateClose()
    {
        var tenant = new Option<string?>("--tenant") { Description = "Only this tenant (default: every tenant known to the storage)." };
        // Required in System.CommandLine terms, so --help marks it and a missing one is the standard parse error (exit 2,
        // as every parse error here: Program maps them to bad input).
        var month = new Option<string>("--month") { Description = "The month to close, yyyy-MM (a past UTC month).", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the snapshots as JSON (one object with --tenant, else an array)." };
        var storage = StorageCommandOptions.Create();
        var command = new Command(
            "close",
            "Close a past month's bill: its totals are written once as a final snapshot; usage that arrives later for its studies is billed in the first open month.");
        command.Options.Add(tenant);
        command.Options.Add(month);
        command.Options.Add(json);
        storage.AddTo(command);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var t = parseResult.GetValue(tenant);
            var m = parseResult.GetRequiredValue(month);

            if (!StorageCommandOptions.IsValidTenant("usage close", t, error))
            {
                return ExitCodes.BadInput;
            }

            if (UsageClosing.WhyNotClosable(m, DateTimeOffset.UtcNow) is { } why)
            {
                error.WriteLine($"usage close: {why}");
                return ExitCodes.BadInput;
            }

            var store = await storage.OpenAsync("usage close", parseResult, error, cancellationToken).ConfigureAwait(false);
            if (store is null)
            {
                return ExitCodes.InternalError;
            }

            try
            {
                // Closing writes rows: the table may not exist yet on a storage nothing has run on.
                await store.EnsureCreatedAsync(cancellationToken).ConfigureAwait(false);
                var closing = new UsageClosing(store.Usage, store.Studies, TimeProvider.System);
                IReadOnlyList<UsageTotals> closed = t is null
                    ? await closing.CloseAllAsync(m, cancellationToken).ConfigureAwait(false)
                    : [await closing.CloseAsync(t, m, cancellationToken).ConfigureAwait(false)];
                return WriteTotals(output, closed, single: t is not null, parseResult.GetValue(json), $"{m} closed; no tenant had usage in it");
            }
            catch (RequestFailedException ex)
            {
                error.WriteLine(StorageCommandOptions.Refused("usage close", "close", ex));
                return ExitCodes.InternalError;
            }
        });
        return command;
    }

    /// <summary>
    /// Prints usage objects (of <c>usage</c> or <c>usage close</c>): as JSON, one object when <paramref name="single"/>
    /// (a <c>--tenant</c> was given) else an array; as text, a line each, or <paramref name="none"/> when there are none.
    /// </summary>
    private static int WriteTotals(TextWriter output, IReadOnlyList<UsageTotals> totals, bool single, bool json, string none)
    {
        if (json)
        {
            output.WriteLine(single ? JsonSerializer.Serialize(totals[0], ApiJson.Options) : JsonSerializer.Serialize(totals, ApiJson.Options));
            return ExitCodes.Success;
        }

        if (totals.Count == 0)
        {
            output.WriteLine(none);
        }

        foreach (var u in totals)
        {
            output.WriteLine(Line(u));
        }

        return ExitCodes.Success;
    }

    internal static string Line(UsageTotals u) =>
        $"{u.Tenant} {u.Month}: {Count(u.Studies, "study", "studies")}, {Count(u.SlicesScreened, "slice", "slices")} screened, "
        + string.Create(CultureInfo.InvariantCulture, $"CPU {u.CpuSeconds:0.###} s, GPU {u.GpuSeconds:0.###} s, ") + $"{Count(u.BytesStored, "byte", "bytes")} stored"
        + (u.UnscreenedStudies > 0 ? string.Create(CultureInfo.InvariantCulture, $"; {u.UnscreenedStudies} not screened (failed or running, not billed)") : "")
        + (u.LateRecords > 0 ? $"; {Count(u.LateRecords, "record", "records")} carried from a closed month" : "")
        + (u.Closed ? string.Create(CultureInfo.InvariantCulture, $"; closed {u.ClosedAt?.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC (final)") : "; open (may still change until the month is closed)");

    /// <summary>"1 study", "2 studies", "0 studies": the count with the word it takes.</summary>
    private static string Count(long n, string one, string many) =>
        n.ToString(CultureInfo.InvariantCulture) + " " + (n == 1 ? one : many);
}
