using System.CommandLine;
using System.Globalization;
using System.IO.Compression;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Dicom;
using CovidFunctions.Dicom.Deidentification;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn deid INPUT OUTDIR [--key-file F] [--report F.json] [--retain-safe-private]</c>: de-identifies DICOM instances per PS3.15 Annex E
/// (see docs/compliance/deid-conformance.md). INPUT is a file, a directory (recursive) or a .zip. Each accepted instance
/// is written as <c>OUTDIR/&lt;new SOP Instance UID&gt;.dcm</c> (never the original, possibly identifying, name);
/// refused instances are listed in the report with their reason and not written, and named on stderr. Exit 0 when the
/// run completed, even with refusals (the contract of issue #3, which an independent evaluation calls); 2 on unusable
/// arguments, input or key (see <see cref="ReportRefusals"/>).
/// </summary>
internal static class DeidCommand
{
    /// <summary>Environment variable holding the key as base64 (configuration / Key Vault reference in Azure).</summary>
    public const string KeyEnvironmentVariable = DeidKeys.KeyVariable;

    /// <summary>Environment variable naming the key file when --key-file is not given.</summary>
    public const string KeyFileEnvironmentVariable = DeidKeys.KeyFileVariable;

    /// <summary>Largest zip entry read (uncompressed bytes).</summary>
    internal const long MaxEntryBytes = 1L << 30;

    /// <summary>Largest total of uncompressed bytes read from one zip.</summary>
    internal const long MaxArchiveBytes = 32L << 30;

    /// <summary>Most entries read from one zip.</summary>
    internal const int MaxArchiveEntries = 200_000;

    /// <summary>Largest compression ratio accepted for an entry (zip bombs).</summary>
    internal const int MaxCompressionRatio = 1000;

