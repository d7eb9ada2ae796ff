namespace CovidFunctions.Imaging.Volumes;

/// <summary>A 3-vector in millimetres or a direction, in the patient frame named by the owner (LPS unless said otherwise).</summary>
public readonly record struct Vec3(double X, double Y, double Z)
{
    public static Vec3 Zero { get; } = new(0, 0, 0);

    public double Length => Math.Sqrt(Dot(this));

    public static Vec3 operator +(Vec3 a, Vec3 b) => new(a.X + b.X, a.Y + b.Y, a.Z + b.Z);

    public static Vec3 operator -(Vec3 a, Vec3 b) => new(a.X - b.X, a.Y - b.Y, a.Z - b.Z);

    public static Vec3 operator *(Vec3 a, double s) => new(a.X * s, a.Y * s, a.Z * s);

    public static Vec3 operator -(Vec3 a) => new(-a.X, -a.Y, -a.Z);

    public double this[int axis] => axis switch
    {
        0 => X,
        1 => Y,
        2 => Z,
        _ => throw new ArgumentOutOfRangeException(nameof(axis)),
    };

    public double Dot(Vec3 other) => (X * other.X) + (Y * other.Y) + (Z * other.Z);

    public Vec3 Cross(Vec3 o) => new((Y * o.Z) - (Z * o.Y), (Z * o.X) - (X * o.Z), (X * o.Y) - (Y * o.X));

    public Vec3 Normalized()
    {
        var length = Length;
        return length > 0 ? this * (1 / length) : this;
    }

    /// <summary>The angle to another vector in degrees.</summary>
    public double AngleTo(Vec3 other)
    {
        var d = Normalized().Dot(other.Normalized());
        return Math.Acos(Math.Clamp(d, -1, 1)) * 180 / Math.PI;
    }

    public static Vec3 Unit(int axis) => axis switch
    {
        0 => new Vec3(1, 0, 0),
        1 => new Vec3(0, 1, 0),
        2 => new Vec3(0, 0, 1),
        _ => throw new ArgumentOutOfRangeException(nameof(axis)),
    };

    public override string ToString() => FormattableString.Invariant($"({X:0.###}, {Y:0.###}, {Z:0.###})");
}
