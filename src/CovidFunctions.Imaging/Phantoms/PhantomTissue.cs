namespace CovidFunctions.Imaging.Phantoms;

/// <summary>The tissue a phantom pixel was drawn as (the label map returned next to the HU values).</summary>
public enum PhantomTissue : byte
{
    Air = 0,
    Table = 1,
    Skin = 2,
    Fat = 3,
    SoftTissue = 4,
    Bone = 5,
    Lung = 6,
    Vessel = 7,
    GroundGlass = 8,
    Blood = 9,
}

/// <summary>The nominal HU of each tissue before noise (the phantom's design values).</summary>
public static class PhantomHu
{
    public const short Air = -1000;
    public const short Skin = 20;
    public const short Fat = -100;
    public const short SoftTissue = 40;
    public const short Blood = 45;
    public const short CorticalBone = 700;
    public const short CancellousBone = 250;
    public const short Lung = -850;
    public const short Vessel = 40;
    public const short TableShell = 300;
    public const short TableFoam = -900;

    /// <summary>The densest ground-glass value (lesion core); lesion edges fade towards <see cref="Lung"/>.</summary>
    public const short GroundGlassCore = -350;

    /// <summary>Ground-glass voxels lie in [-600, -300] HU before noise.</summary>
    public const short GroundGlassMin = -600;

    public const short GroundGlassMax = -300;
}
