using System.Net;
using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Tests.Notifications;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>The minimal-API mapping over real HTTP (Kestrel on 127.0.0.1), with local API keys bound to tenants.</summary>
public sealed class ResultsApiHttpTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Http_RequiresAKey_AndScopesEveryRouteToTheKeysTenants()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        await kit.AddCompletedStudyAsync("beta", "s0000000000000000000000b1");
        var keys = new LocalApiKeys(kit.Temp.Path);
        var operatorKey = await keys.GetOrCreateOperatorKeyAsync(None);
        Assert.Equal(operatorKey, await keys.GetOrCreateOperatorKeyAsync(None));
        var alphaKey = await keys.AddKeyAsync(["alpha"], None);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keys.FilePath));
        }

        await using var server = await ApiHttpServer.StartAsync(kit.Api, keys);
        var http = server.Http;

        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync(new Uri("/api/studies", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await ApiHttpServer.Send(http, HttpMethod.Get, "/api/studies", "cfk_wrong")).StatusCode);

        using var own = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/studies/s0000000000000000000000a1", alphaKey);
        Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        using var foreign = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/studies/s0000000000000000000000b1", alphaKey);
        Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        using var foreignReport = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/studies/s0000000000000000000000b1/report", alphaKey);
        Assert.Equal(HttpStatusCode.NotFound, foreignReport.StatusCode);
        using var operatorView = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/studies/s0000000000000000000000b1?tenant=beta", operatorKey);
        Assert.Equal(HttpStatusCode.OK, operatorView.StatusCode);

        using var report = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/studies/s0000000000000000000000a1/report", alphaKey);
        Assert.Equal("text/html; charset=utf-8", report.Content.Headers.ContentType!.ToString());
        Assert.Contains("Research use only", await report.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var fhir = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/studies/s0000000000000000000000a1/fhir", alphaKey);
        Assert.Equal("application/fhir+json", fhir.Content.Headers.ContentType!.MediaType);
        using var overlay = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/studies/s0000000000000000000000a1/files/overlays/0031.png", alphaKey);
        Assert.Equal("image/png", overlay.Content.Headers.ContentType!.MediaType);

        using var list = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/studies?pageSize=10", alphaKey);
        using var listJson = JsonDocument.Parse(await list.Content.ReadAsStringAsync());
        Assert.Equal(1, listJson.RootElement.GetProperty("items").GetArrayLength());
        using var usage = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/usage?month=2026-11", alphaKey);
        Assert.Equal(HttpStatusCode.OK, usage.StatusCode);
    }

    [Fact]
    public async Task Http_WebhookEndpoints_CreateListTestDelete()
    {
        using var kit = new ApiTestKit();
        var keys = new LocalApiKeys(kit.Temp.Path);
        var alphaKey = await keys.AddKeyAsync(["alpha"], None);
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        await using var server = await ApiHttpServer.StartAsync(kit.Api, keys);
        var http = server.Http;

        using var refused = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new { url = "https://169.254.169.254/latest" });
        Assert.Equal((HttpStatusCode)422, refused.StatusCode);
        using var otherTenant = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new { url = receiver.Url.ToString(), tenant = "beta" });
        Assert.Equal(HttpStatusCode.Forbidden, otherTenant.StatusCode);

        using var created = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new { url = receiver.Url.ToString(), events = new[] { "study.completed" } });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        using var createdJson = JsonDocument.Parse(await created.Content.ReadAsStringAsync());
        var id = createdJson.RootElement.GetProperty("webhook").GetProperty("id").GetString()!;
        var secret = createdJson.RootElement.GetProperty("secret").GetString()!;
        Assert.Equal("alpha", createdJson.RootElement.GetProperty("webhook").GetProperty("tenant").GetString());

        using var listed = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/webhooks", alphaKey);
        Assert.Contains(id, await listed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain(secret, await listed.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var tested = await ApiHttpServer.Send(http, HttpMethod.Post, $"/api/webhooks/{id}/test", alphaKey);
        using var testedJson = JsonDocument.Parse(await tested.Content.ReadAsStringAsync());
        Assert.Equal(WebhookDeliveryStatus.Delivered, testedJson.RootElement.GetProperty("status").GetString());
        var received = Assert.Single(receiver.Received);
        Assert.True(WebhookSignature.Verify(secret, received.Headers[WebhookSignature.SignatureHeader], received.Body, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5)));

        using var deleted = await ApiHttpServer.Send(http, HttpMethod.Delete, $"/api/webhooks/{id}", alphaKey);
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        using var again = await ApiHttpServer.Send(http, HttpMethod.Delete, $"/api/webhooks/{id}", alphaKey);
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
    }
}
