using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>One request a <see cref="RecordingWebhookReceiver"/> got: its body and the signature and delivery headers.</summary>
internal sealed record ReceivedWebhook(string Body, string? Signature, string? DeliveryId);

/// <summary>An HTTP receiver on 127.0.0.1 (a free port, path <c>/hook/</c>) that records every request and answers 204.</summary>
internal sealed class RecordingWebhookReceiver : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _loop;

    public RecordingWebhookReceiver()
    {
        Url = $"http://127.0.0.1:{TestNetwork.FreePort()}/hook/";
        _listener.Prefixes.Add(Url);
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public string Url { get; }

    public ConcurrentQueue<ReceivedWebhook> Requests { get; } = new();

    /// <summary>A loopback TCP port free at the time of the call.</summary>
    public void Dispose()
    {
        _listener.Close();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // The listener was closed under a pending accept.
        }
    }

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
            var body = await reader.ReadToEndAsync();
            Requests.Enqueue(new ReceivedWebhook(body, context.Request.Headers["X-CovidFunctions-Signature"], context.Request.Headers["X-CovidFunctions-Delivery"]));
            context.Response.StatusCode = 204;
            context.Response.Close();
        }
    }
}
