using System.CommandLine;
using System.Globalization;
using CovidFunctions.Imaging.Phantoms;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn phantom OUT [--slices N] [--matrix M] [--spacing MM] [--normal] [--seed S]</c>: writes the synthetic chest
/// CT (<see cref="CtPhantom"/>) as a folder of DICOM instances, or as one zip when OUT ends in <c>.zip</c>. It carries
/// planted identifying values (<see cref="PlantedPhi"/>) so de-identification is visible. Exit 0; 2 on bad options.
/// </summary>
public static class PhantomCommand
{
    public static Command Create()
    {
        var output = new Argument<string>("out") { Description = "Output folder, or a .zip file." };
        var slices = new Option<int>("--slices") { Description = "Axial slices.", DefaultValueFactory = _ => 64 };
        var matrix = new Option<int>("--matrix") { Description = "Rows and columns per slice.", DefaultValueFactory = _ => 512 };
        var spacing = new Option<double>("--spacing") { Description = "Slice spacing and thickness in mm.", DefaultValueFactory = _ => 2.5 };
        var normal = new Option<bool>("--normal") { Description = "Clear lungs (no ground-glass opacities)." };
        var seed = new Option<int>("--seed") { Description = "Anatomy, lesion and noise seed.", DefaultValueFactory = _ => 1 };
        var command = new Command("phantom", "Write a synthetic chest CT series (DICOM, HU-realistic, ground-glass opacities, planted PHI).");
        command.Arguments.Add(output);
        command.Options.Add(slices);
        command.Options.Add(matrix);
        command.Options.Add(spacing);
        command.Options.Add(normal);
        command.Options.Add(seed);
        command.SetAction(parseResult => Run(
            parseResult.GetValue(output) ?? string.Empty,
            new CtPhantomOptions
            {
                Slices = parseResult.GetValue(slices),
                Matrix = parseResult.GetValue(matrix),
                SliceSpacing = parseResult.GetValue(spacing),
                Finding = parseResult.GetValue(normal) ? PhantomFinding.None : PhantomFinding.GroundGlass,
                Seed = parseResult.GetValue(seed),
            },
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error));
        return command;
    }

    public static int Run(string output, CtPhantomOptions options, TextWriter stdout, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(options);
        CtPhantom phantom;
        try
        {
            phantom = new CtPhantom(options);
        }
        catch (ArgumentOutOfRangeException ex)
        {
            error.WriteLine("phantom: " + ex.Message);
            return ExitCodes.BadInput;
        }

        if (output.EndsWith(".zip", StringComparison.OrdinalIgnoreCase))
        {
            phantom.WriteZip(output);
        }
        else
        {
            phantom.WriteFolder(output);
        }

        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"phantom: {options.Slices} slices {options.Matrix}x{options.Matrix}, {options.SliceSpacing} mm, {(options.Finding == PhantomFinding.None ? "clear lungs" : $"{phantom.LesionCount} ground-glass opacities")} -> {output}"));
        return ExitCodes.Success;
    }
}
