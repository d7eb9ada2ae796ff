using System.Diagnostics;
using System.Globalization;
using CovidFunctions.Dicom;
using CovidFunctions.Dicom.Imaging;

// DICOM codec throughput: our reader vs dcmdump vs pydicom on the same files, in one run (docs/benchmarks.md).
// Usage: dotnet run -c Release --project bench/CovidFunctions.Dicom.Benchmarks -- [FOLDER] [REPEAT]
var folder = args.Length > 0 ? args[0] : Path.GetFullPath(Path.Combine(FindRepoRoot(), "..", "shared", "data", "dicom", "chest-ct", "lung-pet-ct-dx"));
var repeat = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 5;
var files = Directory.EnumerateFiles(folder, "*.dcm", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray();
var totalBytes = files.Sum(f => new FileInfo(f).Length);
var mb = totalBytes / 1e6;
var benchDir = Path.Combine(FindRepoRoot(), "bench", "CovidFunctions.Dicom.Benchmarks");

Console.WriteLine($"# {files.Length} files, {mb:F1} MB, {repeat} timed runs each (median), after one warm-up run");
Console.WriteLine($"# machine: {Environment.ProcessorCount} cores, {CpuModel()}, load average at start {LoadAverage()}");

var rows = new List<(string Tool, string What, double Seconds)>
{
    ("covidfn (C#)", "header", Median(repeat, () =>
    {
        foreach (var f in files)
        {
            DicomFile.Open(f, DicomReadOptions.HeaderOnly);
        }
    })),
    ("covidfn (C#)", "full", Median(repeat, () =>
    {
        foreach (var f in files)
        {
            var file = DicomFile.Open(f);
            var pixels = DicomPixelData.Create(file);
            for (var i = 0; i < pixels.FrameCount; i++)
            {
                pixels.DecodeFrame(i);
            }
        }
    })),
    ("dcmdump (dcmtk 3.6.7)", "header", Median(repeat, () => Exec("dcmdump", ["-q", "+sb", "7fe0,0010", .. files]))),
    ("dcmdump (dcmtk 3.6.7)", "full", Median(repeat, () => Exec("dcmdump", ["-q", .. files]))),
    ("pydicom 2.3", "header", Pydicom("header")),
    ("pydicom 2.3", "full", Pydicom("full")),
};

Console.WriteLine();
Console.WriteLine("| tool | what | seconds (median) | MB/s | files/s |");
Console.WriteLine("| --- | --- | ---: | ---: | ---: |");
foreach (var (tool, what, seconds) in rows)
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {tool} | {what} | {seconds:F3} | {mb / seconds:F0} | {files.Length / seconds:F0} |"));
}

Console.WriteLine($"# load average at end {LoadAverage()}");
return 0;

double Median(int runs, Action action)
{
    action();
    var times = new List<double>();
    for (var i = 0; i < runs; i++)
    {
        var sw = Stopwatch.StartNew();
        action();
        times.Add(sw.Elapsed.TotalSeconds);
    }

    times.Sort();
    return times[times.Count / 2];
}

void Exec(string exe, string[] arguments)
{
    var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
    foreach (var a in arguments)
    {
        psi.ArgumentList.Add(a);
    }

    using var process = Process.Start(psi)!;
    var drainErr = process.StandardError.ReadToEndAsync();
    process.StandardOutput.BaseStream.CopyTo(Stream.Null);
    process.WaitForExit();
    _ = drainErr.GetAwaiter().GetResult();
}

double Pydicom(string mode)
{
    var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
    psi.ArgumentList.Add(Path.Combine(benchDir, "pydicom_bench.py"));
    psi.ArgumentList.Add(mode);
    psi.ArgumentList.Add(repeat.ToString(CultureInfo.InvariantCulture));
    using var process = Process.Start(psi)!;
    foreach (var f in files)
    {
        process.StandardInput.WriteLine(f);
    }

    process.StandardInput.Close();
    var output = process.StandardOutput.ReadToEnd();
    process.WaitForExit();
    return double.Parse(output.Trim(), CultureInfo.InvariantCulture);
}

static string CpuModel() =>
    File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";

static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

static string FindRepoRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "CovidFunctions.sln")))
        {
            return dir.FullName;
        }
    }

    return Directory.GetCurrentDirectory();
}
