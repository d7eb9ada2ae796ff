using CovidFunctions.Imaging.Tiles;

namespace CovidFunctions.Pipeline.Storage;

/// <summary>The pipeline's blob containers by name (<see cref="PipelineNames"/>), each as an <see cref="IBlobStore"/>.</summary>
public interface IBlobContainers
{
    IBlobStore Get(string container);

    /// <summary>A link a client can follow to a blob (Azurite/Azure URL, or a file path for the file-system store).</summary>
    string LinkTo(string container, string path);
}
