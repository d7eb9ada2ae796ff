using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Azure;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn webhooks add URL [--tenant T] [--events E,…] [--secret S]</c>, <c>list</c>, <c>remove ID</c>,
/// <c>test ID</c>, <c>rotate-secret ID [--overlap-hours H] [--secret S]</c>, <c>sweep [--dry-run]</c>: manage the local host's webhook subscriptions (Azurite tables; secrets in the data folder's 0600
/// file). <c>add</c> checks the target with the SSRF guard: https only, unless the last <c>covidfn up</c> ran with
/// <c>--allow-loopback-webhooks</c>, which allows http://127.0.0.1, localhost and [::1].
/// </summary>
public static class WebhooksCommand
{
    public static Command Create()
    {
        var command = new Command("webhooks", "Manage webhook subscriptions of the local pipeline (study.completed, study.failed, study.rejected).");
        command.Subcommands.Add(CreateAdd());
        command.Subcommands.Add(CreateList());
        command.Subcommands.Add(CreateRemove());
        command.Subcommands.Add(CreateTest());
        command.Subcommands.Add(CreateRotateSecret());
        command.Subcommands.Add(CreateSweep());
        return command;
    }

    private static Command CreateAdd()
    {
        var url = new Argument<string>("url") { Description = "The receiver's https URL (http://127.0.0.1 only with `covidfn up --allow-loopback-webhooks`)." };
        var tenant = new Option<string?>("--tenant") { Description = "Tenant (default: default)." };
        var events = new Option<string?>("--events") { Description = "Comma-separated event types (default: all of study.completed,study.failed,study.rejected)." };
        var secret = new Option<string?>("--secret") { Description = "The signing secret (at least 16 characters; default: a generated one, printed once)." };
        var common = StorageCommandOptions.Create();
        var command = new Command("add", "Subscribe a URL; prints the subscription id (and the generated secret when none was given).");
        command.Arguments.Add(url);
        command.Options.Add(tenant);
        command.Options.Add(events);
        command.Options.Add(secret);
        common.AddTo(command);
        command.SetAction((parseResult, cancellationToken) => RunAsync(parseResult, common, "webhooks add", async (webhooks, output, error, ct) =>
        {
            var t = parseResult.GetValue(tenant) ?? PipelineNames.DefaultTenant;
            if (!StorageCommandOptions.IsValidTenant("webhooks add", t, error))
            {
                return ExitCodes.BadInput;
            }

            var eventList = parseResult.GetValue(events)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            try
            {
                var created = await webhooks.Manager.AddAsync(t, parseResult.GetValue(url)!, eventList, parseResult.GetValue(secret), ct).ConfigureAwait(false);
                if (created.SecretGenerated)
                {
                    output.WriteLine($"secret: {created.Secret}");
                }

                output.WriteLine(created.Subscription.Id);
                return ExitCodes.Success;
            }
            catch (WebhookTargetRefusedException ex)
            {
                var hint = webhooks.Options.AllowLoopbackWebhooks ? "" : " (local receivers need `covidfn up --allow-loopback-webhooks`)";
                error.WriteLine($"webhooks add: target refused: {ex.Message}{hint}");
                return ExitCodes.BadInput;
            }
            catch (ArgumentException ex)
            {
                error.WriteLine($"webhooks add: {AddRefusal(ex)}");
                return ExitCodes.BadInput;
            }
        }, cancellationToken));
        return command;
    }

    /// <summary>
    /// Why <c>webhooks add</c> refused its input, naming the argument or option as the user typed it: the manager's
    /// <see cref="ArgumentException"/> ends with its .NET parameter name ("(Parameter 'eventTypes')"), which names
    /// nothing on the command line.
    /// </summary>
    public static string AddRefusal(ArgumentException refusal)
    {
        ArgumentNullException.ThrowIfNull(refusal);
        var reason = refusal.ParamName is { } parameter
            ? refusal.Message.Replace($" (Parameter '{parameter}')", string.Empty, StringComparison.Ordinal)
            : refusal.Message;
        var option = refusal.ParamName switch
        {
            "url" => "URL",
            "eventTypes" => "--events",
            "secret" => "--secret",
            "tenant" => "--tenant",
            "overlap" => "--overlap-hours",
            _ => null,
        };
        return option is null ? reason : $"{option}: {reason}";
    }

