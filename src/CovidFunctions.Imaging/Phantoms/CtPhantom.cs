using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;
using CovidFunctions.Dicom;

namespace CovidFunctions.Imaging.Phantoms;

/// <summary>
/// A synthetic chest CT series: a body ellipse of soft tissue inside a fat layer and skin, two lungs of aerated
/// parenchyma (-850 HU) with vessels, heart and aorta, trachea, spine, ribs and sternum (bone ~700 HU), the scanner
/// table, and optionally peripheral bilateral ground-glass opacities (-600..-300 HU). It is written as CT Image Storage
/// instances (explicit VR little endian, signed 16-bit, RescaleIntercept -1024) with realistic geometry headers and
/// planted identifying values (<see cref="PlantedPhi"/>) so that de-identification has something to remove.
/// It exists so that the pipeline can be demonstrated and benchmarked on any machine without patient data; it is not
/// a validated physical phantom and says nothing about model accuracy.
/// </summary>
public sealed class CtPhantom
{
    /// <summary>The rescale intercept of the stored values (stored = HU + 1024).</summary>
    public const int RescaleIntercept = -1024;

    private const string CtImageStorage = "1.2.840.10008.5.1.4.1.1.2";

    // The craniocaudal range of each lung as a fraction of the scanned length (0 = top slice, the apices).
    private const double LungTop = 0.03;
    private const double RightLungBottom = 0.86; // the liver lifts the right hemidiaphragm
    private const double LeftLungBottom = 0.92;

    private readonly Vessel[] _vessels;
    private readonly Lesion[] _lesions;
    private readonly string _uidSeed;

    public CtPhantom(CtPhantomOptions? options = null)
    {
        Options = options ?? new CtPhantomOptions();
        Options.Validate();
        _uidSeed = Options.UidSeed ?? "seed-" + Options.Seed.ToString(CultureInfo.InvariantCulture);
        var random = new Random(Options.Seed);
        _vessels = CreateVessels(random);
        _lesions = Options.Finding == PhantomFinding.GroundGlass ? CreateLesions(random, Options.LesionCount) : [];
        StudyInstanceUid = Uid("study", 0);
        SeriesInstanceUid = Uid("series", 0);
        FrameOfReferenceUid = Uid("frame", 0);
    }

    public CtPhantomOptions Options { get; }

    public string StudyInstanceUid { get; }

    public string SeriesInstanceUid { get; }

    public string FrameOfReferenceUid { get; }

    /// <summary>The ground-glass opacities drawn (empty without findings).</summary>
    public int LesionCount => _lesions.Length;

    /// <summary>The SOP Instance UID of slice <paramref name="index"/> (0 = most superior).</summary>
    public string SopInstanceUid(int index) => Uid("sop", index + 1);

    /// <summary>The patient z (mm, LPS: +z is superior) of slice <paramref name="index"/>; slice 0 is the top.</summary>
    public double SliceZ(int index) => -index * Options.SliceSpacing;

    /// <summary>Renders slice <paramref name="index"/> as HU; <paramref name="tissue"/> (optional) receives each pixel's label.</summary>
    public void RenderSlice(int index, Span<short> hu, Span<PhantomTissue> tissue = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Options.Slices);
        var n = Options.Matrix;
        if (hu.Length < n * n)
        {
            throw new ArgumentException($"the HU buffer needs {n * n} values", nameof(hu));
        }

        var withLabels = !tissue.IsEmpty;
        if (withLabels && tissue.Length < n * n)
        {
            throw new ArgumentException($"the tissue buffer needs {n * n} values", nameof(tissue));
        }

        var t = (index + 0.5) / Options.Slices;
        var z = SliceZ(index);
        var anatomy = new SliceAnatomy(t, z);
        var ps = Options.PixelSpacing;
        var half = n / 2.0;
        for (var row = 0; row < n; row++)
        {
            var y = (row + 0.5 - half) * ps;
            for (var col = 0; col < n; col++)
            {
                var x = (col + 0.5 - half) * ps;
                var (value, label) = anatomy.Base(x, y);
                hu[(row * n) + col] = value;
                if (withLabels)
                {
                    tissue[(row * n) + col] = label;
                }
            }
        }

