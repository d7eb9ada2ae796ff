using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.Scorer.Tests;

/// <summary>
/// The scorer reads a study's status row (ScoringHandler: a chunk of a study already failed, completed or rejected is
/// completed without scoring) wherever it has the tables: with a connection string and with the identity endpoints it
/// runs with in Azure (bicep gives its identity Storage Table Data Reader on Studies, RoleAssignmentTests). Before, only
/// a connection string gave it the Studies store, so in Azure every chunk of an ended study was still scored.
/// </summary>
public sealed class ScorerStudiesAccessTests
{
    public static TheoryData<string, string?, string?> Storage => new()
    {
        { "connection string", "UseDevelopmentStorage=true", null },
        { "identity endpoints", null, "https://stcovidfn.table.core.windows.net" },
    };

    [Theory]
    [MemberData(nameof(Storage))]
    public void Scorer_WithTables_HasTheStudiesStore(string storage, string? connectionString, string? tableServiceUri)
    {
        var options = new ScorerOptions
        {
            StorageConnectionString = connectionString,
            BlobServiceUri = connectionString is null ? new Uri("https://stcovidfn.blob.core.windows.net") : null,
            QueueServiceUri = connectionString is null ? new Uri("https://stcovidfn.queue.core.windows.net") : null,
            TableServiceUri = tableServiceUri is null ? null : new Uri(tableServiceUri),
        };
        var services = new ServiceCollection();
        services.AddLogging();

        ScorerApp.AddMessaging(services, new ConfigurationBuilder().Build(), options);

        using var provider = services.BuildServiceProvider();
        Assert.True(provider.GetService<IStudyStore>() is not null, $"{storage}: the scorer has no Studies store");
    }

    [Fact]
    public void Scorer_WithoutTables_HasNoStudiesStore()
    {
        var options = new ScorerOptions
        {
            BlobServiceUri = new Uri("https://stcovidfn.blob.core.windows.net"),
            QueueServiceUri = new Uri("https://stcovidfn.queue.core.windows.net"),
        };
        var services = new ServiceCollection();
        services.AddLogging();

        ScorerApp.AddMessaging(services, new ConfigurationBuilder().Build(), options);

        using var provider = services.BuildServiceProvider();
        Assert.Null(provider.GetService<IStudyStore>());
    }
}
