using System.Globalization;
using CovidFunctions.Imaging.Phantoms;
using CovidFunctions.Imaging.Series;
using CovidFunctions.TestHelpers;
using Xunit.Abstractions;

namespace CovidFunctions.Inference.Tests;

/// <summary>
/// <see cref="LungRestriction"/> on synthetic masks, and through <see cref="SeriesScreening"/> with the committed
/// models on the CT phantom (planted ground glass inside the lungs), real chest CT series and 2-D images.
/// </summary>
public sealed class LungRestrictionTests(ITestOutputHelper output)
{
    private static InferenceOptions Options(bool restrict) =>
        new() { ModelsDirectory = Path.Combine(TestData.RepoRoot, "models"), PreferCuda = false, MaxBatch = 8, RestrictLesionsToLungs = restrict };

    [Fact]
    public void Dilate_OnePixel_GivesTheEllipseOfTheMarginInMillimetres()
    {
        const int size = 21;
        var mask = new byte[size * size];
        mask[(10 * size) + 10] = 1;

        // Isotropic 1 mm pixels, 2 mm margin: the 13 pixels with dx² + dy² ≤ 4.
        var round = LungRestriction.Dilate(mask, size, size, 1.0, 1.0, 2.0);
        Assert.Equal(13, LungMask.Area(round));

        // Rows 2 mm apart, columns 0.5 mm apart, 2 mm margin: 9 pixels across the row, 3 rows.
        var flat = LungRestriction.Dilate(mask, size, size, 2.0, 0.5, 2.0);
        Assert.Equal(1, flat[(9 * size) + 10]);
        Assert.Equal(0, flat[(8 * size) + 10]);
        Assert.Equal(1, flat[(10 * size) + 14]);
        Assert.Equal(0, flat[(10 * size) + 15]);
        Assert.Equal(0, flat[(9 * size) + 14]); // (4·0.5)² + (1·2)² = 8 > 4
    }

    [Fact]
    public void Region_IsTheEnclosedAirPlusTheMargin_NotTheAirAroundTheBodyOrTheTable()
    {
        // 60×60 slice, 1 mm pixels: outside air, a body (40 HU) from 5 to 44, a lung (−800) from 15 to 34, a hollow
        // table (200 HU, air inside on row 51) on rows 49–53.
        const int size = 60;
        var hu = new short[size * size];
        for (var y = 0; y < size; y++)
        {
            for (var x = 0; x < size; x++)
            {
                var inBody = x is >= 5 and < 45 && y is >= 5 and < 45;
                var inLung = x is >= 15 and < 35 && y is >= 15 and < 35;
                var table = y is >= 49 and < 54 && x is >= 2 and < 58;
                var tableAir = y == 51 && x is >= 4 and < 56;
                hu[(y * size) + x] = (short)(inLung || tableAir ? -800 : inBody ? 40 : table ? 200 : -1000);
            }
        }

        var region = LungRestriction.Region(hu, size, size, 1.0, 1.0, marginMm: 3.0);

        Assert.Equal(1, region[(25 * size) + 25]);
        Assert.Equal(1, region[(25 * size) + 12]); // 3 mm lateral of the lung edge
        Assert.Equal(0, region[(25 * size) + 11]); // 4 mm: body wall
        Assert.Equal(0, region[(51 * size) + 25]); // the air inside the table
        Assert.Equal(0, region[(50 * size) + 25]);
        Assert.Equal(0, region[0]);
        Assert.Equal(LungMask.Area(LungRestriction.Region(hu.Select(v => (float)v).ToArray(), size, size, 1.0, 1.0, 3.0)), LungMask.Area(region));
    }

    [Fact]
    public void KeptRegion_ALesionAnchoredInTheRegionStaysWhole_OneMostlyOutsideKeepsOnlyItsPixelsInside()
    {
        // 40×40: the region is columns 0–19. Lesion A spans columns 10–29 (half inside: dense consolidation against
        // the pleura); lesion B spans columns 17–36 (3 of 20 columns inside: body wall touching the margin); lesion C
        // lies at columns 30–35 (outside: table).
        const int size = 40;
        var region = new byte[size * size];
        var mask = new byte[size * size];
        for (var y = 0; y < size; y++)
        {
            for (var x = 0; x < size; x++)
            {
                region[(y * size) + x] = x < 20 ? (byte)1 : (byte)0;
                var a = y is >= 2 and < 8 && x is >= 10 and < 30;
                var b = y is >= 15 and < 20 && x is >= 17 and < 37;
                var c = y is >= 30 and < 35 && x is >= 30 and < 36;
                mask[(y * size) + x] = a || b || c ? (byte)255 : (byte)0;
            }
        }

        var kept = LungRestriction.KeptRegion(mask, region, size, size);

        Assert.Equal(1, kept[(5 * size) + 29]); // A whole
        Assert.Equal(1, kept[(17 * size) + 19]); // B inside the region
        Assert.Equal(0, kept[(17 * size) + 20]); // B outside it
        Assert.Equal(0, kept[(32 * size) + 32]); // C
        Assert.Equal(0, kept[(5 * size) + 30]); // not lesion, not region
    }

