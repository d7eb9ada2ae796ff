using System.Buffers.Binary;
using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CovidFunctions.Dicom;
using CovidFunctions.Dicom.Json;
using CovidFunctions.Dicom.Text;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn dump FILE [--json]</c>: prints a DICOM file. With <c>--json</c>, the file meta information (group 0002)
/// and the dataset as one DICOM JSON Model object (PS3.18 F.2, see <see cref="DicomJsonWriter"/>); without it, an
/// indented tree like dcmdump's. Exit 0 on success; 2 with one line on stderr naming the file and the reason when the
/// file is missing, unreadable or malformed.
/// </summary>
internal static class DumpCommand
{
    /// <summary>Values longer than this are read as bulk references and not loaded (the JSON gives them as BulkDataURI).</summary>
    private const long BulkDataThreshold = 1024;

    private const int MaxTreeValueChars = 64;

    public static Command Create()
    {
        var file = new Argument<string>("file") { Description = "The DICOM file (Part 10, or a bare dataset)." };
        var json = new Option<bool>("--json") { Description = "Print the DICOM JSON Model (PS3.18 F.2) of the file meta information and the dataset." };
        var command = new Command("dump", "Print a DICOM file's elements as a tree, or as DICOM JSON with --json.");
        command.Arguments.Add(file);
        command.Options.Add(json);
        command.SetAction(parseResult =>
        {
            var path = parseResult.GetValue(file) ?? string.Empty;
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            return Run(path, parseResult.GetValue(json), output, error);
        });
        return command;
    }

    /// <summary>Runs the command; separated from the parser so tests can call it directly.</summary>
    internal static int Run(string path, bool json, TextWriter output, TextWriter error)
    {
        // Said as other commands say it (screen, submit), not as the .NET exception a missing path throws.
        if (Directory.Exists(path))
        {
            error.WriteLine($"dump: {path}: a folder, not a file (dump prints one DICOM file)");
            return ExitCodes.BadInput;
        }

        string text;
        try
        {
            var dicom = DicomFile.Open(path, new DicomReadOptions { BulkDataThreshold = BulkDataThreshold });
            text = json ? ToJson(dicom) : ToTree(dicom);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            error.WriteLine($"dump: no such file: {path}");
            return ExitCodes.BadInput;
        }
        catch (DicomFormatException ex)
        {
            // A file that is no DICOM at all is not "malformed DICOM", and its reason already says "not a DICOM file".
            var prefix = ex.Reason.Contains("not a DICOM file", StringComparison.Ordinal) ? string.Empty : "malformed DICOM: ";
            error.WriteLine($"dump: {path}: {prefix}{OneLine(ex.Reason)} at byte {ex.Offset.ToString(CultureInfo.InvariantCulture)}");
            return ExitCodes.BadInput;
        }
        catch (Exception ex) when (ex is DicomException or IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            error.WriteLine($"dump: {path}: {ex.GetType().Name}: {OneLine(ex.Message)}");
            return ExitCodes.BadInput;
        }

        output.Write(text);
        output.Flush();
        return ExitCodes.Success;
    }

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();

