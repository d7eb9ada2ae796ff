using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace CovidFunctions.Dicom.Tests.Peers;

/// <summary>Recursive comparison of two normalized element lists (ours first, the peer's second).</summary>
internal sealed class PeerComparer
{
    private readonly List<string> _differences = [];
    private readonly List<string> _tolerated = [];

    /// <summary>Differences that fail the test: "path: what".</summary>
    public IReadOnlyList<string> Differences => _differences;

    /// <summary>Intended differences seen (implicit VR guesses whose value bytes agree).</summary>
    public IReadOnlyList<string> Tolerated => _tolerated;

    /// <summary>When set, elements whose tag matches are not compared (documented per file by the caller).</summary>
    public Func<string, bool>? Ignore { get; init; }

    /// <summary>Compares the structural dcmdump shape (len/frags/s) instead of pydicom's values.</summary>
    public bool Structural { get; init; }

    /// <summary>The peer replaced UN with the dictionary VR (pydicom on explicit_VR-UN.dcm): our UN elements match any VR.</summary>
    public bool PeerReplacedUN { get; init; }

    /// <summary>
    /// dcmdump's internal VRs for ambiguous dictionary entries, and what each stands for: "up" (unsigned pointer in
    /// DICOMDIR) is UL; "xs" is US or SS; "ox" is OB or OW; "lt" is US, SS or OW.
    /// </summary>
    private static readonly Dictionary<string, string[]> DcmdumpVRs = new(StringComparer.Ordinal)
    {
        ["up"] = ["UL"],
        ["xs"] = ["US", "SS"],
        ["ox"] = ["OB", "OW"],
        ["lt"] = ["US", "SS", "OW"],
    };

    public void CompareLists(JsonArray ours, JsonArray theirs, string path)
    {
        var mine = Index(ours);
        var other = Index(theirs);
        foreach (var (tag, node) in mine)
        {
            if (Ignore?.Invoke(tag) == true)
            {
                continue;
            }

            if (!other.TryGetValue(tag, out var peer))
            {
                _differences.Add($"{path}{tag}: only in ours ({node.ToJsonString()})");
                continue;
            }

            CompareElement(node, peer, path + tag);
        }

        foreach (var (tag, node) in other)
        {
            if (Ignore?.Invoke(tag) != true && !mine.ContainsKey(tag))
            {
                _differences.Add($"{path}{tag}: only in peer ({Short(node)})");
            }
        }
    }

    /// <summary>True when the last tag of the path has an odd group.</summary>
    private static bool IsPrivate(string path)
    {
        var tag = path.Length >= 8 ? path[^8..] : path;
        return tag.Length == 8 && int.TryParse(tag[..4], System.Globalization.NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var group) && (group & 1) == 1;
    }

    private static Dictionary<string, JsonObject> Index(JsonArray list)
    {
        var map = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
        foreach (var node in list)
        {
            var obj = node!.AsObject();
            map.TryAdd(obj["t"]!.GetValue<string>(), obj);
        }

        return map;
    }

    private static string Short(JsonNode node)
    {
        var s = node.ToJsonString();
        return s.Length > 200 ? s[..200] + "..." : s;
    }