    [Fact]
    public void Phantom_NoLesionOutsideTheDilatedLungs_PlantedGroundGlassFoundAsWell()
    {
        var phantom = new CtPhantom(new CtPhantomOptions { Slices = 32, Seed = 7 });
        using var dir = TestData.CreateTempDirectory();
        phantom.WriteFolder(dir.Path);
        using var series = SeriesAssembler.Assemble(dir.Path);
        var n = phantom.Options.Matrix;
        Assert.Equal((n, n), (series.Rows, series.Columns));

        var before = SeriesScreening.Screen(series, ScreeningModels.Load(Options(restrict: false)));
        var after = SeriesScreening.Screen(series, ScreeningModels.Load(Options(restrict: true)));

        // Planted truth per slice, matched to the assembled (feet-to-head) order by the slice's HU.
        long planted = 0, foundBefore = 0, foundAfter = 0, outsideLungBefore = 0, outsideLungAfter = 0, lesionBefore = 0, lesionAfter = 0;
        long outsideRegionAfter = 0, outsideDilatedBefore = 0, outsideDilatedAfter = 0;
        var hu = new short[n * n];
        var tissue = new PhantomTissue[n * n];
        for (var k = 0; k < phantom.Options.Slices; k++)
        {
            phantom.RenderSlice(k, hu, tissue);
            var assembled = Enumerable.Range(0, series.SliceCount).Single(i => series.ReadHuInt16(i).AsSpan().SequenceEqual(hu));
            var region = LungRestriction.Region(hu, n, n, phantom.Options.PixelSpacing, phantom.Options.PixelSpacing);
            var maskBefore = before.Slices[assembled].Mask;
            var maskAfter = after.Slices[assembled].Mask;
            var kept = LungRestriction.KeptRegion(maskBefore, region, n, n);
            for (var i = 0; i < hu.Length; i++)
            {
                var inLung = tissue[i] is PhantomTissue.Lung or PhantomTissue.Vessel or PhantomTissue.GroundGlass;
                var ggo = tissue[i] == PhantomTissue.GroundGlass;
                planted += ggo ? 1 : 0;
                if (maskBefore[i] != 0)
                {
                    lesionBefore++;
                    foundBefore += ggo ? 1 : 0;
                    outsideLungBefore += inLung ? 0 : 1;
                    outsideDilatedBefore += region[i] == 0 ? 1 : 0;
                }

                if (maskAfter[i] != 0)
                {
                    lesionAfter++;
                    foundAfter += ggo ? 1 : 0;
                    outsideLungAfter += inLung ? 0 : 1;
                    outsideRegionAfter += kept[i] == 0 || maskBefore[i] == 0 ? 1 : 0;
                    outsideDilatedAfter += region[i] == 0 ? 1 : 0;
                }
            }
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"phantom 32×{n}² seed 7: lesion voxels {lesionBefore} → {lesionAfter}; outside the phantom's lungs {outsideLungBefore} ({Share(outsideLungBefore, lesionBefore)}) → {outsideLungAfter} ({Share(outsideLungAfter, lesionAfter)}); outside the dilated lung estimate {outsideDilatedBefore} → {outsideDilatedAfter}; planted GGO recall {Share(foundBefore, planted)} → {Share(foundAfter, planted)} of {planted}; study {before.Study.Label} → {after.Study.Label}"));
        Assert.True(planted > 0);
        Assert.True(foundBefore > 0, "the model finds some of the planted ground glass");
        Assert.Equal(0, outsideRegionAfter); // nothing kept that the shared rule would drop
        Assert.True(outsideLungAfter <= outsideLungBefore);