    internal static string ToJson(DicomFile file)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions
        {
            Indented = true,
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }))
        {
            DicomJsonWriter.Write(writer, file, DicomJsonOptions.Default);
        }

        return Encoding.UTF8.GetString(stream.ToArray()) + Environment.NewLine;
    }

    internal static string ToTree(DicomFile file)
    {
        var sb = new StringBuilder();
        sb.Append("# File: ").Append(file.FilePath).AppendLine();
        sb.Append("# Transfer syntax: ").Append(file.TransferSyntax.Uid).Append(" (").Append(file.TransferSyntax.Name).AppendLine(")");
        if (file.FileMetaInformation.Count > 0)
        {
            sb.AppendLine("# File meta information");
            AppendDataset(sb, file.FileMetaInformation, DicomEncoding.Default, 0);
        }

        sb.AppendLine("# Dataset");
        AppendDataset(sb, file.Dataset, file.Dataset.CharacterSet, 0);
        return sb.ToString();
    }

    private static void AppendDataset(StringBuilder sb, DicomDataset dataset, DicomEncoding charset, int depth)
    {
        foreach (var element in dataset)
        {
            var indent = new string(' ', depth * 2);
            sb.Append(indent).Append(element.Tag.ToString()).Append(' ');
            switch (element)
            {
                case DicomSequence sequence:
                    sb.Append("SQ ").Append(Keyword(element.Tag)).Append(" (").Append(sequence.Items.Count.ToString(CultureInfo.InvariantCulture)).AppendLine(" items)");
                    for (var i = 0; i < sequence.Items.Count; i++)
                    {
                        var item = sequence.Items[i];
                        sb.Append(indent).Append("  (FFFE,E000) Item #").Append((i + 1).ToString(CultureInfo.InvariantCulture)).AppendLine();
                        AppendDataset(sb, item, item.CharacterSet, depth + 2);
                    }

                    break;
                case DicomFragmentSequence fragments:
                    sb.Append(fragments.VR.Code).Append(' ').Append(Keyword(element.Tag)).Append(" (encapsulated: offset table ")
                        .Append(fragments.BasicOffsetTable.Length.ToString(CultureInfo.InvariantCulture)).Append(" bytes, ")
                        .Append(fragments.Fragments.Count.ToString(CultureInfo.InvariantCulture)).AppendLine(" fragments)");
                    for (var i = 0; i < fragments.Fragments.Count; i++)
                    {
                        sb.Append(indent).Append("  (FFFE,E000) Fragment #").Append((i + 1).ToString(CultureInfo.InvariantCulture))
                            .Append(' ').Append(fragments.Fragments[i].Length.ToString(CultureInfo.InvariantCulture)).AppendLine(" bytes");
                    }

                    break;
                case DicomValueElement value:
                    sb.Append(value.VR.Code).Append(' ').Append(Keyword(element.Tag)).Append(' ').Append(FormatValue(value, charset))
                        .Append("  # ").Append(value.Length.ToString(CultureInfo.InvariantCulture)).AppendLine();
                    break;
                default:
                    sb.Append(element.VR.Code).Append(' ').AppendLine(Keyword(element.Tag));
                    break;
            }
        }
    }

    private static string Keyword(DicomTag tag)
    {
        if (tag.IsGroupLength)
        {
            return "GroupLength";
        }

        if (tag.IsPrivateCreator)
        {
            return "PrivateCreator";
        }

        return tag.Keyword ?? (tag.IsPrivate ? "Private" : "Unknown");
    }

    private static string FormatValue(DicomValueElement element, DicomEncoding charset)
    {
        if (element.Length == 0)
        {
            return "(empty)";
        }

        var vr = element.VR;
        if (vr.IsBinary || (element.Tag.Group == 0x7FE0 && !vr.IsString))
        {
            if (element.IsBulkData)
            {
                return $"({element.Length.ToString(CultureInfo.InvariantCulture)} bytes, not loaded)";
            }

            var raw = element.RawValue.Span;
            var shown = Convert.ToHexString(raw[..Math.Min(raw.Length, 16)]);
            return raw.Length > 16 ? shown + "..." : shown;
        }

        var span = element.RawValue.Span;
        string text;
        if (vr.IsString)
        {
            var decoded = (element.Tag == new DicomTag(0x0008, 0x0005) ? DicomEncoding.Default : charset).Decode(span, vr.Code);
            text = "[" + string.Join('\\', decoded.Split('\\').Select(v => v.Trim(' ', '\0'))) + "]";
            text = text.ReplaceLineEndings(" ");
        }
        else
        {
            text = string.Join('\\', BinaryValues(vr.Code, span));
        }

        return text.Length > MaxTreeValueChars ? text[..MaxTreeValueChars] + "..." : text;
    }

    private static IEnumerable<string> BinaryValues(string vr, ReadOnlySpan<byte> raw)
    {
        var size = vr switch
        {
            "US" or "SS" => 2,
            "UL" or "SL" or "FL" or "AT" => 4,
            _ => 8,
        };
        var values = new List<string>();
        for (var i = 0; i + size <= raw.Length && values.Count < 32; i += size)
        {
            var s = raw[i..];
            values.Add(vr switch
            {
                "US" => BinaryPrimitives.ReadUInt16LittleEndian(s).ToString(CultureInfo.InvariantCulture),
                "SS" => BinaryPrimitives.ReadInt16LittleEndian(s).ToString(CultureInfo.InvariantCulture),
                "UL" => BinaryPrimitives.ReadUInt32LittleEndian(s).ToString(CultureInfo.InvariantCulture),
                "SL" => BinaryPrimitives.ReadInt32LittleEndian(s).ToString(CultureInfo.InvariantCulture),
                "FL" => BinaryPrimitives.ReadSingleLittleEndian(s).ToString("R", CultureInfo.InvariantCulture),
                "FD" => BinaryPrimitives.ReadDoubleLittleEndian(s).ToString("R", CultureInfo.InvariantCulture),
                "SV" => BinaryPrimitives.ReadInt64LittleEndian(s).ToString(CultureInfo.InvariantCulture),
                "UV" => BinaryPrimitives.ReadUInt64LittleEndian(s).ToString(CultureInfo.InvariantCulture),
                "AT" => new DicomTag(BinaryPrimitives.ReadUInt16LittleEndian(s), BinaryPrimitives.ReadUInt16LittleEndian(s[2..])).ToString(),
                _ => "?",
            });
        }

        return values;
    }
}
