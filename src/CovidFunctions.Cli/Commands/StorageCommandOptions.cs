using System.CommandLine;
using Azure;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Storage;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// What the commands on the local pipeline's storage share (<c>status</c>, <c>usage</c>, <c>usage close</c>,
/// <c>submit</c>, <c>webhooks</c>): the <c>--data-dir</c> and <c>--storage</c> options, opening the storage they name,
/// and the messages for a refused tenant name and a refused storage request, worded once.
/// </summary>
internal sealed record StorageCommandOptions(Option<string?> DataDir, Option<string?> Storage)
{
    /// <summary>New option instances (System.CommandLine: an option belongs to one command).</summary>
    public static StorageCommandOptions Create() => new(LocalStorageConnection.DataDirOption(), LocalStorageConnection.StorageOption());

    public void AddTo(Command command)
    {
        ArgumentNullException.ThrowIfNull(command);
        command.Options.Add(DataDir);
        command.Options.Add(Storage);
    }

    /// <summary>The storage the parsed options name (<see cref="LocalStorageConnection.OpenAsync"/>); null, with a line on <paramref name="error"/>, when it cannot be opened.</summary>
    public Task<PipelineStorage?> OpenAsync(string command, ParseResult parseResult, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(parseResult);
        return LocalStorageConnection.OpenAsync(command, parseResult.GetValue(Storage), parseResult.GetValue(DataDir), error, cancellationToken);
    }

    /// <summary>False, with <c>command: why</c> on <paramref name="error"/>, when <paramref name="tenant"/> is given and is no valid tenant name.</summary>
    public static bool IsValidTenant(string command, string? tenant, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (tenant is null || StudyIds.IsValidTenant(tenant))
        {
            return true;
        }

        error.WriteLine($"{command}: {StudyIds.InvalidTenantMessage(tenant)}");
        return false;
    }

    /// <summary><c>command: storage refused the WHAT: status code: first line of the message</c>.</summary>
    public static string Refused(string command, string what, RequestFailedException refusal)
    {
        ArgumentNullException.ThrowIfNull(refusal);
        return $"{command}: storage refused the {what}: {refusal.Status} {refusal.ErrorCode}: {refusal.Message.Split('\n')[0]}";
    }
}
