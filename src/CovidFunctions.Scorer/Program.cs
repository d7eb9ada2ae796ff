using CovidFunctions.Scorer;

var app = ScorerApp.Build(args);
await app.RunAsync().ConfigureAwait(false);