    private static readonly JsonSerializerOptions ReportJson = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "A DICOM file, a directory (searched recursively) or a .zip." };
        var outdir = new Argument<string>("outdir") { Description = "Output folder for the de-identified Part 10 files (<new SOP Instance UID>.dcm)." };
        var keyFile = new Option<string?>("--key-file")
        {
            Description = "Key file (base64, 32 bytes); created with mode 0600 on first use. Default: $COVIDFN_DEID_KEY, $COVIDFN_DEID_KEY_FILE, or $XDG_CONFIG_HOME/covidfn/deid.key (~/.config/covidfn/deid.key when XDG_CONFIG_HOME is unset).",
        };
        var report = new Option<string?>("--report") { Description = "Write a JSON report (per input: status, reason, output, audit counts; no PHI values)." };
        var retainSafePrivate = new Option<bool>("--retain-safe-private")
        {
            Description = "Retain Safe Private Option (113111): keep the private attributes of PS3.15 Table E.3.10-1 and their creators; other private data is still removed.",
        };
        var command = new Command("deid", "De-identify DICOM instances (PS3.15 Annex E Basic Profile, keyed pseudonyms and UIDs).");
        command.Arguments.Add(input);
        command.Arguments.Add(outdir);
        command.Options.Add(keyFile);
        command.Options.Add(report);
        command.Options.Add(retainSafePrivate);
        command.SetAction(parseResult => Run(
            parseResult.GetValue(input) ?? string.Empty,
            parseResult.GetValue(outdir) ?? string.Empty,
            parseResult.GetValue(keyFile),
            parseResult.GetValue(report),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error,
            parseResult.GetValue(retainSafePrivate)));
        return command;
    }

    /// <summary>
    /// Runs the command; separated from the parser so tests can call it directly. <c>instanceHook</c> is a test seam, null
    /// in the command: called with a stage (<c>"deidentify"</c> before the engine runs, <c>"written"</c> after the output
    /// is staged) and the input's relative path, so a test can make one instance fail the way a defect in the engine or
    /// the writer would.
    /// </summary>
    internal static int Run(
        string input, string outdir, string? keyFile, string? reportPath, TextWriter output, TextWriter error, bool retainSafePrivate = false,
        Action<string, string>? instanceHook = null)
    {
        if (string.IsNullOrWhiteSpace(input) || string.IsNullOrWhiteSpace(outdir))
        {
            error.WriteLine("deid: INPUT and OUTDIR are required.");
            return ExitCodes.BadInput;
        }

        if (!File.Exists(input) && !Directory.Exists(input))
        {
            error.WriteLine("deid: input not found: " + input);
            return ExitCodes.BadInput;
        }

        DeidKey key;
        try
        {
            key = ResolveKey(keyFile, error);
        }
        catch (DeidKeyException ex)
        {
            error.WriteLine("deid: unusable key: " + ex.Message);
            return ExitCodes.BadInput;
        }

        try
        {
            outdir = Path.GetFullPath(outdir); // once, not per output file
            Directory.CreateDirectory(outdir);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            error.WriteLine("deid: cannot create the output folder: " + ex.Message);
            return ExitCodes.BadInput;
        }

        List<InputItem> items;
        try
        {
            items = EnumerateInputs(input);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or ArchiveRefusedException)
        {
            error.WriteLine("deid: unreadable input: " + ex.Message);
            return ExitCodes.BadInput;
        }

        var engine = new DeidentificationEngine(key, new DeidentificationOptions { RetainSafePrivate = retainSafePrivate });
        var results = new ReportEntry[items.Count];
        // Two workers per core: each instance is a read, a short CPU burst and a write, so I/O waits overlap with work.
        Parallel.For(0, items.Count, new ParallelOptions { MaxDegreeOfParallelism = 2 * Environment.ProcessorCount }, i =>
            results[i] = ProcessOneGuarded(items[i], engine, StagingPath(outdir, i), instanceHook));
        PlaceOutputs(results, outdir);

        var accepted = results.Count(r => r.Status == "accepted");
        var rejected = results.Length - accepted;
        if (reportPath is not null)
        {
            var report = new DeidReport(
                Tool: "covidfn deid",
                Version: typeof(DeidCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown",
                AnnexEEdition: AnnexEActionTable.Edition,
                OptionCodes: [.. engine.Rules.EnabledOptions.Select(o => ((int)o).ToString(CultureInfo.InvariantCulture))],
                Accepted: accepted,
                Rejected: rejected,
                Inputs: results);
            try
            {
                var full = Path.GetFullPath(reportPath);
                Directory.CreateDirectory(Path.GetDirectoryName(full)!);
                File.WriteAllText(full, JsonSerializer.Serialize(report, ReportJson));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                error.WriteLine("deid: cannot write the report: " + ex.Message);
                return ExitCodes.BadInput;
            }
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"deid: {accepted} accepted, {rejected} rejected, {items.Count} input(s)."));
        output.Flush();
        return ReportRefusals(results, reportPath, error);
    }

    /// <summary>Most refused inputs named on stderr; the report (--report) lists every one.</summary>
    internal const int MaxRefusalsNamed = 10;

    /// <summary>
    /// Names a completed run's refusals on stderr, so a person or script sees them without opening the report: the
    /// accepted instances are written, each refused input is named with its reason code and reason. The exit stays 0
    /// (issue #3's contract: "Exit 0 when the run completed (even with rejects)"); a script checks the counts line, the
    /// stderr lines or the report's <c>rejected</c>. Input paths are the caller's own (the report names them too);
    /// reasons never quote a dataset value.
    /// </summary>
    private static int ReportRefusals(ReportEntry[] results, string? reportPath, TextWriter error)
    {
        var refused = results.Where(r => r.Status != "accepted").ToList();
        if (refused.Count == 0)
        {
            return ExitCodes.Success;
        }

        error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"deid: {refused.Count} input(s) not de-identified, nothing written for them:"));
        foreach (var r in refused.Take(MaxRefusalsNamed))
        {
            error.WriteLine($"deid:   {SanitizeForReport(r.Input)}: {r.ReasonCode}: {r.Reason}");
        }

        if (refused.Count > MaxRefusalsNamed)
        {
            error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"deid:   ... and {refused.Count - MaxRefusalsNamed} more") +
                (reportPath is null ? " (--report F.json lists every input with its reason)" : $" (listed in {reportPath})"));
        }

        error.Flush();
        return ExitCodes.Success;
    }

    /// <summary>The key as <c>covidfn screen</c> resolves it (<see cref="DeidKeys.Resolve"/>); a created key file is told on stderr.</summary>
    private static DeidKey ResolveKey(string? keyFile, TextWriter error)
    {
        var key = DeidKeys.Resolve(keyFile, out var createdPath);
        if (createdPath is not null)
        {
            error.WriteLine("deid: created a new key file (mode 0600): " + createdPath);
        }

        return key;
    }

    /// <summary>Where input <paramref name="index"/>'s output is written first (hidden), before <see cref="PlaceOutputs"/> names it.</summary>
    private static string StagingPath(string outdir, int index) =>
        Path.Combine(outdir, ".covidfn-deid-" + index.ToString(CultureInfo.InvariantCulture) + ".staged");

    /// <summary>
    /// Gives each staged output its name, <c>&lt;new SOP Instance UID&gt;.dcm</c>. Inputs that share a SOP Instance UID (a probe
    /// set derived from one file, a copied file) would otherwise overwrite each other, the last writer winning at random
    /// while the report named one file for all of them: when their outputs are byte-identical they share that one file;
    /// when they differ, each is named <c>&lt;uid&gt;-&lt;first 12 hex of its SHA-256&gt;.dcm</c>, which depends on nothing
    /// but the output itself, so names stay deterministic whatever order the workers finish in.
    /// </summary>
    private static void PlaceOutputs(ReportEntry[] results, string outdir)
    {
        var groups = Enumerable.Range(0, results.Length)
            .Where(i => results[i].Status == "accepted" && results[i].Output is not null)
            .GroupBy(i => results[i].Uid!, StringComparer.Ordinal);
        foreach (var group in groups)
        {
            var members = group.ToList();
            var hashes = members.Count == 1
                ? [string.Empty]
                : members.Select(i => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(results[i].Output!)))).ToList();
            var unique = hashes.Distinct(StringComparer.Ordinal).Count() == 1;
            var placed = new HashSet<string>(StringComparer.Ordinal);
            for (var m = 0; m < members.Count; m++)
            {
                var i = members[m];
                var final = Path.Combine(outdir, group.Key + (unique ? string.Empty : "-" + hashes[m][..12]) + ".dcm");
                try
                {
                    if (placed.Add(final))
                    {
                        File.Move(results[i].Output!, final, overwrite: true);
                    }
                    else
                    {
                        File.Delete(results[i].Output!); // byte-identical to the output already placed under this name
                    }

                    results[i] = results[i] with { Output = final };
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    results[i] = ReportEntry.Refused(results[i].Input, "write-failed", "Writing the output failed (" + ex.GetType().Name + ").");
                }
            }
        }
    }

    /// <summary>
    /// <see cref="ProcessOne(InputItem, DeidentificationEngine, string, Action{string, string}?)"/> with a last line of
    /// defence: an exception nobody expected (a defect in the reader, the engine or the writer on one hostile file) refuses
    /// that instance as <c>internal-error</c> instead of ending <see cref="Parallel.For(int, int, Action{int})"/> and with it
    /// the whole run, whose other outputs and report would then be lost. Its staged output, if any, is deleted: an instance
    /// whose processing failed half-way is never written. The message names the exception's type only (an exception's
    /// message may quote values of the file).
    /// </summary>
    private static ReportEntry ProcessOneGuarded(InputItem item, DeidentificationEngine engine, string outputPath, Action<string, string>? hook)
    {
        try
        {
            return ProcessOne(item, engine, outputPath, hook);
        }
#pragma warning disable CA1031 // one instance's unexpected failure must not stop the run: it is refused and reported, the others go on
        catch (Exception ex) when (ex is not (OutOfMemoryException or InsufficientExecutionStackException or ThreadInterruptedException))
#pragma warning restore CA1031
        {
            DeleteStaged(outputPath);
            return ReportEntry.Refused(item.RelativePath, "internal-error", "Processing failed unexpectedly (" + ex.GetType().Name + "); nothing written for this instance.");
        }
    }

    /// <summary>Deletes a refused instance's staged output, if any.</summary>
    private static void DeleteStaged(string outputPath)
    {
        try
        {
            File.Delete(outputPath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Left as a hidden .staged file, never given a .dcm name (PlaceOutputs names accepted instances only).
        }
    }

    private static ReportEntry ProcessOne(InputItem item, DeidentificationEngine engine, string outputPath, Action<string, string>? hook)
    {
        if (item.SourcePath is null)
        {
            return ProcessOne(item, engine, outputPath, null, hook);
        }

        // A file on disk is opened once: parsed from this stream, and its Pixel Data read back through the same handle.
        FileStream source;
        try
        {
            source = new FileStream(item.SourcePath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return ReportEntry.Refused(item.RelativePath, "unreadable", "Not a readable DICOM file (" + ex.GetType().Name + ").");
        }

        using (source)
        {
            return ProcessOne(item, engine, outputPath, source, hook);
        }
    }

    private static ReportEntry ProcessOne(InputItem item, DeidentificationEngine engine, string outputPath, FileStream? source, Action<string, string>? hook)
    {
        if (item.RefusedCode is not null)
        {
            return ReportEntry.Refused(item.RelativePath, item.RefusedCode, item.RefusedMessage ?? "refused");
        }

        DicomFile file;
        try
        {
            file = source is not null ? DicomFile.Read(source, null, item.SourcePath) : item.Open();
        }
        catch (DicomFormatException ex)
        {
            return ReportEntry.Refused(item.RelativePath, "unreadable", "Not a readable DICOM file: " + ex.Reason);
        }
        catch (Exception ex) when (ex is DicomException or IOException or UnauthorizedAccessException or InvalidDataException or ArchiveRefusedException)
        {
            return ReportEntry.Refused(item.RelativePath, "unreadable", "Not a readable DICOM file (" + ex.GetType().Name + ").");
        }

        DeidOutcome outcome;
        hook?.Invoke("deidentify", item.RelativePath);
        try
        {
            outcome = engine.DeidentifyFile(file);
        }
        catch (Exception ex) when (ex is DicomException or IOException or FormatException or ArgumentException)
        {
            return ReportEntry.Refused(item.RelativePath, "error", "De-identification failed (" + ex.GetType().Name + ").");
        }

        if (!outcome.Accepted)
        {
            // Policy refusals, and encapsulated frames that do not decode (pixel-data-unreadable: the engine refuses them
            // rather than accept fragments it could not rewrite as pixels).
            return ReportEntry.Refused(item.RelativePath, ReasonCode(outcome.Rejection!.Reason), outcome.Rejection.Message);
        }

        var uid = file.Dataset.GetString(new DicomTag(0x0008, 0x0018));
        if (string.IsNullOrEmpty(uid))
        {
            return ReportEntry.Refused(item.RelativePath, "missing-sop-instance-uid", "No SOP Instance UID: the output could not be named.");
        }

        try
        {
            LoadBulkDataIntoThreadBuffer(file.Dataset, source);
            file.Save(outputPath);
        }
        catch (Exception ex) when (ex is DicomException or IOException or UnauthorizedAccessException or NotSupportedException)
        {
            DeleteStaged(outputPath); // a half-written output is not left behind
            return ReportEntry.Refused(item.RelativePath, "write-failed", "Writing the output failed (" + ex.GetType().Name + ").");
        }

        hook?.Invoke("written", item.RelativePath);
        return new ReportEntry(item.RelativePath, "accepted", null, null, outputPath, AuditCounts.From(outcome.Audit!)) { Uid = uid };
    }

    [ThreadStatic]
    private static byte[]? t_bulkBuffer;

    /// <summary>
    /// Replaces the one large bulk value of a CT instance (Pixel Data) by a view of a buffer reused by this worker thread, so
    /// writing does not allocate and fault in a new large-object-heap array per instance (measured: most of the extra
    /// system time, docs/benchmarks.md). Safe because the dataset is written synchronously and then dropped.
    /// </summary>
    private static void LoadBulkDataIntoThreadBuffer(DicomDataset dataset, FileStream? source)
    {
        foreach (var element in dataset.ToArray())
        {
            if (element is DicomValueElement { IsBulkData: true, BulkData: { } bulk } && bulk.Length <= 64L << 20)
            {
                var length = (int)bulk.Length;
                if (t_bulkBuffer is null || t_bulkBuffer.Length < length)
                {
                    t_bulkBuffer = GC.AllocateUninitializedArray<byte>(Math.Max(length, 1 << 20));
                }

                var destination = t_bulkBuffer.AsSpan(0, length);
                if (source is not null && bulk.SwapUnitSize == 0 && string.Equals(bulk.FilePath, source.Name, StringComparison.Ordinal))
                {
                    ReadAt(source, bulk, destination); // the source is still open: no second open of the file
                }
                else
                {
                    bulk.ReadRange(0, destination);
                }

                dataset.AddOrUpdate(new DicomValueElement(element.Tag, element.VR, t_bulkBuffer.AsMemory(0, length)));
                return; // one buffer per thread: only the first (Pixel Data in practice) uses it
            }
        }
    }

    private static void ReadAt(FileStream source, BulkDataReference bulk, Span<byte> destination)
    {
        var done = 0;
        while (done < destination.Length)
        {
            var n = RandomAccess.Read(source.SafeFileHandle, destination[done..], bulk.Offset + done);
            if (n <= 0)
            {
                throw new DicomException($"{bulk.FilePath}: file ends inside a bulk value (expected {bulk.Length} bytes at byte {bulk.Offset})");
            }

            done += n;
        }
    }

    private static string ReasonCode(DeidRejectReason reason) => reason switch
    {
        DeidRejectReason.MissingSopClass => "missing-sop-class",
        DeidRejectReason.UnsupportedSopClass => "unsupported-sop-class",
        DeidRejectReason.NotOriginalPrimary => "not-original-primary",
        DeidRejectReason.BurnedInAnnotation => "burned-in-annotation",
        DeidRejectReason.PixelDataUnreadable => "pixel-data-unreadable",
        _ => "rejected",
    };

    /// <summary>The inputs in a stable order (ordinal by relative path), so reports and outputs are reproducible.</summary>
    internal static List<InputItem> EnumerateInputs(string input)
    {
        if (File.Exists(input))
        {
            // Entries of a zip given as INPUT are named "<archive>!/<entry>", as they are when the zip lies in a folder.
            return IsZip(input) ? EnumerateZip(input, Path.GetFileName(input) + "!/") : [InputItem.FromFile(input, Path.GetFileName(input))];
        }

        var root = Path.GetFullPath(input);
        var options = new EnumerationOptions
        {
            RecurseSubdirectories = true,
            AttributesToSkip = FileAttributes.ReparsePoint | FileAttributes.Device,
            IgnoreInaccessible = false,
        };
        var items = new List<InputItem>();
        foreach (var path in Directory.EnumerateFiles(root, "*", options).Order(StringComparer.Ordinal))
        {
            var relative = Path.GetRelativePath(root, path).Replace('\\', '/');
            if (IsZip(path))
            {
                items.AddRange(EnumerateZip(path, relative + "!/"));
            }
            else
            {
                items.Add(InputItem.FromFile(path, relative));
            }
        }

        return items;
    }

    private static bool IsZip(string path)
    {
        if (path.EndsWith(".zip", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        if (path.EndsWith(".dcm", StringComparison.OrdinalIgnoreCase))
        {
            return false; // named as DICOM: no extra open and read per file to sniff for a zip
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        Span<byte> head = stackalloc byte[132];
        var n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        // A DICOM Part 10 file has "DICM" at 128; a zip starts with PK\3\4.
        return n >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && head[2] == 3 && head[3] == 4
            && !(n >= 132 && head[128] == (byte)'D' && head[129] == (byte)'I' && head[130] == (byte)'C' && head[131] == (byte)'M');
    }

    /// <summary>
    /// Lists the regular entries of a zip, refusing hostile names (absolute, drive-rooted, <c>..</c> segments) and bombs
    /// (entry count, total and per-entry size, compression ratio). Entries are read lazily, one at a time, into memory
    /// with the size cap enforced on the bytes actually inflated.
    /// </summary>
    internal static List<InputItem> EnumerateZip(string zipPath, string prefix)
    {
        using var archive = ZipFile.OpenRead(zipPath);
        if (archive.Entries.Count > MaxArchiveEntries)
        {
            throw new ArchiveRefusedException($"{Path.GetFileName(zipPath)}: more than {MaxArchiveEntries} entries.");
        }

        var items = new List<InputItem>();
        long total = 0;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in archive.Entries.OrderBy(e => e.FullName, StringComparer.Ordinal))
        {
            var name = entry.FullName.Replace('\\', '/');
            if (name.EndsWith('/'))
            {
                continue; // a directory
            }

            if (!IsSafeEntryName(name))
            {
                items.Add(InputItem.Refused(prefix + SanitizeForReport(name), "unsafe-archive-entry", "Archive entry name is absolute or escapes the archive: not read."));
                continue;
            }

            if (!seen.Add(name))
            {
                items.Add(InputItem.Refused(prefix + name, "unsafe-archive-entry", "Duplicate archive entry name: not read."));
                continue;
            }

            if (entry.Length > MaxEntryBytes || (entry.CompressedLength > 0 && entry.Length / Math.Max(1, entry.CompressedLength) > MaxCompressionRatio))
            {
                items.Add(InputItem.Refused(prefix + name, "archive-entry-too-large", "Archive entry exceeds the size or compression-ratio limit: not read."));
                continue;
            }

            total += entry.Length;
            if (total > MaxArchiveBytes)
            {
                throw new ArchiveRefusedException($"{Path.GetFileName(zipPath)}: more than {MaxArchiveBytes} bytes uncompressed.");
            }

            var entryName = entry.FullName;
            items.Add(new InputItem(prefix + name, () => ReadEntry(zipPath, entryName, name), null, null));
        }

        return items;
    }

    internal static bool IsSafeEntryName(string name)
    {
        if (name.Length == 0 || name.StartsWith('/') || name.Contains('\0', StringComparison.Ordinal)
            || (name.Length >= 2 && name[1] == ':'))
        {
            return false;
        }

        foreach (var segment in name.Split('/'))
        {
            if (segment is ".." or ".")
            {
                return false;
            }
        }

        return true;
    }

    private static string SanitizeForReport(string name) =>
        new([.. name.Where(c => !char.IsControl(c)).Take(200)]);

    private static DicomFile ReadEntry(string zipPath, string entryName, string reportName)
    {
        using var archive = ZipFile.OpenRead(zipPath);
        var entry = archive.GetEntry(entryName) ?? throw new ArchiveRefusedException("Archive entry vanished: " + reportName);
        using var source = entry.Open();
        var buffer = new MemoryStream((int)Math.Min(entry.Length, MaxEntryBytes));
        var chunk = new byte[81920];
        int n;
        while ((n = source.Read(chunk, 0, chunk.Length)) > 0)
        {
            if (buffer.Length + n > MaxEntryBytes || buffer.Length + n > Math.Max(entry.Length, 0))
            {
                throw new ArchiveRefusedException("Archive entry inflates beyond its declared size: " + reportName);
            }

            buffer.Write(chunk, 0, n);
        }

        buffer.Position = 0;
        return DicomFile.Read(buffer, null, reportName);
    }

    /// <summary>One input: a file on disk, a zip entry, or an entry refused before reading.</summary>
    internal sealed record InputItem(string RelativePath, Func<DicomFile>? Opener, string? RefusedCode, string? RefusedMessage)
    {
        /// <summary>The full path of a file on disk (null for zip entries and refused items).</summary>
        public string? SourcePath { get; init; }

        // Opened in place: Pixel Data stays a bulk reference into the source and is streamed to the output (reading
        // whole files into memory measured slower, docs/benchmarks.md).
        public static InputItem FromFile(string path, string relative) =>
            new(relative, () => DicomFile.Open(path), null, null) { SourcePath = Path.GetFullPath(path) };

        public static InputItem Refused(string relative, string code, string message) => new(relative, null, code, message);

        public DicomFile Open() => Opener is not null
            ? Opener()
            : throw new ArchiveRefusedException(RefusedMessage ?? "refused");
    }

    /// <summary>The report, as written with --report.</summary>
    internal sealed record DeidReport(
        string Tool, string Version, string AnnexEEdition, IReadOnlyList<string> OptionCodes, int Accepted, int Rejected,
        IReadOnlyList<ReportEntry> Inputs);

    /// <summary>One input's line in the report: relative input path as given, never a value from the dataset.</summary>
    internal sealed record ReportEntry(string Input, string Status, string? ReasonCode, string? Reason, string? Output, AuditCounts? Audit)
    {
        /// <summary>The new SOP Instance UID (names the output; not written to the report, the output name carries it).</summary>
        [JsonIgnore]
        public string? Uid { get; init; }

        public static ReportEntry Refused(string input, string code, string reason) => new(input, "rejected", code, reason, null, null);
    }

    /// <summary>The audit counts of one accepted instance.</summary>
    internal sealed record AuditCounts(
        int Kept, int Removed, int PrivateRemoved, int UnlistedRemoved, int GroupLengthsRemoved, int Zeroed, int Dummied, int Cleaned,
        int DatesShifted, int UidsRemapped, int SequenceItems, IReadOnlyList<string> OptionCodes)
    {
        public static AuditCounts From(DeidAudit a) => new(
            a.Kept, a.Removed, a.PrivateRemoved, a.UnlistedRemoved, a.GroupLengthsRemoved, a.Zeroed, a.Dummied, a.Cleaned,
            a.DatesShifted, a.UidsRemapped, a.SequenceItems, a.OptionCodes);
    }
}

/// <summary>A zip archive or entry refused for safety (traversal names, bombs).</summary>
internal sealed class ArchiveRefusedException : Exception
{
    public ArchiveRefusedException(string message)
        : base(message)
    {
    }
}
