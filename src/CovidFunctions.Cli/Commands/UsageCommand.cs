using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Azure;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Metering;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn usage [--tenant T] [--month yyyy-MM] [--json]</c>: the month's usage per tenant from the local host's
/// Usage table (studies, slices screened, CPU/GPU seconds, bytes stored), each study and stage counted once.
/// </summary>
public static class UsageCommand
{
    public static Command Create()
    {
        var tenant = new Option<string?>("--tenant") { Description = "Only this tenant (default: every tenant with usage records that month)." };
        var month = new Option<string?>("--month") { Description = "The month, yyyy-MM (default: the current UTC month)." };
        var json = new Option<bool>("--json") { Description = "Print JSON (one object with --tenant, else an array)." };
        var dataDir = LocalStorageConnection.DataDirOption();
        var storage = LocalStorageConnection.StorageOption();
        var command = new Command("usage", "Show the month's metered usage per tenant (slices screened, compute seconds, bytes stored).");
        command.Options.Add(tenant);
        command.Options.Add(month);
        command.Options.Add(json);
        command.Options.Add(dataDir);
        command.Options.Add(storage);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var t = parseResult.GetValue(tenant);
            var m = parseResult.GetValue(month) ?? UsageQueries.MonthOf(DateTimeOffset.UtcNow);
            if (t is not null && !StudyIds.IsValidTenant(t))
            {
                error.WriteLine($"usage: {StudyIds.InvalidTenantMessage(t)}");
                return ExitCodes.BadInput;
            }

            if (!UsageQueries.IsValidMonth(m))
            {
                error.WriteLine($"usage: month '{m}' is not yyyy-MM");
                return ExitCodes.BadInput;
            }

            var store = await LocalStorageConnection.OpenAsync("usage", parseResult.GetValue(storage), parseResult.GetValue(dataDir), error, cancellationToken).ConfigureAwait(false);
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
                    totals = t is null ? [] : [UsageQueries.Total(t, m, [])];
                }

                if (parseResult.GetValue(json))
                {
                    output.WriteLine(t is null ? JsonSerializer.Serialize(totals, ApiJson.Options) : JsonSerializer.Serialize(totals[0], ApiJson.Options));
                    return ExitCodes.Success;
                }

                if (totals.Count == 0)
                {
                    output.WriteLine($"no usage recorded in {m}");
                }

                foreach (var u in totals)
                {
                    output.WriteLine(string.Create(
                        CultureInfo.InvariantCulture,
                        $"{u.Tenant} {u.Month}: {u.Studies} studies, {u.SlicesScreened} slices screened, CPU {u.CpuSeconds:0.###} s, GPU {u.GpuSeconds:0.###} s, {u.BytesStored} bytes stored{(u.UnscreenedStudies > 0 ? $"; {u.UnscreenedStudies} not screened (failed or running, not billed)" : "")}"));
                }

                return ExitCodes.Success;
            }
            catch (RequestFailedException ex)
            {
                error.WriteLine($"usage: storage refused the query: {ex.Status} {ex.ErrorCode}: {ex.Message.Split('\n')[0]}");
                return ExitCodes.InternalError;
            }
        });
        return command;
    }
}
