using CovidFunctions.Scorer;

var app = ScorerApp.Build(args);
return await ScorerApp.RunAsync(app).ConfigureAwait(false);
