using CovidFunctions.Pipeline.Azure.Messaging;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.Scorer.Tests;

/// <summary>
/// Whether the scorer's Storage-queue transport creates a queue (and the dead-letter container) before using it. In Azure
/// (identity endpoints) bicep creates them and the scorer's identity holds only Storage Queue Data Message Sender on
/// <c>slice-results</c> (RoleAssignmentTests): a Create Queue needs <c>queueServices/queues/write</c>, which that role
/// lacks, so the service answers 403 even for a queue that exists, and the transport's CreateIfNotExists threw before
/// every chunk result was sent. With a connection string (Azurite, the local host) it still creates what is missing.
/// </summary>
public sealed class ScorerQueueCreationTests
{
    [Fact]
    public void IdentityEndpoints_TheTransportCreatesNothing()
    {
        var options = TransportOptions(new ScorerOptions
        {
            BlobServiceUri = new Uri("https://stcovidfn.blob.core.windows.net"),
            QueueServiceUri = new Uri("https://stcovidfn.queue.core.windows.net"),
            TableServiceUri = new Uri("https://stcovidfn.table.core.windows.net"),
        });

        Assert.False(options.CreateIfMissing, "with the identity endpoints the scorer would create slice-results, which its Message Sender role refuses");
    }

    [Fact]
    public void ConnectionString_TheTransportCreatesWhatIsMissing()
    {
        var options = TransportOptions(new ScorerOptions { StorageConnectionString = "UseDevelopmentStorage=true" });

        Assert.True(options.CreateIfMissing);
    }

    /// <summary>The options the scorer's <see cref="StorageQueueTransport"/> is built with.</summary>
    private static StorageQueueTransportOptions TransportOptions(ScorerOptions scorer)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        ScorerApp.AddMessaging(services, new ConfigurationBuilder().Build(), scorer);
        using var provider = services.BuildServiceProvider();
        Assert.NotNull(provider.GetService<StorageQueueTransport>());
        return provider.GetService<StorageQueueTransportOptions>()
            ?? throw new Xunit.Sdk.XunitException("the scorer registers no StorageQueueTransportOptions: its transport runs with the defaults, which create queues");
    }
}
