using System.Diagnostics;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// The receiver side of docs/webhooks.md, checked by code that is not ours: tests/peers/verify_webhook.py (Python,
/// hmac/hashlib) was written from the doc alone and receives real deliveries from the dispatcher over HTTP. It answers
/// 204 only when the doc's recipe verifies the raw bytes and the headers are as the doc describes, so a delivered
/// status here means a receiver following the doc accepts what the code sends.
/// </summary>
public sealed class WebhookPeerReceiverTests
{
    private static string Script => Path.Combine(TestData.RepoRoot, "tests", "peers", "verify_webhook.py");

    [Fact]
    public void DocKnownVector_VerifiesWithTheDocRecipe()
    {
        var (exitCode, output) = RunToEnd(Start("vector"));
        Assert.True(exitCode == 0, output);
    }

    [Fact]
    public async Task RealDeliveries_VerifyWithTheDocRecipe()
    {
        const string secret = "whsec_peer_receiver_secret_0123456789";
        using var python = Start("serve", secret, "2");
        var portLine = await python.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(portLine is not null && portLine.StartsWith("PORT ", StringComparison.Ordinal), $"no port line: {portLine}");
        var url = new Uri($"http://127.0.0.1:{portLine[5..]}/hook");

        using var kit = new WebhookTestKit(WebhookTestKit.FastOptions(maxRetries: 0));
        var created = await kit.SubscribeAsync(url, secret);
        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, CancellationToken.None);
        var test = await kit.Manager.TestAsync(created.Subscription, CancellationToken.None);

        var (exitCode, output) = RunToEnd(python);
        Assert.True(exitCode == 0, output);
        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, CancellationToken.None), d => d.EventType == StudyEventTypes.Completed);
        Assert.Equal(WebhookDeliveryStatus.Delivered, delivery.Status);
        Assert.Equal(204, delivery.LastStatusCode);
        Assert.Equal(WebhookDeliveryStatus.Delivered, test.Status);
        Assert.Contains("ok study.completed evt_", output, StringComparison.Ordinal);
        Assert.Contains("ok webhook.test evt_", output, StringComparison.Ordinal);
    }

    private static Process Start(params string[] args)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Script);
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        return Process.Start(psi) ?? throw new InvalidOperationException("python3 did not start");
    }

    private static (int ExitCode, string Output) RunToEnd(Process process)
    {
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill();
            return (-1, "verify_webhook.py did not finish within 60 s\n" + stdout.Result + stderr.Result);
        }

        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
