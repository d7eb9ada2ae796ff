using System.Collections.Concurrent;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.DurableTask.Client;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Pipeline.Tests.Orchestration;

/// <summary>What the fake scorer does with one chunk request.</summary>
public enum FakeScorerAction
{
    Answer,
    AnswerTwice,
    Drop,
    Error,

    /// <summary>Raises a result whose document was never written (the aggregate activity cannot read it).</summary>
    AnswerWithoutDocument,

    /// <summary>
    /// Answers with a real document, then raises the result twice claiming 1000 times the chunk's slices (a faulty or
    /// compromised scorer trying to raise the bill), the second time as a later attempt.
    /// </summary>
    AnswerInflatedTwice,
}

/// <summary>
/// The study orchestrator on the in-memory Durable host, with file-system blobs, in-memory tables and a fake scorer:
/// an <see cref="IMessageSender"/> that answers chunk requests by writing a chunk result document and raising the
/// chunk-result event through the host's client (what the scorer and the relay do together).
/// </summary>
public sealed class OrchestrationHarness : IAsyncDisposable
{
    public const string Tenant = "lab-1";
    public const int Rows = 48;
    public const int Columns = 64;
    public static readonly string[] Classes = ["covid", "cap", "normal"];

    private readonly TempDirectory _temp = TestData.CreateTempDirectory();
    private DurableTaskTestHost? _host;

    /// <summary>
    /// How long the fake scorer scores a chunk before it answers, and the scoring seconds it reports by default: a real
    /// scorer measures its own scoring between receiving the chunk and answering, and the orchestrator bills at most
    /// that window (StudyOrchestrator.BilledScoringSeconds), so the fake reports no more than it spent.
    /// </summary>
    public const double ScoringSeconds = 0.5;

    private OrchestrationHarness(Func<ChunkRequest, FakeScorerAction> behaviour, Func<ChunkRequest, double>? reportedSeconds)
    {
        Containers = new FileSystemBlobContainers(_temp.Path);
        Scorer = new FakeScorer(this, behaviour, reportedSeconds ?? (_ => ScoringSeconds));
    }

    public FileSystemBlobContainers Containers { get; }

    public InMemoryStudyStore Studies { get; } = new();

    public InMemoryUsageStore Usage { get; } = new();

    public RecordingNotifier Notifier { get; } = new();

    public FakeScorer Scorer { get; }

    public DurableTaskClient Client => _host!.Client;

    /// <param name="wrapUsage">Puts a store in front of <see cref="Usage"/> (a failing one, to test the settled steps).</param>
    /// <param name="wrapNotifier">Puts a notifier in front of <see cref="Notifier"/>.</param>
    /// <param name="reportedSeconds">The scoring seconds the fake scorer reports for a chunk answered with a document
    /// (<see cref="ScoringSeconds"/> unless given: a faulty or compromised scorer's claim).</param>
    public static async Task<OrchestrationHarness> StartAsync(
        Func<ChunkRequest, FakeScorerAction> behaviour,
        int montageSlices = 4,
        Func<IUsageStore, IUsageStore>? wrapUsage = null,
        Func<IStudyNotifier, IStudyNotifier>? wrapNotifier = null,
        Func<ChunkRequest, double>? reportedSeconds = null)
    {
        var harness = new OrchestrationHarness(behaviour, reportedSeconds);
        harness._host = await DurableTaskTestHost.StartAsync(
            registry => registry.AddStudyOrchestration(),
            new DurableTaskTestHostOptions
            {
                // Its default is a random port in 30000-40000, which at times was in use ("address already in use"):
                // 2 of 6 runs of Pipeline.Tests here failed so.
                Port = TestNetwork.FreePort(),
                ConfigureServices = services =>
                {
                    services.AddSingleton<IBlobContainers>(harness.Containers);
                    services.AddSingleton<IStudyStore>(harness.Studies);
                    services.AddSingleton(wrapUsage is null ? harness.Usage : wrapUsage(harness.Usage));
                    services.AddSingleton<IMessageSender>(harness.Scorer);
                    services.AddSingleton(wrapNotifier is null ? harness.Notifier : wrapNotifier(harness.Notifier));
                    services.AddSingleton(Options.Create(new PipelineOptions { MontageSlices = montageSlices }));
                    services.AddSingleton(UploadReadKey.From(DeidKey.Generate()));
                },
            });
        return harness;
    }

    /// <summary>Writes synthetic HU tiles (a body with two lungs) and creates the study row as ingest would.</summary>
    public async Task<StudyOrchestrationInput> CreateStudyAsync(string studyId, int sliceCount, int chunkSize, int maxAttempts = 3, TimeSpan? chunkTimeout = null)
    {
        var prefix = $"{Tenant}/{studyId}/tiles";
        var writer = new TileSeriesWriter(Containers.Get(PipelineNames.SlicesContainer), prefix, new TileManifest { Rows = Rows, Columns = Columns });
        for (var s = 0; s < sliceCount; s++)
        {
            await writer.AddSliceAsync(SyntheticHu(), CancellationToken.None);
        }

        await writer.CompleteAsync(CancellationToken.None);
        await Studies.TryCreateAsync(new StudyRecord { Tenant = Tenant, StudyId = studyId, CreatedAt = DateTimeOffset.UtcNow, TimingsJson = "{\"ingest\":1.5}" }, CancellationToken.None);
        return new StudyOrchestrationInput(Tenant, studyId, prefix, sliceCount, chunkSize, maxAttempts, chunkTimeout ?? TimeSpan.FromSeconds(30));
    }

