using System.Diagnostics;
using System.Globalization;
using CovidFunctions.Inference;
using Microsoft.Extensions.Logging.Abstractions;

// Usage: InferenceBench MODELS_DIR [slices=8] [threads=1,2] [batches=1,4] [interop=1]
// Prints one line per (graph, threads, batch): milliseconds per slice (median of 3 repetitions after a warm-up).
// interop > 1 runs independent branches of the graph in parallel (ExecutionMode.ORT_PARALLEL), e.g. the two members
// of the mean-of-members graph, each with `threads` intra-op threads.
var dir = args.Length > 0 ? args[0] : Path.Combine(AppContext.BaseDirectory, "models");
var slices = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 8;
var threadList = (args.Length > 2 ? args[2] : "1,2").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
var batches = (args.Length > 3 ? args[3] : "1,4").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
var interOp = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 1;
var manifest = ModelManifest.Load(dir);
var rng = new Random(5);
var input = new float[slices * OnnxModel.Plane];
for (var i = 0; i < input.Length; i++)
{
    input[i] = (float)rng.NextDouble();
}

foreach (var threads in threadList)
{
    foreach (var batch in batches)
    {
        var options = new InferenceOptions { ModelsDirectory = dir, PreferCuda = false, IntraOpThreads = threads, InterOpThreads = interOp, MaxBatch = batch };
        foreach (var name in manifest.Models.Keys)
        {
            using var model = OnnxModel.Create(manifest.PathOf(name), options, NullLogger.Instance);
            model.Run(input.AsMemory(0, batch * OnnxModel.Plane), batch);
            var times = new List<double>();
            for (var rep = 0; rep < 3; rep++)
            {
                var sw = Stopwatch.StartNew();
                model.Run(input, slices);
                times.Add(sw.Elapsed.TotalMilliseconds / slices);
            }

            times.Sort();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ort\t{name}\tthreads={threads}{(interOp > 1 ? $"x{interOp} parallel" : "")}\tbatch={batch}\tms_per_slice={times[1]:F1}"));
        }
    }
}
