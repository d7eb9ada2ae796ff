using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The result relay is a Storage-queue trigger on <c>slice-results</c>; the app has no Service Bus trigger, so a
/// deployment with bicep's <c>resultTransport=ServiceBus</c> (the scorer then sends results to Service Bus) would never
/// relay a result. The app refuses that setting at start-up instead of failing every study later.
/// </summary>
public sealed class ResultTransportSettingTests
{
    [Fact]
    public void ServiceBusResults_AtStartUp_AreRefusedWithTheFix()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage"] = "UseDevelopmentStorage=true",
            ["Pipeline:ResultTransport"] = "ServiceBus",
        }).Build();

        var error = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddLogging().AddCovidFunctionsApp(configuration));

        Assert.Contains("resultTransport=StorageQueue", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StorageQueueResults_AtStartUp_AreAccepted()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage"] = "UseDevelopmentStorage=true",
            ["Pipeline:ResultTransport"] = "StorageQueue",
            ["Deidentification:HmacKey"] = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)),
        }).Build();

        await using var services = new ServiceCollection().AddLogging().AddCovidFunctionsApp(configuration).BuildServiceProvider();

        Assert.Equal(MessageTransport.StorageQueue, services.GetRequiredService<Microsoft.Extensions.Options.IOptions<FunctionAppSettings>>().Value.ResultTransport);
    }
}
