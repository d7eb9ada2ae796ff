using CovidFunctions.FunctionApp;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.Hosting;

var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
builder.Services.AddCovidFunctionsApp(builder.Configuration);
using var host = builder.Build();
await host.RunAsync().ConfigureAwait(false);
