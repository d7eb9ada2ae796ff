using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>What the receiver answers to one request: a status, an optional Retry-After, an optional stall before answering.</summary>
public sealed record ReceiverReply(int Status, string? RetryAfter = null, TimeSpan? Stall = null, string? Location = null);

/// <summary>A request the receiver got.</summary>
public sealed record ReceivedWebhook(int Index, string Path, IReadOnlyDictionary<string, string> Headers, string Body, DateTimeOffset At);

/// <summary>
/// A real HTTP receiver: Kestrel on 127.0.0.1 with a random port. Each request is recorded and answered by
/// <c>reply(index)</c> (0-based request index).
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<ReceivedWebhook> _received = new();
    private int _count;

    private WebhookReceiver(WebApplication app) => _app = app;

    public Uri Url { get; private set; } = null!;

    public IReadOnlyList<ReceivedWebhook> Received => [.. _received.OrderBy(r => r.Index)];

    public static async Task<WebhookReceiver> StartAsync(Func<int, ReceiverReply> reply)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.Run(async context =>
        {
            var index = Interlocked.Increment(ref receiver._count) - 1;
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync(context.RequestAborted);
            var headers = context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
            receiver._received.Enqueue(new ReceivedWebhook(index, context.Request.Path, headers, body, DateTimeOffset.UtcNow));
            var answer = reply(index);
            if (answer.Stall is { } stall)
            {
                try
                {
                    await Task.Delay(stall, context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            context.Response.StatusCode = answer.Status;
            if (answer.RetryAfter is not null)
            {
                context.Response.Headers.RetryAfter = answer.RetryAfter;
            }

            if (answer.Location is not null)
            {
                context.Response.Headers.Location = answer.Location;
            }
        });
        await app.StartAsync();
        var address = app.Services.GetService(typeof(IServer)) is IServer server
            ? server.Features.Get<IServerAddressesFeature>()!.Addresses.First()
            : throw new InvalidOperationException("no server");
        receiver.Url = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal) + "/hook");
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
