using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Tests.Notifications;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>
/// Adversarial checks of the results API over real HTTP (Kestrel on 127.0.0.1, local keys): oversized bodies, tenant
/// names that only look valid, duplicated key headers, error texts that name internals, and the report's headers.
/// </summary>
public sealed class ApiSecurityTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task CreateWebhook_ABodyOverTheLimit_Is413_AndNothingIsStored()
    {
        using var kit = new ApiTestKit();
        var keys = new LocalApiKeys(kit.Temp.Path);
        var alphaKey = await keys.AddKeyAsync(["alpha"], None);
        await using var server = await ApiHttpServer.StartAsync(kit.Api, keys);
        var http = server.Http;

        // A 1 MiB secret: before the limit this was read whole, accepted (201) and stored in the secret store.
        var body = new { url = "http://127.0.0.1:9/hook", secret = new string('x', 1024 * 1024) };
        using var response = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, body);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Empty(await kit.Webhooks.Subscriptions.ListAsync(null, None));
    }

    [Fact]
    public async Task CreateWebhook_ASecretOrUrlOverItsLimit_Is400()
    {
        using var kit = new ApiTestKit();
        var keys = new LocalApiKeys(kit.Temp.Path);
        var alphaKey = await keys.AddKeyAsync(["alpha"], None);
        await using var server = await ApiHttpServer.StartAsync(kit.Api, keys);
        var http = server.Http;

        using var longSecret = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new { url = "http://127.0.0.1:9/hook", secret = new string('x', WebhookManager.MaxSecretLength + 1) });
        Assert.Equal(HttpStatusCode.BadRequest, longSecret.StatusCode);
        using var longUrl = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new { url = "http://127.0.0.1:9/" + new string('a', WebhookManager.MaxUrlLength) });
        Assert.Equal(HttpStatusCode.BadRequest, longUrl.StatusCode);
        Assert.Empty(await kit.Webhooks.Subscriptions.ListAsync(null, None));

        // The limits leave ordinary values alone.
        using var ok = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new { url = "http://127.0.0.1:9/hook", secret = new string('x', WebhookManager.MaxSecretLength) });
        Assert.Equal(HttpStatusCode.Created, ok.StatusCode);
    }

    [Fact]
    public async Task MintApiKey_ABodyOverTheLimit_Is413()
    {
        var store = new InMemoryKeyStore();
        var admin = new ApiKeyAdmin(store, TimeProvider.System);
        var tenants = string.Join(",", Enumerable.Repeat("\"alpha\"", 20_000));
        using var body = new MemoryStream(Encoding.UTF8.GetBytes("{\"tenants\":[" + tenants + "]}"));

        var response = await admin.MintAsync(body, None);

        Assert.Equal(413, response.Status);
        Assert.Empty(store.Keys);
    }

    [Fact]
    public async Task InvalidJson_TheErrorDoesNotNameInternalTypes()
    {
        using var kit = new ApiTestKit();
        var keys = new LocalApiKeys(kit.Temp.Path);
        var alphaKey = await keys.AddKeyAsync(["alpha"], None);
        await using var server = await ApiHttpServer.StartAsync(kit.Api, keys);
        var http = server.Http;

        using var response = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new[] { 1, 2 });
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("not valid JSON", text, StringComparison.Ordinal);
        Assert.DoesNotContain("CovidFunctions.", text, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", text, StringComparison.Ordinal);

        var minted = await new ApiKeyAdmin(new InMemoryKeyStore(), TimeProvider.System).MintAsync(new MemoryStream("[1]"u8.ToArray()), None);
        Assert.Equal(400, minted.Status);
        Assert.DoesNotContain("CovidFunctions.", minted.BodyText, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("alpha\n")]
    [InlineData("alpha\r\n")]
    public async Task TenantWithATrailingNewline_IsNotValid_Anywhere(string tenant)
    {
        // The tenant pattern ended in '$', which also matches before a final '\n': "alpha\n" passed as valid.
        Assert.False(StudyIds.IsValidTenant(tenant));
        Assert.Throws<ArgumentException>(() => StudyIds.RequireTenant(tenant));
        Assert.False(ApiKeyTenants.IsValid(tenant));

        var store = new InMemoryKeyStore();
        var admin = new ApiKeyAdmin(store, TimeProvider.System);
        using var body = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(new { tenants = new[] { tenant } }));
        Assert.Equal(400, (await admin.MintAsync(body, None)).Status);
        Assert.Empty(store.Keys);

        using var kit = new ApiTestKit();
        var list = await kit.Api.ListStudiesAsync(ApiCaller.AllTenants, new StudyListQuery(Tenant: tenant), None);
        Assert.Equal(400, list.Status);
    }

    [Fact]
    public async Task DuplicatedKeyHeader_Is401_WhicheverValueComesFirst()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        var keys = new LocalApiKeys(kit.Temp.Path);
        var alphaKey = await keys.AddKeyAsync(["alpha"], None);
        await using var server = await ApiHttpServer.StartAsync(kit.Api, keys);

        // Two header lines (HttpClient would join the values into one line): before, the first one counted.
        foreach (var pair in new[] { new[] { alphaKey, "cfk_other" }, ["cfk_other", alphaKey], [alphaKey, alphaKey] })
        {
            Assert.Equal(401, await RawGetStatusAsync(server.BaseUrl, "/api/studies/s0000000000000000000000a1", pair));
        }

        Assert.Equal(200, await RawGetStatusAsync(server.BaseUrl, "/api/studies/s0000000000000000000000a1", [alphaKey]));
    }

    /// <summary>A GET written by hand, one <c>X-Api-Key</c> line per value; returns the status code.</summary>
    private static async Task<int> RawGetStatusAsync(Uri baseUrl, string path, string[] keys)
    {
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(baseUrl.Host, baseUrl.Port);
        await using var stream = client.GetStream();
        var request = new StringBuilder($"GET {path} HTTP/1.1\r\nHost: {baseUrl.Authority}\r\nConnection: close\r\n");
        foreach (var key in keys)
        {
            request.Append(LocalApiKeys.HeaderName).Append(": ").Append(key).Append("\r\n");
        }

        await stream.WriteAsync(Encoding.ASCII.GetBytes(request.Append("\r\n").ToString()));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        var statusLine = await reader.ReadLineAsync() ?? "";
        return int.Parse(statusLine.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Report_MayNotBeFramed_AndLoadsNothingExternal()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        var keys = new LocalApiKeys(kit.Temp.Path);
        var alphaKey = await keys.AddKeyAsync(["alpha"], None);
        await using var server = await ApiHttpServer.StartAsync(kit.Api, keys);
        var http = server.Http;

        using var report = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/studies/s0000000000000000000000a1/report", alphaKey);

        Assert.Equal(HttpStatusCode.OK, report.StatusCode);
        var csp = string.Join(";", report.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("default-src 'none'", csp, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", csp, StringComparison.Ordinal);
        Assert.Contains("base-uri 'none'", csp, StringComparison.Ordinal);
        Assert.Contains("form-action 'none'", csp, StringComparison.Ordinal);
        Assert.Equal("nosniff", Assert.Single(report.Headers.GetValues("X-Content-Type-Options")));
    }

    [Fact]
    public async Task Report_EscapesEveryStoredString()
    {
        using var kit = new ApiTestKit();
        var study = await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        const string Script = "<script>alert(1)</script>";
        await kit.Studies.UpdateAsync(
            "alpha",
            study.StudyId,
            s => s! with
            {
                StudyPseudonym = "2.25.1\"><img src=x onerror=alert(1)>",
                ModelVersion = Script,
                Label = Script,
                TimingsJson = "{\"<b>stage</b>\":\"" + "<i>x</i>" + "\"}",
                TopSlicesJson = "[{\"sliceIndex\":1,\"lesionPercent\":2,\"overlayPath\":\"alpha/s0000000000000000000000a1/\\\"><script>x</script>.png\"}]",
            },
            None);

        var report = await kit.Api.GetReportAsync(ApiCaller.ForTenants("alpha"), study.StudyId, null, None);

        Assert.Equal(200, report.Status);
        var html = report.BodyText;
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<img src=x", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<b>stage", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<i>x", html, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ATenantBoundKeysLists_QueryOnlyItsTenant_NotEveryTenantsRows()
    {
        // Before, a key bound to one tenant listed studies and webhooks by reading every tenant's rows and dropping the
        // others in memory: isolation rested on that filter alone, and each page read the whole table.
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        await kit.AddCompletedStudyAsync("beta", "s0000000000000000000000b1");
        await kit.Webhooks.Manager.AddAsync("beta", "http://127.0.0.1:9/beta", null, null, None);
        var studies = new RecordingStudyStore(kit.Studies);
        var subscriptions = new RecordingSubscriptionStore(kit.Webhooks.Subscriptions);
        var w = kit.Webhooks;
        var manager = new WebhookManager(subscriptions, w.Secrets, w.Deliveries, w.Guard, w.Dispatcher, w.Options, TimeProvider.System);
        var api = new ResultsApi(studies, kit.Containers, new CovidFunctions.Pipeline.Metering.UsageQueries(kit.Usage, studies), manager, new ResultsApiOptions());
        var alpha = ApiCaller.ForTenants("alpha");

        var list = await api.ListStudiesAsync(alpha, new StudyListQuery(), None);
        var hooks = await api.ListWebhooksAsync(alpha, null, None);

        Assert.Equal(200, list.Status);
        Assert.Contains("s0000000000000000000000a1", list.BodyText, StringComparison.Ordinal);
        Assert.DoesNotContain("s0000000000000000000000b1", list.BodyText, StringComparison.Ordinal);
        Assert.Equal(["alpha"], studies.QueriedTenants);
        Assert.Equal("[]", hooks.BodyText);
        Assert.Equal(["alpha"], subscriptions.ListedTenants);

        // An all-tenant key still lists across tenants.
        await api.ListStudiesAsync(ApiCaller.AllTenants, new StudyListQuery(), None);
        Assert.Equal(["alpha", null], studies.QueriedTenants);
    }

    [Fact]
    public async Task AKeyBoundToSeveralTenants_ListsEachOfItsTenants_MergedInListOrder_NotEveryTenantsRows()
    {
        // Before, a key bound to two or more tenants listed studies and webhooks by reading every tenant's rows (the
        // whole table, on every page) and dropping the other tenants' in memory.
        using var kit = new ApiTestKit();
        var start = new DateTimeOffset(2026, 11, 1, 8, 0, 0, TimeSpan.Zero);
        var expected = new List<string>();
        for (var i = 0; i < 12; i++)
        {
            // Interleaved creation times across the tenants, some equal (ordered by id then), plus a tenant the key may not see.
            var tenant = new[] { "alpha", "beta", "gamma" }[i % 3];
            var id = $"s{i:000}{tenant[0]}0000000000000000000";
            await kit.Studies.TryCreateAsync(WebhookTestKit.CompletedStudy(tenant, id) with { CreatedAt = start.AddMinutes(i / 2) }, None);
            if (tenant != "gamma")
            {
                expected.Add(id);
            }
        }

        await kit.Webhooks.Manager.AddAsync("beta", "http://127.0.0.1:9/beta", null, null, None);
        await kit.Webhooks.Manager.AddAsync("gamma", "http://127.0.0.1:9/gamma", null, null, None);
        var studies = new RecordingStudyStore(kit.Studies);
        var subscriptions = new RecordingSubscriptionStore(kit.Webhooks.Subscriptions);
        var w = kit.Webhooks;
        var manager = new WebhookManager(subscriptions, w.Secrets, w.Deliveries, w.Guard, w.Dispatcher, w.Options, TimeProvider.System);
        var api = new ResultsApi(studies, kit.Containers, new CovidFunctions.Pipeline.Metering.UsageQueries(kit.Usage, studies), manager, new ResultsApiOptions());
        var key = ApiCaller.ForTenants("beta", "alpha");

        // Paged three at a time: every study of alpha and beta once, newest first then by id, gamma's never.
        var listed = new List<string>();
        string? continuation = null;
        do
        {
            var page = JsonNode.Parse((await api.ListStudiesAsync(key, new StudyListQuery(PageSize: 3, Continuation: continuation), None)).BodyText)!;
            listed.AddRange(page["items"]!.AsArray().Select(item => (string)item!["study"]!));
            continuation = (string?)page["continuation"];
        }
        while (continuation is not null);

        var all = JsonNode.Parse((await api.ListStudiesAsync(ApiCaller.AllTenants, new StudyListQuery(PageSize: 500), None)).BodyText)!["items"]!.AsArray().Select(item => (string)item!["study"]!);
        Assert.Equal(all.Where(expected.Contains), listed);
        Assert.Equal(expected.Count, listed.Count);
        Assert.DoesNotContain(null, studies.QueriedTenants.SkipLast(1));
        Assert.Equal(["alpha", "beta"], studies.QueriedTenants.Distinct().Where(t => t is not null));

        var hooks = JsonNode.Parse((await api.ListWebhooksAsync(key, null, None)).BodyText)!.AsArray();
        Assert.Equal(["beta"], hooks.Select(h => (string)h!["tenant"]!));
        Assert.Equal(["alpha", "beta"], subscriptions.ListedTenants);
    }

    /// <summary>Records the tenant of every query and passes everything through.</summary>
    private sealed class RecordingStudyStore(CovidFunctions.Pipeline.Storage.IStudyStore inner) : CovidFunctions.Pipeline.Storage.IStudyStore
    {
        public List<string?> QueriedTenants { get; } = [];

        public Task<CovidFunctions.Pipeline.Storage.StudyRecord?> GetAsync(string tenant, string studyId, CancellationToken cancellationToken) => inner.GetAsync(tenant, studyId, cancellationToken);

        public Task<bool> TryCreateAsync(CovidFunctions.Pipeline.Storage.StudyRecord record, CancellationToken cancellationToken) => inner.TryCreateAsync(record, cancellationToken);

        public Task<CovidFunctions.Pipeline.Storage.StudyRecord> UpdateAsync(string tenant, string studyId, Func<CovidFunctions.Pipeline.Storage.StudyRecord?, CovidFunctions.Pipeline.Storage.StudyRecord> update, CancellationToken cancellationToken) =>
            inner.UpdateAsync(tenant, studyId, update, cancellationToken);

        public IAsyncEnumerable<CovidFunctions.Pipeline.Storage.StudyRecord> QueryAsync(string? tenant, string? status, DateTimeOffset? from, DateTimeOffset? to, CancellationToken cancellationToken)
        {
            QueriedTenants.Add(tenant);
            return inner.QueryAsync(tenant, status, from, to, cancellationToken);
        }
    }

    /// <summary>Records the tenant of every list and passes everything through.</summary>
    private sealed class RecordingSubscriptionStore(IWebhookSubscriptionStore inner) : IWebhookSubscriptionStore
    {
        public List<string?> ListedTenants { get; } = [];

        public Task CreateAsync(WebhookSubscription subscription, CancellationToken cancellationToken) => inner.CreateAsync(subscription, cancellationToken);

        public Task<bool> TryCreateWithinLimitAsync(WebhookSubscription subscription, int maxPerTenant, CancellationToken cancellationToken) =>
            inner.TryCreateWithinLimitAsync(subscription, maxPerTenant, cancellationToken);

        public Task<WebhookSubscription?> GetAsync(string tenant, string id, CancellationToken cancellationToken) => inner.GetAsync(tenant, id, cancellationToken);

        public Task<IReadOnlyList<WebhookSubscription>> ListAsync(string? tenant, CancellationToken cancellationToken)
        {
            ListedTenants.Add(tenant);
            return inner.ListAsync(tenant, cancellationToken);
        }

        public Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken) => inner.DeleteAsync(tenant, id, cancellationToken);

        public Task<WebhookSubscription?> TryReplaceAsync(WebhookSubscription subscription, CancellationToken cancellationToken) => inner.TryReplaceAsync(subscription, cancellationToken);
    }

    /// <summary>An <see cref="IApiKeyStore"/> in memory (the admin handlers need nothing more).</summary>
    private sealed class InMemoryKeyStore : IApiKeyStore
    {
        public List<StoredApiKey> Keys { get; } = [];

        public Task AddAsync(StoredApiKey key, CancellationToken cancellationToken)
        {
            Keys.Add(key);
            return Task.CompletedTask;
        }

        public Task<StoredApiKey?> FindByHashAsync(string hash, CancellationToken cancellationToken) =>
            Task.FromResult(Keys.FirstOrDefault(k => k.Hash == hash));

        public Task<IReadOnlyList<StoredApiKey>> ListAsync(CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<StoredApiKey>>(Keys);

        public Task<bool> DeleteByIdAsync(string id, CancellationToken cancellationToken) =>
            Task.FromResult(Keys.RemoveAll(k => k.Id == id) > 0);
    }
}
