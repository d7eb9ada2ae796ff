using CovidFunctions.Dicom;
using CovidFunctions.Imaging.Archives;

namespace CovidFunctions.Imaging.Series;

/// <summary>The files of an input (one file, a folder tree, or the entries of a zip), reopened on demand.</summary>
internal sealed class SliceSources : IDisposable
{
    private readonly string[] _files;
    private readonly SafeZipArchive? _zip;

    private SliceSources(string description, string[] files, SafeZipArchive? zip)
    {
        Description = description;
        _files = files;
        _zip = zip;
    }

    public string Description { get; }

    public int Count => _zip?.Entries.Count ?? _files.Length;

    public static SliceSources Open(string path, ZipSafetyLimits limits)
    {
        if (Directory.Exists(path))
        {
            var files = Directory.EnumerateFiles(path, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint | FileAttributes.Hidden })
                .Order(StringComparer.Ordinal)
                .ToArray();
            return new SliceSources(path, files, null);
        }

        if (!File.Exists(path))
        {
            throw new SeriesAssemblyException($"{path}: no such file or folder") { FilePath = path, Reason = "not-found" };
        }

        if (SafeZipArchive.IsZip(path))
        {
            return new SliceSources(path, [], SafeZipArchive.Open(path, limits));
        }

        return new SliceSources(path, [path], null);
    }

    public string NameOf(int index) => _zip is null ? _files[index] : $"{Description}!{_zip.Entries[index].Name}";

    /// <summary>The name relative to the input: the path under the folder ('/'-separated), the zip entry name, or the file name.</summary>
    public string RelativeNameOf(int index)
    {
        if (_zip is not null)
        {
            return _zip.Entries[index].Name;
        }

        return Directory.Exists(Description)
            ? Path.GetRelativePath(Description, _files[index]).Replace(Path.DirectorySeparatorChar, '/')
            : Path.GetFileName(_files[index]);
    }

    /// <summary>The first bytes of a source (fewer when it is shorter), for format sniffing.</summary>
    public byte[] ReadHead(int index, int count)
    {
        using var stream = _zip is null ? File.OpenRead(_files[index]) : _zip.OpenEntry(_zip.Entries[index]);
        var buffer = new byte[count];
        var read = stream.ReadAtLeast(buffer, count, throwOnEndOfStream: false);
        return read == count ? buffer : buffer[..read];
    }

    /// <summary>The whole source (a 2-D image file; zip entries stay within the archive limits).</summary>
    public byte[] ReadAllBytes(int index) => _zip is null ? File.ReadAllBytes(_files[index]) : _zip.ReadAllBytes(_zip.Entries[index]);

    /// <summary>
    /// The header for the scan: through Pixel Data for a file (its value stays in the file as a bulk reference); before
    /// Pixel Data for a zip entry, whose value would have to be inflated (<see cref="UnreadPixelDataSourceBytes"/>).
    /// </summary>
    public DicomFile ReadHeader(int index) => Read(index, _zip is null ? DicomScanner.HeaderOptions : DicomScanner.HeaderBeforePixelDataOptions);

    /// <summary>For a source whose <see cref="ReadHeader"/> stops before Pixel Data (a zip entry): its uncompressed size; otherwise null.</summary>
    public long? UnreadPixelDataSourceBytes(int index) => _zip?.Entries[index].UncompressedSize;

    /// <summary>The header before Pixel Data (whether the file is DICOM at all when <see cref="ReadHeader"/> failed on its Pixel Data).</summary>
    public DicomFile ReadHeaderBeforePixelData(int index) => Read(index, DicomScanner.HeaderBeforePixelDataOptions);

    public DicomFile ReadFull(int index) => Read(index, null);

    public void Dispose() => _zip?.Dispose();

    private DicomFile Read(int index, DicomReadOptions? options)
    {
        if (_zip is null)
        {
            return DicomFile.Open(_files[index], options);
        }

        // Entry streams of a path-opened archive have their own file handles: no lock needed.
        using var stream = _zip.OpenEntry(_zip.Entries[index]);
        return DicomFile.Read(stream, options, NameOf(index));
    }
}