    /// <summary>Starts the orchestration through the production client adapter and waits for it to finish.</summary>
    public async Task<StudyOutcome> RunAsync(StudyOrchestrationInput input)
    {
        Assert.True(await new DurableStudyOrchestrationClient(Client).StartIfAbsentAsync(input, CancellationToken.None));
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var metadata = await Client.WaitForInstanceCompletionAsync(input.InstanceId, getInputsAndOutputs: true, timeout.Token);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, metadata.RuntimeStatus);
        return metadata.ReadOutputAs<StudyOutcome>()!;
    }

    /// <summary>The fake scorer's per-slice values: slice s has 10·(s+1) lesion pixels of 1000 lung pixels.</summary>
    public static SliceScore ScoreOf(ChunkRequest request, int slice)
    {
        var covid = 0.5f + (0.05f * (slice % 3));
        float[] probabilities = [covid, (1 - covid) / 2, (1 - covid) / 2];
        var lesion = 10L * (slice + 1);
        return new SliceScore(slice, 0.01f * (slice + 1), 0.001f * (slice + 1), lesion, 1000, probabilities,
            ScoringHandler.OverlayPath(request.Tenant, request.StudyId, slice), ScoringHandler.MaskPath(request.Tenant, request.StudyId, slice));
    }

    public async ValueTask DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        _temp.Dispose();
    }

    private static short[] SyntheticHu()
    {
        var hu = new short[Rows * Columns];
        for (var y = 0; y < Rows; y++)
        {
            for (var x = 0; x < Columns; x++)
            {
                var body = Math.Pow((x - 32) / 28.0, 2) + Math.Pow((y - 24) / 20.0, 2) <= 1;
                var lung = Math.Pow((Math.Abs(x - 32) - 13) / 9.0, 2) + Math.Pow((y - 24) / 13.0, 2) <= 1;
                hu[(y * Columns) + x] = (short)(!body ? -1000 : lung ? -820 : 30);
            }
        }

        return hu;
    }

    public sealed class FakeScorer(OrchestrationHarness harness, Func<ChunkRequest, FakeScorerAction> behaviour, Func<ChunkRequest, double> reportedSeconds) : IMessageSender
    {
        public ConcurrentQueue<ChunkRequest> Requests { get; } = new();

        public async Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken)
        {
            Assert.Equal(PipelineNames.SliceRequestsQueue, queue);
            var request = PipelineJson.Deserialize<ChunkRequest>(message.Body);
            Assert.Equal(request.MessageId, message.MessageId);
            Requests.Enqueue(request);
            var action = behaviour(request);
            if (action == FakeScorerAction.Drop)
            {
                return;
            }

            // Scores for the time it reports (see ScoringSeconds), inside the dispatch as the real scorer's answer
            // comes after the request was sent.
            await Task.Delay(TimeSpan.FromSeconds(ScoringSeconds), cancellationToken);
            ChunkResult result;
            if (action == FakeScorerAction.Error)
            {
                result = new ChunkResult(request.Tenant, request.StudyId, request.OrchestrationId, request.ChunkIndex, request.Attempt, request.SliceCount, null, 0.1, "CPU", "tile chunk hash does not match the manifest");
            }
            else if (action == FakeScorerAction.AnswerWithoutDocument)
            {
                var missing = ScoringHandler.ChunkDocumentPath(request.Tenant, request.StudyId, request.ChunkIndex);
                result = new ChunkResult(request.Tenant, request.StudyId, request.OrchestrationId, request.ChunkIndex, request.Attempt, request.SliceCount, missing, 0.5, "CPU", null);
            }
            else
            {
                var slices = Enumerable.Range(request.FirstSlice, request.SliceCount).Select(s => ScoreOf(request, s)).ToList();
                var results = harness.Containers.Get(PipelineNames.ResultsContainer);
                foreach (var s in slices)
                {
                    var mask = new byte[Rows * Columns];
                    for (var i = 0; i < s.LesionPixels; i++)
                    {
                        mask[(20 * Columns) + 12 + i] = 255;
                    }

                    await results.WriteAsync(s.MaskPath!, new MemoryStream(MaskPng.Encode(mask, Columns, Rows)), cancellationToken);
                }

                var path = ScoringHandler.ChunkDocumentPath(request.Tenant, request.StudyId, request.ChunkIndex);
                var document = new ChunkResultDocument(request.StudyId, request.ChunkIndex, "fake@000000000000", Classes, slices);
                await results.WriteAsync(path, new MemoryStream(System.Text.Encoding.UTF8.GetBytes(PipelineJson.Serialize(document))), cancellationToken);
                result = new ChunkResult(request.Tenant, request.StudyId, request.OrchestrationId, request.ChunkIndex, request.Attempt, request.SliceCount, path, reportedSeconds(request), "CPU", null);
            }

            if (action == FakeScorerAction.AnswerInflatedTwice)
            {
                result = result with { SliceCount = request.SliceCount * 1000 };
            }

            var relay = new DurableStudyOrchestrationClient(harness.Client);
            await relay.RaiseChunkResultAsync(result, cancellationToken);
            if (action == FakeScorerAction.AnswerTwice)
            {
                await relay.RaiseChunkResultAsync(result, cancellationToken);
            }
            else if (action == FakeScorerAction.AnswerInflatedTwice)
            {
                await relay.RaiseChunkResultAsync(result with { Attempt = request.Attempt + 1 }, cancellationToken);
            }
        }
    }

    public sealed class RecordingNotifier : IStudyNotifier
    {
        public ConcurrentQueue<(string Tenant, string StudyId, string EventType)> Events { get; } = new();

        public Task NotifyAsync(string tenant, string studyId, string eventType, CancellationToken cancellationToken)
        {
            Events.Enqueue((tenant, studyId, eventType));
            return Task.CompletedTask;
        }
    }
}
