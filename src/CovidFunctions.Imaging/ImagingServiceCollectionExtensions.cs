using CovidFunctions.Imaging.Series;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Imaging;

/// <summary>
/// Registers the imaging library in a host built on dependency injection. The hosts that ingest (the Function app,
/// <c>covidfn up</c>) do not call it: they load the <c>Imaging</c> section with <c>IngestSettings.LoadImaging</c>
/// (CovidFunctions.Pipeline.Azure), which runs the same validator and also refuses keys no option reads.
/// </summary>
public static class ImagingServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="ImagingOptions"/> from <paramref name="configuration"/> (pass the <c>Imaging</c> section, or the
    /// root: a root with an <c>Imaging</c> child is bound from that child), validates them when the host starts, and
    /// registers <see cref="SeriesAssemblyOptions"/> and <see cref="SeriesAssemblyService"/>.
    /// </summary>
    public static IServiceCollection AddCovidFunctionsImaging(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration.GetSection(ImagingOptions.SectionName);
        var source = section.Exists() ? section : configuration;
        return services.AddCovidFunctionsImaging(builder => builder.Bind(source));
    }

    /// <summary>As <see cref="AddCovidFunctionsImaging(IServiceCollection, IConfiguration)"/>, set in code.</summary>
    public static IServiceCollection AddCovidFunctionsImaging(this IServiceCollection services, Action<ImagingOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        return services.AddCovidFunctionsImaging(builder => builder.Configure(configure));
    }

    private static IServiceCollection AddCovidFunctionsImaging(this IServiceCollection services, Action<OptionsBuilder<ImagingOptions>> configure)
    {
        configure(services.AddOptions<ImagingOptions>().ValidateOnStart());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ImagingOptions>, ImagingOptionsValidator>());
        services.TryAddSingleton(sp => sp.GetRequiredService<IOptions<ImagingOptions>>().Value.ToSeriesAssemblyOptions());
        services.TryAddSingleton<SeriesAssemblyService>();
        return services;
    }
}

/// <summary>
/// <see cref="SeriesAssembler"/> with the configured options and the host's logger, for dependency injection
/// (the static API stays for callers without a container).
/// </summary>
public sealed class SeriesAssemblyService(SeriesAssemblyOptions options, ILogger<SeriesAssemblyService> logger)
{
    public SeriesAssemblyOptions Options { get; } = options;

    /// <summary>See <see cref="SeriesAssembler.Assemble(string, SeriesAssemblyOptions?, ILogger?)"/>.</summary>
    public AssembledSeries Assemble(string path) => SeriesAssembler.Assemble(path, Options, logger);
}