    private static Command CreateList()
    {
        var tenant = new Option<string?>("--tenant") { Description = "Only this tenant's subscriptions." };
        var json = new Option<bool>("--json") { Description = "Print a JSON array." };
        var common = StorageCommandOptions.Create();
        var command = new Command("list", "List subscriptions (secrets are never shown).");
        command.Options.Add(tenant);
        command.Options.Add(json);
        common.AddTo(command);
        command.SetAction((parseResult, cancellationToken) => RunAsync(parseResult, common, "webhooks list", async (webhooks, output, error, ct) =>
        {
            var list = await webhooks.Manager.ListAsync(parseResult.GetValue(tenant), ct).ConfigureAwait(false);
            if (parseResult.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(list.Select(WebhookView.Of).ToList(), ApiJson.Options));
                return ExitCodes.Success;
            }

            if (list.Count == 0)
            {
                output.WriteLine("no webhook subscriptions");
            }

            foreach (var s in list)
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{s.Id}  {s.Tenant}  {(s.Active ? "active" : "inactive")}  {string.Join(',', s.EventTypes)}  {s.Url}"));
            }

            return ExitCodes.Success;
        }, cancellationToken));
        return command;
    }

    private static Command CreateRemove()
    {
        var id = new Argument<string>("id") { Description = "The subscription id `webhooks add` printed." };
        var tenant = new Option<string?>("--tenant") { Description = "The subscription's tenant (default: searched)." };
        var common = StorageCommandOptions.Create();
        var command = new Command("remove", "Remove a subscription and its secret.");
        command.Arguments.Add(id);
        command.Options.Add(tenant);
        common.AddTo(command);
        command.SetAction((parseResult, cancellationToken) => RunAsync(parseResult, common, "webhooks remove", async (webhooks, output, error, ct) =>
        {
            if (!IsSubscriptionTarget("webhooks remove", parseResult.GetValue(id)!, parseResult.GetValue(tenant), error))
            {
                return ExitCodes.BadInput;
            }

            var found = await FindAsync(webhooks, "webhooks remove", parseResult.GetValue(id)!, parseResult.GetValue(tenant), error, ct).ConfigureAwait(false);
            if (found is null)
            {
                // A removal that failed after deleting the row (the secret store unavailable) left its secrets, which
                // no lookup finds any more: running remove again deletes them.
                var leftover = await webhooks.Manager.DeleteLeftoverSecretsAsync(parseResult.GetValue(id)!, ct).ConfigureAwait(false);
                if (leftover > 0)
                {
                    error.WriteLine($"webhooks remove: deleted {leftover} secret(s) an earlier removal of '{parseResult.GetValue(id)}' left");
                }

                return ExitCodes.InternalError;
            }

            await webhooks.Manager.RemoveAsync(found.Tenant, found.Id, ct).ConfigureAwait(false);
            output.WriteLine($"removed {found.Id}");
            return ExitCodes.Success;
        }, cancellationToken));
        return command;
    }

    private static Command CreateTest()
    {
        var id = new Argument<string>("id") { Description = "The subscription id." };
        var tenant = new Option<string?>("--tenant") { Description = "The subscription's tenant (default: searched)." };
        var common = StorageCommandOptions.Create();
        var command = new Command("test", "Send one signed webhook.test delivery (no retries) and print the receiver's answer.");
        command.Arguments.Add(id);
        command.Options.Add(tenant);
        common.AddTo(command);
        command.SetAction((parseResult, cancellationToken) => RunAsync(parseResult, common, "webhooks test", async (webhooks, output, error, ct) =>
        {
            if (!IsSubscriptionTarget("webhooks test", parseResult.GetValue(id)!, parseResult.GetValue(tenant), error))
            {
                return ExitCodes.BadInput;
            }

            var found = await FindAsync(webhooks, "webhooks test", parseResult.GetValue(id)!, parseResult.GetValue(tenant), error, ct).ConfigureAwait(false);
            if (found is null)
            {
                return ExitCodes.InternalError;
            }

            var delivery = await webhooks.Manager.TestAsync(found, ct).ConfigureAwait(false);
            var status = delivery.LastStatusCode is { } code ? code.ToString(CultureInfo.InvariantCulture) : "no response";
            output.WriteLine($"{delivery.Status}: HTTP {status}{(delivery.Error is null ? "" : " (" + delivery.Error + ")")} delivery {delivery.DeliveryId}");
            return delivery.Status == WebhookDeliveryStatus.Delivered ? ExitCodes.Success : ExitCodes.InternalError;
        }, cancellationToken));
        return command;
    }

    private static Command CreateRotateSecret()
    {
        var id = new Argument<string>("id") { Description = "The subscription id." };
        var tenant = new Option<string?>("--tenant") { Description = "The subscription's tenant (default: searched)." };
        var overlap = new Option<double?>("--overlap-hours")
        {
            Description = "Hours the old secret keeps signing beside the new one (0-168; default 24, or Webhooks:SecretRotationOverlap). 0 stops it at once.",
        };
        var secret = new Option<string?>("--secret") { Description = "The new signing secret (at least 16 characters; default: a generated one, printed once)." };
        var common = StorageCommandOptions.Create();
        var command = new Command("rotate-secret", "Issue a new signing secret; deliveries are signed with the old and the new one until the overlap ends.");
        command.Arguments.Add(id);
        command.Options.Add(tenant);
        command.Options.Add(overlap);
        command.Options.Add(secret);
        common.AddTo(command);
        command.SetAction((parseResult, cancellationToken) => RunAsync(parseResult, common, "webhooks rotate-secret", async (webhooks, output, error, ct) =>
        {
            var hours = parseResult.GetValue(overlap);
            if (hours is { } h && (!double.IsFinite(h) || h < 0 || h > WebhookOptions.MaxSecretRotationOverlap.TotalHours))
            {
                error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"webhooks rotate-secret: --overlap-hours must be 0-{WebhookOptions.MaxSecretRotationOverlap.TotalHours:0} (got {h})"));
                return ExitCodes.BadInput;
            }

            if (!IsSubscriptionTarget("webhooks rotate-secret", parseResult.GetValue(id)!, parseResult.GetValue(tenant), error))
            {
                return ExitCodes.BadInput;
            }

            var found = await FindAsync(webhooks, "webhooks rotate-secret", parseResult.GetValue(id)!, parseResult.GetValue(tenant), error, ct).ConfigureAwait(false);
            if (found is null)
            {
                return ExitCodes.InternalError;
            }

            try
            {
                var rotated = await webhooks.Manager.RotateSecretAsync(found.Tenant, found.Id, parseResult.GetValue(secret), hours is { } value ? TimeSpan.FromHours(value) : null, ct).ConfigureAwait(false);
                if (rotated.SecretGenerated)
                {
                    output.WriteLine($"secret: {rotated.Secret}");
                }

                output.WriteLine(rotated.PreviousSecretExpiresAt is { } until
                    ? string.Create(CultureInfo.InvariantCulture, $"the previous secret signs too until {until.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}")
                    : "the previous secret no longer signs");
                output.WriteLine(rotated.Subscription.Id);
                return ExitCodes.Success;
            }
            catch (ArgumentException ex)
            {
                error.WriteLine($"webhooks rotate-secret: {AddRefusal(ex)}");
                return ExitCodes.BadInput;
            }
            catch (Exception ex) when (ex is WebhookConflictException or KeyNotFoundException)
            {
                error.WriteLine($"webhooks rotate-secret: {ex.Message}");
                return ExitCodes.InternalError;
            }
        }, cancellationToken));
        return command;
    }

    private static Command CreateSweep()
    {
        var dryRun = new Option<bool>("--dry-run") { Description = "Say what the sweep would delete, and delete nothing." };
        var common = StorageCommandOptions.Create();
        var command = new Command(
            "sweep",
            "Run the webhook secret sweep once (up's loop and the Function app's timer run it hourly): delete the secrets no subscription signs with, once an hour old; print each secret's name and why it was deleted or kept (never a value).");
        command.Options.Add(dryRun);
        common.AddTo(command);
        command.SetAction((parseResult, cancellationToken) => RunAsync(parseResult, common, "webhooks sweep", (webhooks, output, error, ct) =>
            SweepAsync(webhooks, parseResult.GetValue(dryRun), output, error, ct), cancellationToken));
        return command;
    }

    /// <summary>
    /// One pass of <see cref="WebhookSecretSweep"/> over the data folder's secret file, as <c>up</c>'s hourly loop runs it,
    /// for an operator who wants it now (after fixing what made a rotation or removal fail, before a backup, to see what
    /// the file holds). The sweep decides; the command only watches its store: the listing it judged and each delete it
    /// made (with <c>--dry-run</c>, the deletes are recorded and not made). Each secret of the naming scheme is printed
    /// with its tenant, subscription id and why it went or stayed; never its value. Exit 1 when a delete failed (named
    /// on stderr; the next sweep tries again), else 0.
    /// </summary>
    private static async Task<int> SweepAsync(LocalWebhooks webhooks, bool dryRun, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        // One instant for the sweep and the reasons printed, so "under the grace" means what the sweep judged.
        var now = TimeProvider.System.GetUtcNow();
        var store = new WatchedSecretStore(webhooks.Secrets, dryRun);
        var sweep = new WebhookSecretSweep(webhooks.Storage.Subscriptions, store, new FixedClock(now), Microsoft.Extensions.Logging.Abstractions.NullLogger<WebhookSecretSweep>.Instance);
        var result = await sweep.SweepAsync(cancellationToken).ConfigureAwait(false);

        // Read after the pass, only to say why: whose current or previous secret a kept one is, and a deleted one's
        // overlap that ended (the sweep's own read decided).
        var rows = await webhooks.Storage.Subscriptions.ListAsync(null, cancellationToken).ConfigureAwait(false);
        var kept = 0;
        foreach (var secret in store.Listed)
        {
            if (!WebhookIds.TryParseSecretName(secret.Name, out var tenant, out var id))
            {
                continue;
            }

            var who = $"{secret.Name}  tenant {tenant}  subscription {id}";
            if (store.Failed.TryGetValue(secret.Name, out var failure))
            {
                error.WriteLine($"webhooks sweep: could not delete {who} ({failure}); the next sweep tries again");
            }
            else if (store.Deleted.Contains(secret.Name))
            {
                output.WriteLine($"{(dryRun ? "would delete" : "deleted")}  {who}: {DeletedWhy(secret, rows)}");
            }
            else
            {
                kept++;
                output.WriteLine($"kept  {who}: {KeptWhy(secret, rows, now)}");
            }
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{result.Listed} webhook secret(s) listed: {result.Deleted} {(dryRun ? "would be deleted (dry run: nothing deleted)" : "deleted")}, {kept} kept, {result.Failed} failed"));
        return result.Failed > 0 ? ExitCodes.InternalError : ExitCodes.Success;
    }

    private static string DeletedWhy(StoredWebhookSecret secret, IReadOnlyList<WebhookSubscription> rows) =>
        rows.FirstOrDefault(r => r.PreviousSecretName == secret.Name) is { PreviousSecretExpiresAt: { } ended } replaced
            ? string.Create(CultureInfo.InvariantCulture, $"replaced by a rotation of {replaced.Id}, its overlap ended {Utc(ended)}, over the {Hours(WebhookOptions.OrphanedSecretGrace)} grace ago")
            : string.Create(CultureInfo.InvariantCulture, $"no subscription names it, stored {Utc(secret.StoredAt!.Value)} (over the {Hours(WebhookOptions.OrphanedSecretGrace)} grace ago)");

    private static string KeptWhy(StoredWebhookSecret secret, IReadOnlyList<WebhookSubscription> rows, DateTimeOffset now)
    {
        if (secret.StoredAt is not { } storedAt)
        {
            return "its store gives no stored time, so it is never swept";
        }

        if (now - storedAt < WebhookOptions.OrphanedSecretGrace)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"stored {Utc(storedAt)}, under the {Hours(WebhookOptions.OrphanedSecretGrace)} grace (a create or rotation may be about to name it)");
        }

        if (rows.FirstOrDefault(r => r.SecretName == secret.Name) is { } current)
        {
            return $"the current secret of {current.Id}";
        }

        return rows.FirstOrDefault(r => r.PreviousSecretName == secret.Name) is { } previous
            ? previous.PreviousSecretExpiresAt is { } until
                ? string.Create(CultureInfo.InvariantCulture, $"the previous secret of {previous.Id}, its overlap {(until > now ? "ends" : "ended")} {Utc(until)} (kept until the {Hours(WebhookOptions.OrphanedSecretGrace)} grace after)")
                : $"the previous secret of {previous.Id}"
            : "a subscription named it when the sweep read the rows";
    }

    private static string Utc(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    private static string Hours(TimeSpan span) => string.Create(CultureInfo.InvariantCulture, $"{span.TotalHours:0.##} h");

    /// <summary>
    /// The data folder's secret store as the sweep sees it, recording what it listed and each delete (made, failed, or
    /// with <c>dryRun</c> recorded and not made): how <c>webhooks sweep</c> names what the sweep did, which its result
    /// only counts. Names only; values pass through untouched and are never kept.
    /// </summary>
    private sealed class WatchedSecretStore(IWebhookSecretStore inner, bool dryRun) : IWebhookSecretStore
    {
        public IReadOnlyList<StoredWebhookSecret> Listed { get; private set; } = [];

        public HashSet<string> Deleted { get; } = new(StringComparer.Ordinal);

        /// <summary>Secret name → the delete's exception type and message (the stores put no value in one).</summary>
        public Dictionary<string, string> Failed { get; } = new(StringComparer.Ordinal);

        public Task SetAsync(string name, string value, CancellationToken cancellationToken) => inner.SetAsync(name, value, cancellationToken);

        public Task<string?> GetAsync(string name, CancellationToken cancellationToken) => inner.GetAsync(name, cancellationToken);

        public Task<IReadOnlyList<string>> ListNamesAsync(string prefix, CancellationToken cancellationToken) => inner.ListNamesAsync(prefix, cancellationToken);

        public async Task<IReadOnlyList<StoredWebhookSecret>> ListStoredAsync(string prefix, CancellationToken cancellationToken)
        {
            Listed = await inner.ListStoredAsync(prefix, cancellationToken).ConfigureAwait(false);
            return Listed;
        }

        public async Task DeleteAsync(string name, CancellationToken cancellationToken)
        {
            if (!dryRun)
            {
                try
                {
                    await inner.DeleteAsync(name, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Failed[name] = $"{ex.GetType().Name}: {ex.Message}";
                    throw;
                }
            }

            Deleted.Add(name);
        }
    }

    /// <summary>A clock stopped at one instant (the sweep reads it once).</summary>
    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    /// <summary>
    /// Whether the id (and the tenant, when given) can name a subscription at all; else says why, naming the value, for
    /// exit 2. Before, a mistyped id (a study id, a truncated copy) was searched for in every tenant and answered "no
    /// subscription" with exit 1, as if it were a well-formed id that does not exist.
    /// </summary>
    public static bool IsSubscriptionTarget(string command, string id, string? tenant, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (!WebhookIds.IsValidSubscriptionId(id))
        {
            error.WriteLine($"{command}: '{id}' is not a subscription id (wh and 20 hex digits, as `webhooks add` printed)");
            return false;
        }

        return StorageCommandOptions.IsValidTenant(command, tenant, error);
    }

    /// <summary>The subscription with a well-formed id, or null after saying it does not exist (in the tenant, when one was given).</summary>
    private static async Task<WebhookSubscription?> FindAsync(LocalWebhooks webhooks, string command, string id, string? tenant, TextWriter error, CancellationToken cancellationToken)
    {
        var found = await webhooks.Manager.FindAsync(tenant, id, cancellationToken).ConfigureAwait(false);
        if (found is null)
        {
            error.WriteLine(tenant is null ? $"{command}: no subscription '{id}'" : $"{command}: no subscription '{id}' in tenant '{tenant}'");
        }

        return found;
    }

    private static async Task<int> RunAsync(
        ParseResult parseResult,
        StorageCommandOptions common,
        string name,
        Func<LocalWebhooks, TextWriter, TextWriter, CancellationToken, Task<int>> body,
        CancellationToken cancellationToken)
    {
        var output = parseResult.InvocationConfiguration.Output;
        var error = parseResult.InvocationConfiguration.Error;

        // Secrets live in the data folder, where up reads them to sign deliveries: from another folder, add stored the
        // secret where up never looks (and read that folder's loopback marker, refusing a local receiver up allows).
        var dataDir = LocalStorage.ResolveDataDir(parseResult.GetValue(common.DataDir));
        if (!LocalStorage.IsUpDataDir(dataDir))
        {
            error.WriteLine(LocalStorage.NotAnUpDataDir(name, dataDir, "its webhook secrets are not the ones up signs deliveries with"));
            return ExitCodes.BadInput;
        }

        var storage = await common.OpenAsync(name, parseResult, error, cancellationToken).ConfigureAwait(false);
        if (storage is null)
        {
            return ExitCodes.InternalError;
        }

        var baseUrl = File.Exists(Path.Combine(dataDir, LocalApiServer.UrlFileName)) && Uri.TryCreate(File.ReadAllText(Path.Combine(dataDir, LocalApiServer.UrlFileName)).Trim(), UriKind.Absolute, out var url) ? url : null;
        using var webhooks = new LocalWebhooks(dataDir, storage.Tables, storage.Studies, LocalWebhooks.LoopbackAllowedIn(dataDir), baseUrl);
        try
        {
            await webhooks.Storage.EnsureCreatedAsync(cancellationToken).ConfigureAwait(false);
            return await body(webhooks, output, error, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex)
        {
            error.WriteLine(StorageCommandOptions.Refused(name, "request", ex));
            return ExitCodes.InternalError;
        }
        catch (WebhookSecretFileCorruptException ex)
        {
            // One line naming the file and where it stops reading (never a value); the store read before any write, so
            // the file is as it was. Before, System.CommandLine printed the unhandled exception and its stack.
            error.WriteLine($"{name}: {ex.Message}");
            return ExitCodes.InternalError;
        }
    }
}
