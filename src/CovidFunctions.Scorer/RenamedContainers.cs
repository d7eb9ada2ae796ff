using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Scorer;

/// <summary>The pipeline's container names mapped to a deployment's (bicep passes them as settings; by default they are equal).</summary>
internal sealed class RenamedContainers(IBlobContainers inner, IReadOnlyDictionary<string, string> names) : IBlobContainers
{
    public IBlobStore Get(string container) => inner.Get(Map(container));

    public string LinkTo(string container, string path) => inner.LinkTo(Map(container), path);

    private string Map(string container) => names.TryGetValue(container, out var name) ? name : container;
}