        // Planted ground glass is lung-dense (below −300 HU) and inside the estimate: nothing of it is lost.
        Assert.Equal(foundBefore, foundAfter);
    }

    /// <summary>Both lung-pet-ct-dx series (30 slices each) and every axial COVID-19-NY-SBU slice (one file each).</summary>
    public static TheoryData<string> RealChestCtInputs()
    {
        var root = TestData.Shared("dicom", "chest-ct");
        var data = new TheoryData<string> { "lung-pet-ct-dx/A0002-s3-b40f", "lung-pet-ct-dx/A0002-s2-b70f" };
        foreach (var file in Directory.EnumerateFiles(Path.Combine(root, "covid19-ny-sbu"), "*.dcm", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(Path.GetDirectoryName(f)) == "axial").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetRelativePath(root, file).Replace('\\', '/'));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(RealChestCtInputs))]
    public void RealChestCt_AfterRestrictionNoLesionOutsideTheDilatedLungs(string path)
    {
        using var series = SeriesAssembler.Assemble(TestData.Shared(["dicom", "chest-ct", .. path.Split('/')]));
        var before = SeriesScreening.Screen(series, ScreeningModels.Load(Options(restrict: false)));
        var after = SeriesScreening.Screen(series, ScreeningModels.Load(Options(restrict: true)));

        long lesionBefore = 0, lesionAfter = 0, outsideBefore = 0, outsideAfter = 0;
        for (var k = 0; k < series.SliceCount; k++)
        {
            var region = LungRestriction.Region(series.ReadHu(k), series.Columns, series.Rows, series.Geometry.RowSpacing, series.Geometry.ColumnSpacing);
            var maskBefore = before.Slices[k].Mask;
            var maskAfter = after.Slices[k].Mask;
            var kept = LungRestriction.KeptRegion(maskBefore, region, series.Columns, series.Rows);
            for (var i = 0; i < region.Length; i++)
            {
                lesionBefore += maskBefore[i] != 0 ? 1 : 0;
                lesionAfter += maskAfter[i] != 0 ? 1 : 0;
                outsideBefore += maskBefore[i] != 0 && region[i] == 0 ? 1 : 0;
                outsideAfter += maskAfter[i] != 0 && region[i] == 0 ? 1 : 0;

                // Restriction only removes pixels: those outside the region that no anchored lesion holds.
                Assert.True(maskAfter[i] == (kept[i] != 0 ? maskBefore[i] : 0));
            }

            // What is left outside the region belongs to lesions that lie mostly in it.
            foreach (var component in Components(maskAfter, series.Columns, series.Rows))
            {
                var inside = component.Count(i => region[i] != 0);
                Assert.True(inside >= LungRestriction.AnchorFraction * component.Count, $"slice {k}: a kept lesion of {component.Count} pixels has {inside} in the lungs");
            }

            Assert.True(after.Slices[k].Summary.LesionMeanProbability <= before.Slices[k].Summary.LesionMeanProbability);
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{path} ({series.SliceCount} slices, {series.Geometry.RowSpacing:0.###} mm): lesion voxels {lesionBefore} → {lesionAfter}; outside the dilated lungs {outsideBefore} ({Share(outsideBefore, lesionBefore)}) → {outsideAfter} ({Share(outsideAfter, lesionAfter)}); study {before.Study.Label} → {after.Study.Label}"));
        Assert.True(outsideAfter <= outsideBefore);
    }

    [Fact]
    public void TwoDimensionalImages_AreNotRestricted_ByteIdenticalOutput()
    {
        using var dir = TestData.CreateTempDirectory();
        foreach (var (name, source) in new[] { ("a.jpg", "0.jpg"), ("b.jpg", "0.jpg") })
        {
            File.Copy(TestData.Shared("seg", "covid-semiseg", "train", "images", source), Path.Combine(dir.Path, name));
        }

        using var series = SeriesAssembler.Assemble(dir.Path);
        Assert.Equal(Imaging.Tiles.TileKinds.Unit, series.ValueKind);

        var off = SeriesScreening.Screen(series, ScreeningModels.Load(Options(restrict: false)));
        var on = SeriesScreening.Screen(series, ScreeningModels.Load(Options(restrict: true)));

        Assert.Equal(off.Slices.Count, on.Slices.Count);
        Assert.Contains(on.Slices, s => s.Mask.AsSpan().ContainsAnyExcept((byte)0));
        for (var k = 0; k < on.Slices.Count; k++)
        {
            Assert.Equal(off.Slices[k].Mask, on.Slices[k].Mask);
            Assert.Equal(off.Slices[k].Summary.LesionMeanProbability, on.Slices[k].Summary.LesionMeanProbability);
            Assert.Equal(off.Slices[k].Summary.LesionFraction, on.Slices[k].Summary.LesionFraction);
            Assert.Equal(off.Slices[k].LesionPercent, on.Slices[k].LesionPercent);
        }

        Assert.Equal(off.Study.ClassProbabilities, on.Study.ClassProbabilities);
    }

    [Fact]
    public void LungEstimate_KeepsEnclosedAirWithItsVesselsAndDropsTheAirAroundThePatient_RegionIsItsDilation()
    {
        const int w = 40, h = 30;
        var hu = new short[w * h];
        bool InBody(int x, int y) => Math.Pow((x - 20) / 18.0, 2) + Math.Pow((y - 15) / 13.0, 2) <= 1;
        bool InLung(int x, int y) => x is >= 8 and < 18 && y is >= 8 and < 22;
        for (var y = 0; y < h; y++)
        {
            for (var x = 0; x < w; x++)
            {
                hu[(y * w) + x] = (short)(!InBody(x, y) ? -1024 : InLung(x, y) ? -850 : 40);
            }
        }

        hu[(15 * w) + 12] = 60; // a vessel inside the lung: filled as a hole
        hu[(15 * w) + 30] = -900; // a pocket of gas in soft tissue: counted (the rule's known overestimate)

        var (lung, region) = LungRestriction.LungAndRegion(hu, w, h, 1, 1, restrict: true);

        Assert.Equal((10 * 14) + 1, lung.Count(v => v != 0));
        Assert.Equal(1, lung[(15 * w) + 12]);
        Assert.Equal(0, lung[0]);
        Assert.Equal(0, lung[(15 * w) + 19]);
        Assert.Equal(LungRestriction.Region(hu, w, h, 1, 1), region);
        Assert.Null(LungRestriction.LungAndRegion(hu, w, h, 1, 1, restrict: false).Region);
    }

    [Fact]
    public void LungEstimate_DropsTheEnclosedAirOfAHollowTableUnderThePatient()
    {
        const int w = 60, h = 50;
        var hu = new short[w * h];
        bool InBody(int x, int y) => Math.Pow((x - 30) / 25.0, 2) + Math.Pow((y - 20) / 15.0, 2) <= 1;
        bool InLung(int x, int y) => x is >= 15 and < 27 && y is >= 12 and < 28;
        bool InTableShell(int x, int y) => x is >= 6 and < 54 && y is >= 40 and < 47;
        bool InTableAir(int x, int y) => x is >= 8 and < 52 && y is >= 42 and < 45;
        for (var y = 0; y < h; y++)
        {
            for (var x = 0; x < w; x++)
            {
                hu[(y * w) + x] = (short)(InBody(x, y) ? (InLung(x, y) ? -850 : 40)
                    : InTableShell(x, y) ? (InTableAir(x, y) ? -1000 : 200) : -1024);
            }
        }

        var (lung, _) = LungRestriction.LungAndRegion(hu, w, h, 1, 1, restrict: false);

        Assert.Equal(12 * 16, lung.Count(v => v != 0)); // the lung only: the table's air (44 x 3) is not in the body
        Assert.Equal(0, lung[(43 * w) + 30]);
    }

    [Fact]
    public void LesionAndLungArea_AddsTheLesionToTheLung_AndAnEmptyLungIsTheWholeSlice()
    {
        byte[] lung = [1, 1, 1, 0, 0, 0];
        byte[] lesion = [0, 255, 0, 255, 0, 0]; // one lesion pixel inside the lung, one dense one outside it

        Assert.Equal((2L, 4L), LungRestriction.LesionAndLungArea(lesion, lung));
        Assert.Equal((2L, 6L), LungRestriction.LesionAndLungArea(lesion, []));
        Assert.Throws<ArgumentException>(() => LungRestriction.LesionAndLungArea(lesion, [1, 1]));
    }

    /// <summary>8-connected components of a mask, as pixel index lists.</summary>
    private static List<List<int>> Components(byte[] mask, int width, int height)
    {
        var seen = new bool[mask.Length];
        var components = new List<List<int>>();
        for (var seed = 0; seed < mask.Length; seed++)
        {
            if (mask[seed] == 0 || seen[seed])
            {
                continue;
            }

            var component = new List<int>();
            var stack = new Stack<int>([seed]);
            seen[seed] = true;
            while (stack.Count > 0)
            {
                var i = stack.Pop();
                component.Add(i);
                for (var dy = -1; dy <= 1; dy++)
                {
                    for (var dx = -1; dx <= 1; dx++)
                    {
                        int x = (i % width) + dx, y = (i / width) + dy;
                        if (x >= 0 && y >= 0 && x < width && y < height && mask[(y * width) + x] != 0 && !seen[(y * width) + x])
                        {
                            seen[(y * width) + x] = true;
                            stack.Push((y * width) + x);
                        }
                    }
                }
            }

            components.Add(component);
        }

        return components;
    }

    private static string Share(long part, long whole) =>
        whole == 0 ? "n/a" : string.Create(CultureInfo.InvariantCulture, $"{100.0 * part / whole:0.00} %");
}
