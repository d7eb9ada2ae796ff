using System.CommandLine;
using System.Globalization;
using Azure;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn submit INPUT [--tenant T] [--data-dir D]</c>: uploads a file, a zip or a folder (its files, then its
/// <c>.complete</c> marker) to the local <c>ct-uploads</c> container that <c>covidfn up</c> watches, creates the study's
/// row (queued) and prints the study id on the last line of stdout. Exit 0; 2 on bad input; 1 when storage is unreachable.
/// </summary>
public static class SubmitCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "A DICOM file, a .zip, a NIfTI volume or a folder of DICOM instances." };
        var tenant = new Option<string>("--tenant") { Description = "Tenant (a-z, 0-9, '-').", DefaultValueFactory = _ => PipelineNames.DefaultTenant };
        var dataDir = LocalStorageConnection.DataDirOption();
        var storage = LocalStorageConnection.StorageOption();
        var command = new Command("submit", "Upload a study to the local pipeline started by `covidfn up`; prints the study id last.");
        command.Arguments.Add(input);
        command.Options.Add(tenant);
        command.Options.Add(dataDir);
        command.Options.Add(storage);
        command.SetAction((parseResult, cancellationToken) => RunAsync(
            parseResult.GetValue(input) ?? string.Empty,
            parseResult.GetValue(tenant) ?? PipelineNames.DefaultTenant,
            parseResult.GetValue(storage),
            parseResult.GetValue(dataDir),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error,
            cancellationToken));
        return command;
    }

    public static async Task<int> RunAsync(string input, string tenant, string? connection, string? dataDir, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (!StudyIds.IsValidTenant(tenant))
        {
            error.WriteLine($"submit: {StudyIds.InvalidTenantMessage(tenant)}");
            return ExitCodes.BadInput;
        }

        if (!File.Exists(input) && !Directory.Exists(input))
        {
            error.WriteLine($"submit: no such file or folder: {input}");
            return ExitCodes.BadInput;
        }

        var storage = await LocalStorageConnection.OpenAsync("submit", connection, dataDir, error, cancellationToken).ConfigureAwait(false);
        if (storage is null)
        {
            return ExitCodes.InternalError;
        }

        try
        {
            await storage.EnsureCreatedAsync(cancellationToken).ConfigureAwait(false);
            var submitted = await new StudySubmitter(storage.BlobContainers, storage.Studies).SubmitAsync(input, tenant, cancellationToken).ConfigureAwait(false);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"submit: {submitted.Blobs} blob(s), {submitted.Bytes / 1048576.0:0.0} MiB uploaded to ct-uploads/{submitted.UploadPath}; follow it with `covidfn status {submitted.StudyId}`"));
            output.WriteLine(submitted.StudyId);
            return ExitCodes.Success;
        }
        catch (InvalidDataException ex)
        {
            error.WriteLine("submit: " + ex.Message);
            return ExitCodes.BadInput;
        }
        catch (RequestFailedException ex)
        {
            error.WriteLine($"submit: storage refused the upload: {ex.Status} {ex.ErrorCode}: {ex.Message.Split('\n')[0]}");
            return ExitCodes.InternalError;
        }
    }
}