    private void CompareElement(JsonObject ours, JsonObject theirs, string path)
    {
        var ourVr = ours["vr"]!.GetValue<string>();
        var theirVr = theirs["vr"]!.GetValue<string>();
        if (ourVr == "*" || theirVr == "*")
        {
            if (theirs["items"] is JsonArray || ours["items"] is JsonArray)
            {
                CompareItems(ours, theirs, path);
                return;
            }

            if (ours["raw"] is not null && theirs["raw"] is not null)
            {
                Expect(ours["raw"], theirs["raw"], path + " raw");
            }

            return;
        }

        if (ourVr != theirVr && Structural && DcmdumpVRs.TryGetValue(theirVr, out var meanings) && meanings.Contains(ourVr))
        {
            theirVr = ourVr;
        }

        if (ourVr != theirVr && Structural && ours["frags"] is not null && ourVr == "OW" && theirVr == "OB")
        {
            // dcmtk always reports encapsulated Pixel Data as OB; the file (and pydicom, and we) say OW.
            _tolerated.Add($"{path}: encapsulated OW (file) reported as OB by dcmtk");
            theirVr = ourVr;
        }

        if (ourVr != theirVr && Structural && (ourVr == "UN" || theirVr == "UN") && IsPrivate(path))
        {
            _tolerated.Add($"{path}: private VR {ourVr} (ours) vs {theirVr} (peer)");
            theirVr = ourVr;
        }

        if (ourVr != theirVr && PeerReplacedUN && ourVr == "UN")
        {
            _tolerated.Add($"{path}: UN (ours, as in the file) vs {theirVr} (peer's dictionary VR)");
            return;
        }

        if (ourVr != theirVr)
        {
            if (ours["raw"] is JsonNode ourRaw && theirs["raw"] is JsonNode theirRaw && JsonNode.DeepEquals(ourRaw, theirRaw))
            {
                _tolerated.Add($"{path}: implicit VR {ourVr} (ours) vs {theirVr} (peer), same value bytes");
                return;
            }

            _differences.Add($"{path}: VR {ourVr} (ours) vs {theirVr} (peer)");
            return;
        }

        if (ours["items"] is JsonArray || theirs["items"] is JsonArray)
        {
            CompareItems(ours, theirs, path);
            return;
        }

        if (Structural)
        {
            if (theirs["frags"] is null)
            {
                // dcmtk pads an odd-length value to even length in memory and reports that length.
                var ourLength = ours["len"] is JsonValue ol ? ol.GetValue<long>() : -2;
                var theirLength = theirs["len"] is JsonValue tl ? tl.GetValue<long>() : -2;
                if (ourLength % 2 == 1 && theirLength == ourLength + 1)
                {
                    _tolerated.Add($"{path}: odd length {ourLength} (ours) padded to {theirLength} by dcmtk");
                }
                else
                {
                    Expect(ours["len"], theirs["len"], path + " length");
                }
            }

            Expect(ours["frags"], theirs["frags"], path + " fragments");
            if (ours["s"] is JsonNode mine && theirs["s"] is JsonNode other)
            {
                var a = mine.GetValue<string>();
                var printed = other.GetValue<string>();
                var b = ourVr is "LT" or "ST" or "UT" or "UR"
                    ? printed.TrimEnd(' ', '\0')
                    : string.Join('\\', printed.Split('\\').Select(v => v.Trim(' ', '\0')));
                if (!string.Equals(a, b, StringComparison.Ordinal))
                {
                    _differences.Add($"{path}: value [{a}] (ours) vs [{b}] (peer)");
                }
            }

            return;
        }

        foreach (var key in new[] { "v", "len", "sha1", "bot", "frags" })
        {
            Expect(ours[key], theirs[key], path + " " + key);
        }

        // pydicom has raw bytes only for elements it had not converted yet; compare where both have them.
        if (ours["raw"] is not null && theirs["raw"] is not null)
        {
            Expect(ours["raw"], theirs["raw"], path + " raw");
        }
    }

    private void CompareItems(JsonObject ours, JsonObject theirs, string path)
    {
        var a = ours["items"] as JsonArray ?? [];
        var b = theirs["items"] as JsonArray ?? [];
        if (a.Count != b.Count)
        {
            _differences.Add($"{path}: {a.Count} items (ours) vs {b.Count} (peer)");
            return;
        }

        for (var i = 0; i < a.Count; i++)
        {
            CompareLists(a[i]!.AsArray(), b[i]!.AsArray(), $"{path}[{i}]/");
        }
    }

    private void Expect(JsonNode? ours, JsonNode? theirs, string path)
    {
        if (!Same(ours, theirs))
        {
            _differences.Add($"{path}: {Show(ours)} (ours) vs {Show(theirs)} (peer)");
        }
    }

    private static string Show(JsonNode? node)
    {
        if (node is null)
        {
            return "absent";
        }

        var s = node.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        return s.Length > 160 ? s[..160] + "..." : s;
    }

    /// <summary>Deep equality; numbers compare by value (1 == 1.0), strings ordinally.</summary>
    public static bool Same(JsonNode? a, JsonNode? b)
    {
        if (a is null || b is null)
        {
            return a is null && b is null;
        }

        if (a is JsonArray x && b is JsonArray y)
        {
            if (x.Count != y.Count)
            {
                return false;
            }

            for (var i = 0; i < x.Count; i++)
            {
                if (!Same(x[i], y[i]))
                {
                    return false;
                }
            }

            return true;
        }

        if (a is JsonValue va && b is JsonValue vb)
        {
            var ka = va.GetValueKind();
            var kb = vb.GetValueKind();
            if (ka == JsonValueKind.Number && kb == JsonValueKind.Number)
            {
                var da = double.Parse(va.ToJsonString(), CultureInfo.InvariantCulture);
                var db = double.Parse(vb.ToJsonString(), CultureInfo.InvariantCulture);
                return da.Equals(db);
            }

            return JsonNode.DeepEquals(a, b);
        }

        return JsonNode.DeepEquals(a, b);
    }
}
