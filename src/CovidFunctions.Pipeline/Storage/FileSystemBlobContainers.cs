using CovidFunctions.Imaging.Tiles;

namespace CovidFunctions.Pipeline.Storage;

/// <summary>Containers as sub-folders of a root folder: the storage of <c>covidfn screen</c> (no Azurite needed).</summary>
public sealed class FileSystemBlobContainers(string root) : IBlobContainers
{
    private readonly Dictionary<string, FileSystemBlobStore> _stores = [];
    private readonly Lock _gate = new();

    public string Root { get; } = Path.GetFullPath(root);

    public IBlobStore Get(string container)
    {
        ArgumentException.ThrowIfNullOrEmpty(container);
        lock (_gate)
        {
            if (!_stores.TryGetValue(container, out var store))
            {
                store = new FileSystemBlobStore(Path.Combine(Root, container));
                _stores[container] = store;
            }

            return store;
        }
    }

    public string LinkTo(string container, string path) => Path.Combine(Root, container, path.Replace('/', Path.DirectorySeparatorChar));
}