        Span<PhantomTissue> labels = withLabels ? tissue : new PhantomTissue[n * n];
        if (!withLabels)
        {
            // Lesions and vessels are drawn only inside lung, so the label map is needed even when the caller wants none.
            for (var row = 0; row < n; row++)
            {
                var y = (row + 0.5 - half) * ps;
                for (var col = 0; col < n; col++)
                {
                    labels[(row * n) + col] = anatomy.Base((col + 0.5 - half) * ps, y).Tissue;
                }
            }
        }

        foreach (var lesion in _lesions)
        {
            DrawLesion(lesion, z, hu, labels);
        }

        foreach (var vessel in _vessels)
        {
            DrawVessel(vessel, anatomy, z, hu, labels);
        }

        if (Options.NoiseHu > 0)
        {
            AddNoise(index, hu[..(n * n)]);
        }
    }

    /// <summary>Slice <paramref name="index"/> as a CT Image Storage instance (explicit VR little endian).</summary>
    public DicomFile CreateInstance(int index)
    {
        var n = Options.Matrix;
        var hu = new short[n * n];
        RenderSlice(index, hu);
        var pixels = new byte[n * n * 2];
        for (var i = 0; i < hu.Length; i++)
        {
            BinaryPrimitives.WriteInt16LittleEndian(pixels.AsSpan(i * 2), (short)(hu[i] - RescaleIntercept));
        }

        var ds = new DicomDataset();
        ds.SetString(DicomTags.SpecificCharacterSet, DicomVR.CS, "ISO_IR 100");
        ds.SetValues(DicomTags.ImageType, DicomVR.CS, "ORIGINAL", "PRIMARY", "AXIAL");
        ds.SetString(DicomTags.SOPClassUID, DicomVR.UI, CtImageStorage);
        ds.SetString(DicomTags.SOPInstanceUID, DicomVR.UI, SopInstanceUid(index));
        ds.SetString(DicomTags.StudyDate, DicomVR.DA, "20200315");
        ds.SetString(DicomTags.SeriesDate, DicomVR.DA, "20200315");
        ds.SetString(DicomTags.ContentDate, DicomVR.DA, "20200315");
        ds.SetString(DicomTags.StudyTime, DicomVR.TM, "101500");
        ds.SetString(DicomTags.SeriesTime, DicomVR.TM, "101812");
        ds.SetString(DicomTags.ContentTime, DicomVR.TM, "101812");
        ds.SetString(DicomTags.AccessionNumber, DicomVR.SH, PlantedPhi.AccessionNumber);
        ds.SetString(DicomTags.Modality, DicomVR.CS, "CT");
        ds.SetString(DicomTags.Manufacturer, DicomVR.LO, "CovidFunctions");
        ds.SetString(DicomTags.InstitutionName, DicomVR.LO, PlantedPhi.InstitutionName);
        ds.SetString(DicomTags.InstitutionAddress, DicomVR.ST, PlantedPhi.InstitutionAddress);
        ds.SetString(DicomTags.ReferringPhysicianName, DicomVR.PN, PlantedPhi.ReferringPhysicianName);
        ds.SetString(DicomTags.StationName, DicomVR.SH, PlantedPhi.StationName);
        ds.SetString(DicomTags.StudyDescription, DicomVR.LO, "CT CHEST WITHOUT CONTRAST");
        ds.SetString(DicomTags.SeriesDescription, DicomVR.LO, "CHEST 1.0 B30f SYNTHETIC");
        ds.SetString(DicomTags.OperatorsName, DicomVR.PN, PlantedPhi.OperatorsName);
        ds.SetString(DicomTags.ManufacturerModelName, DicomVR.LO, "synthetic chest");
        ds.SetString(DicomTags.PatientName, DicomVR.PN, Options.PatientName);
        ds.SetString(DicomTags.PatientID, DicomVR.LO, PlantedPhi.PatientId);
        ds.SetString(DicomTags.PatientBirthDate, DicomVR.DA, PlantedPhi.PatientBirthDate);
        ds.SetString(DicomTags.PatientSex, DicomVR.CS, "F");
        ds.SetString(DicomTags.PatientAge, DicomVR.AS, "062Y");
        ds.SetString(DicomTags.BodyPartExamined, DicomVR.CS, "CHEST");
        ds.SetValues(DicomTags.SliceThickness, DicomVR.DS, Options.SliceSpacing);
        ds.SetValues(DicomTags.KVP, DicomVR.DS, 120.0);
        ds.SetValues(DicomTags.SpacingBetweenSlices, DicomVR.DS, Options.SliceSpacing);
        ds.SetString(DicomTags.ConvolutionKernel, DicomVR.SH, "B30f");
        ds.SetString(DicomTags.PatientPosition, DicomVR.CS, "HFS");
        ds.SetString(DicomTags.StudyInstanceUID, DicomVR.UI, StudyInstanceUid);
        ds.SetString(DicomTags.SeriesInstanceUID, DicomVR.UI, SeriesInstanceUid);
        ds.SetString(DicomTags.StudyID, DicomVR.SH, PlantedPhi.StudyId);
        ds.SetValues(DicomTags.SeriesNumber, DicomVR.IS, 2);
        ds.SetValues(DicomTags.AcquisitionNumber, DicomVR.IS, 1);
        ds.SetValues(DicomTags.InstanceNumber, DicomVR.IS, index + 1);
        var first = (0.5 - (n / 2.0)) * Options.PixelSpacing;
        ds.SetValues(DicomTags.ImagePositionPatient, DicomVR.DS, first, first, SliceZ(index));
        ds.SetValues(DicomTags.ImageOrientationPatient, DicomVR.DS, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0);
        ds.SetString(DicomTags.FrameOfReferenceUID, DicomVR.UI, FrameOfReferenceUid);
        ds.SetString(DicomTags.PositionReferenceIndicator, DicomVR.LO, string.Empty);
        ds.SetValues(DicomTags.SliceLocation, DicomVR.DS, SliceZ(index));
        ds.SetString(DicomTags.ImageComments, DicomVR.LT, PlantedPhi.ImageComments);
        ds.SetValues(DicomTags.SamplesPerPixel, DicomVR.US, 1);
        ds.SetString(DicomTags.PhotometricInterpretation, DicomVR.CS, "MONOCHROME2");
        ds.SetValues(DicomTags.Rows, DicomVR.US, n);
        ds.SetValues(DicomTags.Columns, DicomVR.US, n);
        ds.SetValues(DicomTags.PixelSpacing, DicomVR.DS, Options.PixelSpacing, Options.PixelSpacing);
        ds.SetValues(DicomTags.BitsAllocated, DicomVR.US, 16);
        ds.SetValues(DicomTags.BitsStored, DicomVR.US, 16);
        ds.SetValues(DicomTags.HighBit, DicomVR.US, 15);
        ds.SetValues(DicomTags.PixelRepresentation, DicomVR.US, 1);
        ds.SetString(DicomTags.BurnedInAnnotation, DicomVR.CS, "NO");
        ds.SetValues(DicomTags.WindowCenter, DicomVR.DS, -600.0);
        ds.SetValues(DicomTags.WindowWidth, DicomVR.DS, 1500.0);
        ds.SetValues(DicomTags.RescaleIntercept, DicomVR.DS, (double)RescaleIntercept);
        ds.SetValues(DicomTags.RescaleSlope, DicomVR.DS, 1.0);
        ds.SetString(DicomTags.RescaleType, DicomVR.LO, "HU");
        ds.AddOrUpdate(new DicomValueElement(DicomTags.PixelData, DicomVR.OW, pixels));
        return new DicomFile(ds, TransferSyntax.ExplicitVRLittleEndian);
    }

    /// <summary>The file name of slice <paramref name="index"/> inside a folder or zip.</summary>
    public static string FileName(int index) => $"CT{index + 1:D4}.dcm";

    /// <summary>Writes every slice into <paramref name="directory"/> (created); returns the file paths, top slice first.</summary>
    public IReadOnlyList<string> WriteFolder(string directory)
    {
        Directory.CreateDirectory(directory);
        var paths = new string[Options.Slices];
        for (var i = 0; i < Options.Slices; i++)
        {
            paths[i] = Path.Combine(directory, FileName(i));
            CreateInstance(i).Save(paths[i]);
        }

        return paths;
    }

    /// <summary>Writes every slice into one zip archive (stored entries: CT pixels hardly deflate and the codec reads either).</summary>
    public void WriteZip(string zipPath)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(zipPath));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        using var stream = new FileStream(zipPath, FileMode.Create, FileAccess.Write, FileShare.None);
        WriteZip(stream);
    }

    /// <summary>Writes every slice into a zip archive on <paramref name="destination"/> (left open).</summary>
    public void WriteZip(Stream destination)
    {
        using var zip = new ZipArchive(destination, ZipArchiveMode.Create, leaveOpen: true);
        for (var i = 0; i < Options.Slices; i++)
        {
            var entry = zip.CreateEntry(FileName(i), CompressionLevel.Fastest);
            using var entryStream = entry.Open();
            CreateInstance(i).Write(entryStream);
        }
    }

    private string Uid(string kind, int index)
    {
        // 2.25 UIDs (ISO/IEC 9834-8 UUID-derived form): a positive 128-bit integer from a hash of the seed.
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"covidfn-phantom|{_uidSeed}|{kind}|{index.ToString(CultureInfo.InvariantCulture)}"));
        var value = new BigInteger(hash.AsSpan(0, 16), isUnsigned: true, isBigEndian: true);
        return "2.25." + value.ToString(CultureInfo.InvariantCulture);
    }

    private void AddNoise(int index, Span<short> hu)
    {
        var random = new Random(HashCode.Combine(Options.Seed, index, 0x5eed));
        var sigma = Options.NoiseHu;
        for (var i = 0; i + 1 < hu.Length; i += 2)
        {
            // Box-Muller: two normal deviates per pair of uniforms.
            var u1 = 1.0 - random.NextDouble();
            var u2 = random.NextDouble();
            var r = Math.Sqrt(-2.0 * Math.Log(u1)) * sigma;
            hu[i] = Clamp(hu[i] + (r * Math.Cos(2 * Math.PI * u2)));
            hu[i + 1] = Clamp(hu[i + 1] + (r * Math.Sin(2 * Math.PI * u2)));
        }

        static short Clamp(double v) => (short)Math.Clamp(Math.Round(v), -1024, 3071);
    }

    private Vessel[] CreateVessels(Random random)
    {
        const int perLung = 70;
        var vessels = new Vessel[2 * perLung];
        for (var i = 0; i < vessels.Length; i++)
        {
            // Denser and thicker near the hilum (medial, centre of the lung), thin towards the pleura.
            var radial = Math.Pow(random.NextDouble(), 0.8) * 0.85;
            var angle = random.NextDouble() * 2 * Math.PI;
            var u = (Math.Cos(angle) * radial) - 0.25; // shifted medially (towards the hilum)
            vessels[i] = new Vessel(
                Left: i < perLung,
                U: Math.Clamp(u, -0.9, 0.9),
                V: Math.Sin(angle) * radial,
                RadiusMm: 0.8 + (3.2 * Math.Pow(1 - radial, 2)),
                PhaseU: random.NextDouble() * 2 * Math.PI,
                PhaseV: random.NextDouble() * 2 * Math.PI,
                PeriodU: 25 + (random.NextDouble() * 30),
                PeriodV: 25 + (random.NextDouble() * 30),
                Visibility: random.NextDouble());
        }

        return vessels;
    }

    private Lesion[] CreateLesions(Random random, int count)
    {
        var lesions = new Lesion[count];
        var length = Options.Slices * Options.SliceSpacing;
        for (var i = 0; i < count; i++)
        {
            var left = i % 2 == 0; // bilateral
            var t = 0.35 + (random.NextDouble() * 0.45); // mid and lower zones
            var f = LungScale(t, left ? LeftLungBottom : RightLungBottom);

            // Peripheral: towards the lateral and posterior pleura of the lung ellipse.
            var angle = (random.NextDouble() * 1.6 * Math.PI) - (0.3 * Math.PI);
            var reach = 0.78 + (random.NextDouble() * 0.12);
            var side = left ? 1 : -1;
            var (cx, cy, a, b) = LungEllipse(left, f);
            var x = cx + (side * Math.Cos(angle) * a * reach);
            var y = cy + (Math.Sin(angle) * b * reach);

            // Sizes in mm, but at least a few voxels so that coarse matrices and thick slices still show them.
            var minInPlane = 2.5 * Options.PixelSpacing;
            var minZ = 1.5 * Options.SliceSpacing;
            lesions[i] = new Lesion(
                X: x,
                Y: y,
                Z: -t * length,
                Rx: Math.Max(minInPlane, 10 + (random.NextDouble() * 12)),
                Ry: Math.Max(minInPlane, 10 + (random.NextDouble() * 12)),
                Rz: Math.Max(minZ, 9 + (random.NextDouble() * 12)));
        }

        return lesions;
    }

    private void DrawLesion(Lesion lesion, double z, Span<short> hu, Span<PhantomTissue> labels)
    {
        var dz = (z - lesion.Z) / lesion.Rz;
        if (dz * dz >= 1)
        {
            return;
        }

        var box = Bounds(lesion.X, lesion.Y, lesion.Rx, lesion.Ry);
        for (var row = box.Row0; row <= box.Row1; row++)
        {
            var y = PixelCentre(row);
            for (var col = box.Col0; col <= box.Col1; col++)
            {
                var offset = (row * Options.Matrix) + col;
                var d2 = Sq((PixelCentre(col) - lesion.X) / lesion.Rx) + Sq((y - lesion.Y) / lesion.Ry) + (dz * dz);
                if (d2 >= 1 || labels[offset] != PhantomTissue.Lung)
                {
                    continue;
                }

                // Dense core fading to faint ground glass at the rim: all within [-600, -350] HU before noise.
                var d = Math.Sqrt(d2);
                var w = d * d * (3 - (2 * d));
                hu[offset] = (short)Math.Round(PhantomHu.GroundGlassCore + ((PhantomHu.GroundGlassMin - PhantomHu.GroundGlassCore) * w));
                labels[offset] = PhantomTissue.GroundGlass;
            }
        }
    }

    private void DrawVessel(Vessel vessel, SliceAnatomy anatomy, double z, Span<short> hu, Span<PhantomTissue> labels)
    {
        if (!anatomy.TryGetLung(vessel.Left, out var cx, out var cy, out var a, out var b, out var f) || vessel.Visibility >= f * f)
        {
            // Small lung cross-sections (apices, bases) hold fewer and thinner vessels, as in a real chest; crowding
            // every vessel into a small section would look like consolidation.
            return;
        }

        // The vessel wanders slowly with z, so consecutive slices show it as a continuous tube.
        var u = vessel.U + (0.07 * Math.Sin((z / vessel.PeriodU) + vessel.PhaseU));
        var v = vessel.V + (0.07 * Math.Cos((z / vessel.PeriodV) + vessel.PhaseV));
        var side = vessel.Left ? 1 : -1;
        var x0 = cx + (side * u * a);
        var y0 = cy + (v * b);
        var r = vessel.RadiusMm * (0.5 + (0.5 * f));
        var box = Bounds(x0, y0, r, r);
        for (var row = box.Row0; row <= box.Row1; row++)
        {
            var y = PixelCentre(row);
            for (var col = box.Col0; col <= box.Col1; col++)
            {
                var offset = (row * Options.Matrix) + col;
                if (Sq(PixelCentre(col) - x0) + Sq(y - y0) < r * r && labels[offset] is PhantomTissue.Lung or PhantomTissue.GroundGlass)
                {
                    hu[offset] = PhantomHu.Vessel;
                    labels[offset] = PhantomTissue.Vessel;
                }
            }
        }
    }

    /// <summary>The patient coordinate (mm) of the centre of pixel row or column <paramref name="index"/>.</summary>
    private double PixelCentre(int index) => (index + 0.5 - (Options.Matrix / 2.0)) * Options.PixelSpacing;

    private (int Row0, int Row1, int Col0, int Col1) Bounds(double cx, double cy, double rx, double ry)
    {
        var n = Options.Matrix;
        var ps = Options.PixelSpacing;
        var half = n / 2.0;
        return (
            Math.Max(0, (int)Math.Floor(((cy - ry) / ps) + half - 0.5)),
            Math.Min(n - 1, (int)Math.Ceiling(((cy + ry) / ps) + half - 0.5)),
            Math.Max(0, (int)Math.Floor(((cx - rx) / ps) + half - 0.5)),
            Math.Min(n - 1, (int)Math.Ceiling(((cx + rx) / ps) + half - 0.5)));
    }

    private static double Sq(double v) => v * v;

    /// <summary>Relative lung size at craniocaudal fraction <paramref name="t"/>: small at the apex, widest low, cut by the diaphragm.</summary>
    private static double LungScale(double t, double bottom)
    {
        if (t < LungTop || t > bottom)
        {
            return 0;
        }

        var u = (t - LungTop) / (bottom - LungTop);
        return Math.Sqrt(Math.Sin((Math.PI * u * 0.85) + 0.05));
    }

    /// <summary>Centre and semi-axes (mm) of one lung's ellipse at scale <paramref name="f"/>; the apices sit medially.</summary>
    private static (double Cx, double Cy, double A, double B) LungEllipse(bool left, double f)
    {
        var side = left ? 1 : -1;
        return (side * (52 + (24 * f)), 2, 50 * f, 68 * f);
    }

    private static bool InEllipse(double x, double y, double cx, double cy, double a, double b) =>
        a > 0 && b > 0 && Sq((x - cx) / a) + Sq((y - cy) / b) < 1;

    private sealed record Vessel(bool Left, double U, double V, double RadiusMm, double PhaseU, double PhaseV, double PeriodU, double PeriodV, double Visibility);

    private sealed record Lesion(double X, double Y, double Z, double Rx, double Ry, double Rz);

    /// <summary>The slice-dependent shapes, computed once per slice.</summary>
    private readonly struct SliceAnatomy
    {
        private readonly double _z;
        private readonly double _bodyA;
        private readonly double _bodyB;
        private readonly double _leftF;
        private readonly double _rightF;
        private readonly double _heart;
        private readonly bool _trachea;
        private readonly bool _ascendingAorta;
        private readonly bool _sternum;
        private readonly bool _ribs;
        private readonly bool _disc;

        public SliceAnatomy(double t, double z)
        {
            _z = z;
            _bodyA = 160 * (0.85 + (0.15 * Math.Min(1, t / 0.3)));
            _bodyB = 112;
            _leftF = LungScale(t, LeftLungBottom);
            _rightF = LungScale(t, RightLungBottom);
            _heart = t is > 0.45 and < 0.95 ? Math.Sqrt(Math.Sin(Math.PI * (t - 0.45) / 0.5)) : 0;
            _trachea = t < 0.38;
            _ascendingAorta = t is > 0.3 and < 0.55;
            _sternum = t is > 0.1 and < 0.75;
            _ribs = t < 0.95;

            // Intervertebral discs: 6 mm of every 26 mm along z.
            var phase = ((-z % 26) + 26) % 26;
            _disc = phase < 6;
        }

        public bool TryGetLung(bool left, out double cx, out double cy, out double a, out double b, out double f)
        {
            f = left ? _leftF : _rightF;
            (cx, cy, a, b) = LungEllipse(left, f);
            return f > 0;
        }

        public (short Hu, PhantomTissue Tissue) Base(double x, double y)
        {
            const double bodyCy = 5;

            // The table: a curved carbon-fibre shell around foam, below the patient.
            if (y is > 124 and < 134 && Math.Abs(x) < 175)
            {
                var curve = 124 + (Sq(x / 175) * 4);
                if (y > curve)
                {
                    return y < curve + 1.5 || y > 132.5 ? (PhantomHu.TableShell, PhantomTissue.Table) : (PhantomHu.TableFoam, PhantomTissue.Table);
                }
            }

            if (!InEllipse(x, y, 0, bodyCy, _bodyA, _bodyB))
            {
                return (PhantomHu.Air, PhantomTissue.Air);
            }

            if (!InEllipse(x, y, 0, bodyCy, _bodyA - 2, _bodyB - 2))
            {
                return (PhantomHu.Skin, PhantomTissue.Skin);
            }

            if (!InEllipse(x, y, 0, bodyCy, _bodyA - 14, _bodyB - 12))
            {
                return (PhantomHu.Fat, PhantomTissue.Fat);
            }

            // Bone: vertebral body (cortex and cancellous core, discs between), arch, spinous process, sternum, ribs.
            if (InEllipse(x, y, 0, 62, 17, 16))
            {
                if (_disc)
                {
                    return (80, PhantomTissue.SoftTissue);
                }

                return InEllipse(x, y, 0, 62, 14.5, 13.5) ? (PhantomHu.CancellousBone, PhantomTissue.Bone) : (PhantomHu.CorticalBone, PhantomTissue.Bone);
            }

            if (InEllipse(x, y, 0, 88, 8, 7))
            {
                return (10, PhantomTissue.SoftTissue); // spinal canal
            }

            if ((InEllipse(x, y, 0, 88, 13, 12) && y > 80) || InEllipse(x, y, 0, 99, 4, 8))
            {
                return (PhantomHu.CorticalBone, PhantomTissue.Bone);
            }

            if (_sternum && InEllipse(x, y, 0, -94, 14, 6))
            {
                return (PhantomHu.CorticalBone, PhantomTissue.Bone);
            }

            if (_ribs && IsRib(x, y))
            {
                return (PhantomHu.CorticalBone, PhantomTissue.Bone);
            }

            if (_trachea && InEllipse(x, y, 0, -18, 9, 9))
            {
                return InEllipse(x, y, 0, -18, 7.5, 7.5) ? (PhantomHu.Air, PhantomTissue.Air) : (PhantomHu.SoftTissue, PhantomTissue.SoftTissue);
            }

            if (InEllipse(x, y, 20, 45, 12, 12) || (_ascendingAorta && InEllipse(x, y, -8, -32, 15, 15)))
            {
                return (PhantomHu.Blood, PhantomTissue.Blood);
            }

            var inHeart = _heart > 0 && InEllipse(x, y, 15, -30, 58 * _heart, 46 * _heart);
            if (inHeart)
            {
                return (PhantomHu.Blood, PhantomTissue.Blood);
            }

            var (lcx, lcy, la, lb) = LungEllipse(true, _leftF);
            var (rcx, rcy, ra, rb) = LungEllipse(false, _rightF);
            if (InEllipse(x, y, lcx, lcy, la, lb) || InEllipse(x, y, rcx, rcy, ra, rb))
            {
                return (PhantomHu.Lung, PhantomTissue.Lung);
            }

            return (PhantomHu.SoftTissue, PhantomTissue.SoftTissue);
        }

        private bool IsRib(double x, double y)
        {
            // Rib cross-sections on an ellipse just inside the chest wall muscle; each rib crosses the slice where its
            // obliquely running band passes, so the pattern changes from slice to slice like real ribs.
            var a = _bodyA - 24;
            var b = _bodyB - 20;
            var angle = Math.Atan2((y - 5) / b, x / a);
            var near = Sq(x / a) + Sq((y - 5) / b);
            if (near is < 0.86 or > 1.0)
            {
                return false;
            }

            var fromSpine = Math.Abs(Math.Abs(angle) - (Math.PI / 2));
            if (angle > 0 && fromSpine < 0.3)
            {
                return false; // the spine
            }

            if (angle < 0 && fromSpine < 0.35)
            {
                return false; // the sternum and costal cartilage gap
            }

            var band = Math.Cos((2 * Math.PI * ((-_z / 28) + (Math.Abs(angle) * 0.9))));
            return band > 0.55;
        }
    }
}
