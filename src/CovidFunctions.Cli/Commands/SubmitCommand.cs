using System.CommandLine;
using System.Globalization;
using Azure;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Pipeline;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn submit INPUT [--tenant T] [--data-dir D]</c>: uploads a file, a zip or a folder (its files, then its
/// <c>.complete</c> marker) to the local <c>ct-uploads</c> container that <c>covidfn up</c> watches, creates the study's
/// row (queued) and prints the study id on the last line of stdout. The id is keyed with the data folder's
/// de-identification key (<c>D/keys/deid.key</c>, the one <c>covidfn up</c> in that folder uses), so it is the id ingest
/// gives the upload; a folder without that key is refused (no up uses it). Exit 0; 2 on bad input (also that folder);
/// 1 when storage is unreachable or the key cannot be read.
/// </summary>
public static class SubmitCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "A DICOM file, a .zip, a NIfTI volume or a folder of DICOM instances." };
        var tenant = new Option<string>("--tenant") { Description = "Tenant (a-z, 0-9, '-').", DefaultValueFactory = _ => PipelineNames.DefaultTenant };
        var storage = StorageCommandOptions.Create();
        var command = new Command("submit", "Upload a study to the local pipeline started by `covidfn up`; prints the study id last (keyed with the data folder's key: use the data folder of that `covidfn up`).");
        command.Arguments.Add(input);
        command.Options.Add(tenant);
        storage.AddTo(command);
        command.SetAction((parseResult, cancellationToken) => RunAsync(
            parseResult.GetValue(input) ?? string.Empty,
            parseResult.GetValue(tenant) ?? PipelineNames.DefaultTenant,
            parseResult.GetValue(storage.Storage),
            parseResult.GetValue(storage.DataDir),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error,
            cancellationToken));
        return command;
    }

    public static async Task<int> RunAsync(string input, string tenant, string? connection, string? dataDir, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (!StorageCommandOptions.IsValidTenant("submit", tenant, error))
        {
            return ExitCodes.BadInput;
        }

        if (!File.Exists(input) && !Directory.Exists(input))
        {
            error.WriteLine($"submit: no such file or folder: {input}");
            return ExitCodes.BadInput;
        }

        // Study ids are keyed: the key of the pipeline that ingests the upload (covidfn up in the same data folder). A
        // folder without that key is not the data folder of any covidfn up: an id keyed with a new key there would never
        // be the id up gives the upload (it stayed "queued" forever while up screened the upload under another id).
        var folder = LocalStorage.ResolveDataDir(dataDir);
        if (!LocalStorage.IsUpDataDir(folder))
        {
            error.WriteLine(LocalStorage.NotAnUpDataDir("submit", folder, "the study id would not be the one up gives the upload"));
            return ExitCodes.BadInput;
        }

        StudyIdKey studyIdKey;
        try
        {
            studyIdKey = StudyIdKey.From(DeidKeys.ForDataDir(folder, out _, out _));
        }
        catch (DeidKeyException ex)
        {
            error.WriteLine("submit: " + ex.Message);
            return ExitCodes.InternalError;
        }

        var storage = await LocalStorageConnection.OpenAsync("submit", connection, dataDir, error, cancellationToken).ConfigureAwait(false);
        if (storage is null)
        {
            return ExitCodes.InternalError;
        }

        try
        {
            await storage.EnsureCreatedAsync(cancellationToken).ConfigureAwait(false);
            var submitted = await new StudySubmitter(storage.BlobContainers, storage.Studies, studyIdKey).SubmitAsync(input, tenant, cancellationToken).ConfigureAwait(false);
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
            error.WriteLine(StorageCommandOptions.Refused("submit", "upload", ex));
            return ExitCodes.InternalError;
        }
    }
}
