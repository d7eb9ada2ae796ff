#!/usr/bin/env python3
"""Generates the DICOM data dictionary table of CovidFunctions.Dicom from DCMTK's dicom.dic.

Input: DCMTK's data dictionary (Debian package libdcmtk17: /usr/share/libdcmtk17/dicom.dic), which DCMTK generates
from the standard's own PS3.6 / PS3.7 tables. Output (both committed):
  src/CovidFunctions.Dicom/Generated/DicomDictionary.g.cs   tag -> keyword, VR(s), VM, retired; repeating groups as masks
  src/CovidFunctions.Dicom/Generated/DicomTags.g.cs         DicomTags.<Keyword> for every keyword

  src/CovidFunctions.Dicom/Generated/DicomPrivateSequences.g.cs  private SQ elements (creator, group, element byte)
                                                                  from DCMTK's private.dic, so that implicit VR
                                                                  private sequences are parsed as DCMTK parses them

Usage:
  tools/dicom-dictgen/dictgen.py [--dic PATH] [--private-dic PATH] [--check]
--check regenerates in memory and exits 1 when the committed files differ (a test runs this).

Mapping of DCMTK's pseudo-VRs: xs -> US or SS; ox, px -> OW or OB (OW first: the VR implicit VR little endian
implies, PS3.5 A.1); lt -> OW or US or SS (LUT data is OW in implicit VR, PS3.5 A.1); up -> UL; na (item and
delimitation tags) -> not dictionary entries, only DicomTags constants. The generic PRIVATE / ILLEGAL / GENERIC rows
(private creators, group lengths) are rules in DicomDictionary.cs, not rows.
"""

import argparse
import hashlib
import os
import re
import sys

DEFAULT_DIC = "/usr/share/libdcmtk17/dicom.dic"
DEFAULT_PRIVATE_DIC = "/usr/share/libdcmtk17/private.dic"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT_DICT = os.path.join(REPO, "src", "CovidFunctions.Dicom", "Generated", "DicomDictionary.g.cs")
OUT_TAGS = os.path.join(REPO, "src", "CovidFunctions.Dicom", "Generated", "DicomTags.g.cs")
OUT_PRIVATE = os.path.join(REPO, "src", "CovidFunctions.Dicom", "Generated", "DicomPrivateSequences.g.cs")

STANDARD_VRS = set("AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split())
PSEUDO_VRS = {"xs": ["US", "SS"], "ox": ["OW", "OB"], "px": ["OW", "OB"], "lt": ["OW", "US", "SS"], "up": ["UL"]}
SKIPPED_VERSIONS = {"PRIVATE", "ILLEGAL", "GENERIC"}


def parse_range(text, what, line_no):
    """'6000' -> (0x6000, 0xFFFF); '6000-60FF' (even) / '6000-o-60FF' / '6000-u-60FF' -> (value, mask)."""
    m = re.fullmatch(r"([0-9A-Fa-f]{4})(?:-([ou])?-?([0-9A-Fa-f]{4}))?", text)
    if not m:
        raise SystemExit(f"line {line_no}: bad {what} '{text}'")
    lo = int(m.group(1), 16)
    if m.group(3) is None:
        return lo, 0xFFFF
    hi = int(m.group(3), 16)
    parity = m.group(2) or "e"
    span = hi - lo + 1
    if span & (span - 1) or lo & (span - 1):
        raise SystemExit(f"line {line_no}: {what} range {text} is not a maskable block")
    mask = 0xFFFF & ~(span - 1)
    if parity == "e":
        mask |= 1  # even members only: bit 0 must equal lo's (0)
    elif parity == "o":
        raise SystemExit(f"line {line_no}: odd-only range {text} not supported")
    return lo, mask


def read_dic(path):
    with open(path, "rb") as f:
        raw = f.read()
    text = raw.decode("latin-1")
    edition = None
    rows = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            m = re.search(r"Generated automatically from (.*?)\.?\s*$", line)
            if m and edition is None:
                edition = m.group(1).strip()
            continue
        if not line.strip():
            continue
        fields = line.split("\t")
        fields = [x for x in fields if x != ""]
        if len(fields) != 5:
            raise SystemExit(f"line {line_no}: expected 5 tab-separated fields: {line!r}")
        tag, vr, name, vm, version = fields
        rows.append((line_no, tag, vr, name, vm, version))
    return raw, edition, rows


def build(rows):
    exact = {}
    repeating = {}
    delimiters = []
    for line_no, tag, vr, name, vm, version in rows:
        if version in SKIPPED_VERSIONS:
            continue
        m = re.fullmatch(r"\(([^,]+),([^)]+)\)", tag)
        if not m:
            raise SystemExit(f"line {line_no}: bad tag {tag}")
        g, gmask = parse_range(m.group(1), "group", line_no)
        e, emask = parse_range(m.group(2), "element", line_no)
        retired = version.endswith("/retired") or name.startswith("RETIRED_")
        keyword = name[len("RETIRED_"):] if name.startswith("RETIRED_") else name
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", keyword):
            raise SystemExit(f"line {line_no}: keyword {keyword!r} is not an identifier")
        value = (g << 16) | e
        mask = (gmask << 16) | emask
        if vr == "na":
            delimiters.append((value, keyword))
            continue
        if vr in PSEUDO_VRS:
            vrs = PSEUDO_VRS[vr]
        elif vr in STANDARD_VRS:
            vrs = [vr]
        else:
            raise SystemExit(f"line {line_no}: unknown VR {vr}")
        row = (value, keyword, vrs, vm, retired, mask)
        # Later entries override earlier ones (dicom.dic's own rule).
        if mask == 0xFFFFFFFF:
            exact[value] = row
        else:
            repeating[(value, mask)] = row
    return sorted(exact.values()), sorted(repeating.values()), sorted(delimiters)


def vr_expr(vrs):
    return "V." + "_".join(vrs)


def cs_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dictionary(source_path, sha, edition, exact, repeating):
    combos = sorted({tuple(r[2]) for r in exact + repeating})
    out = []
    w = out.append
    w("// <auto-generated>")
    w("// Generated by tools/dicom-dictgen/dictgen.py. Do not edit; rerun the generator.")
    w(f"// Source: {source_path} (DCMTK data dictionary, Debian package libdcmtk17)")
    w(f"// Source edition: {edition}")
    w(f"// Source SHA-256: {sha}")
    w(f"// Rows: {len(exact)} exact, {len(repeating)} repeating-group.")
    w("// </auto-generated>")
    w("")
    w("namespace CovidFunctions.Dicom;")
    w("")
    w("public static partial class DicomDictionary")
    w("{")
    w("    /// <summary>The source of the generated table.</summary>")
    w(f"    public const string Source = {cs_string(os.path.basename(source_path) + ' (DCMTK), ' + edition)};")
    w("")
    w("    /// <summary>Exact rows in the generated table.</summary>")
    w(f"    public const int GeneratedExactCount = {len(exact)};")
    w("")
    w("    /// <summary>Repeating-group rows in the generated table.</summary>")
    w(f"    public const int GeneratedRepeatingCount = {len(repeating)};")
    w("")
    w("    private static DicomDictionaryEntry[] CreateEntries() =>")
    w("    [")
    for value, keyword, vrs, vm, retired, mask in exact:
        w(f"        new(0x{value:08X}, {cs_string(keyword)}, {vr_expr(vrs)}, {cs_string(vm)}, {'true' if retired else 'false'}),")
    w("    ];")
    w("")
    w("    private static DicomDictionaryEntry[] CreateRepeatingEntries() =>")
    w("    [")
    for value, keyword, vrs, vm, retired, mask in repeating:
        w(f"        new(0x{value:08X}, {cs_string(keyword)}, {vr_expr(vrs)}, {cs_string(vm)}, {'true' if retired else 'false'}, 0x{mask:08X}),")
    w("    ];")
    w("")
    w("    /// <summary>Shared VR arrays, one per combination used by the table.</summary>")
    w("    private static class V")
    w("    {")
    for combo in combos:
        items = ", ".join("DicomVR." + v for v in combo)
        w(f"        public static readonly DicomVR[] {'_'.join(combo)} = [{items}];")
    w("    }")
    w("}")
    return "\n".join(out) + "\n"


def render_tags(edition, exact, repeating, delimiters):
    seen = set()
    rows = []
    for value, keyword, vrs, vm, retired, mask in exact + repeating:
        if keyword in seen:
            continue
        seen.add(keyword)
        rows.append((value, keyword, "/".join(vrs), vm, retired, mask != 0xFFFFFFFF))
    for value, keyword in delimiters:
        if keyword not in seen:
            seen.add(keyword)
            rows.append((value, keyword, "-", "1", False, False))
    rows.sort(key=lambda r: (r[0], r[1]))
    out = []
    w = out.append
    w("// <auto-generated>")
    w("// Generated by tools/dicom-dictgen/dictgen.py. Do not edit; rerun the generator.")
    w(f"// Source edition: {edition}")
    w("// </auto-generated>")
    w("")
    w("namespace CovidFunctions.Dicom;")
    w("")
    w("/// <summary>")
    w("/// Every keyword of the data dictionary as a tag. Repeating groups (50xx, 60xx) give their first group: use")
    w("/// <c>DicomTags.OverlayData with { Group = 0x6002 }</c> for others. Retired attributes are marked in the summary.")
    w("/// </summary>")
    w("public static class DicomTags")
    w("{")
    first = True
    for value, keyword, vr, vm, retired, rep in rows:
        if not first:
            w("")
        first = False
        g, e = value >> 16, value & 0xFFFF
        notes = []
        if retired:
            notes.append("retired")
        if rep:
            notes.append("repeating group")
        note = f" ({', '.join(notes)})" if notes else ""
        w(f"    /// <summary>({g:04X},{e:04X}) {vr}, VM {vm}{note}.</summary>")
        w(f"    public static DicomTag {keyword} => new(0x{g:04X}, 0x{e:04X});")
    w("}")
    return "\n".join(out) + "\n"


def read_private_sequences(path):
    """Rows '(gggg,"creator",ee)' or '(gggg-o-gggg,"creator",ee)' with VR SQ -> (group_lo, group_hi, creator, element)."""
    with open(path, "rb") as f:
        raw = f.read()
    rows = set()
    for line_no, line in enumerate(raw.decode("latin-1").splitlines(), 1):
        if line.startswith("#") or not line.strip():
            continue
        fields = [x for x in line.split("\t") if x != ""]
        if len(fields) < 2 or fields[1] != "SQ":
            continue
        m = re.fullmatch(r'\(([0-9A-Fa-f]{4})(?:-o-([0-9A-Fa-f]{4}))?,"([^"]*)",([0-9A-Fa-f]{2})\)', fields[0])
        if not m:
            raise SystemExit(f"private.dic line {line_no}: bad tag {fields[0]}")
        lo = int(m.group(1), 16)
        hi = int(m.group(2), 16) if m.group(2) else lo
        rows.add((lo, hi, m.group(3), int(m.group(4), 16)))
    return raw, sorted(rows, key=lambda r: (r[2], r[0], r[3]))


def render_private(source_path, sha, rows):
    out = []
    w = out.append
    w("// <auto-generated>")
    w("// Generated by tools/dicom-dictgen/dictgen.py. Do not edit; rerun the generator.")
    w(f"// Source: {source_path} (DCMTK private tag dictionary, Debian package libdcmtk17), rows with VR SQ")
    w(f"// Source SHA-256: {sha}")
    w(f"// Rows: {len(rows)}.")
    w("// </auto-generated>")
    w("")
    w("namespace CovidFunctions.Dicom;")
    w("")
    w("internal static partial class DicomPrivateSequences")
    w("{")
    w(f"    public const int GeneratedCount = {len(rows)};")
    w("")
    w("    private static Row[] CreateRows() =>")
    w("    [")
    for lo, hi, creator, element in rows:
        w(f"        new(0x{lo:04X}, 0x{hi:04X}, {cs_string(creator)}, 0x{element:02X}),")
    w("    ];")
    w("}")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dic", default=DEFAULT_DIC)
    ap.add_argument("--private-dic", default=DEFAULT_PRIVATE_DIC)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    raw, edition, rows = read_dic(args.dic)
    if edition is None:
        raise SystemExit("no 'Generated automatically from' line in the source header")
    exact, repeating, delimiters = build(rows)
    sha = hashlib.sha256(raw).hexdigest()
    outputs = {
        OUT_DICT: render_dictionary(DEFAULT_DIC if args.dic == DEFAULT_DIC else args.dic, sha, edition, exact, repeating),
        OUT_TAGS: render_tags(edition, exact, repeating, delimiters),
    }
    private_raw, private_rows = read_private_sequences(args.private_dic)
    outputs[OUT_PRIVATE] = render_private(
        DEFAULT_PRIVATE_DIC if args.private_dic == DEFAULT_PRIVATE_DIC else args.private_dic,
        hashlib.sha256(private_raw).hexdigest(), private_rows)
    if args.check:
        stale = []
        for path, text in outputs.items():
            try:
                with open(path, encoding="utf-8", newline="") as f:
                    if f.read() != text:
                        stale.append(path)
            except FileNotFoundError:
                stale.append(path)
        if stale:
            print("stale generated files: " + ", ".join(os.path.relpath(p, REPO) for p in stale), file=sys.stderr)
            return 1
        print(f"up to date: {len(exact)} exact + {len(repeating)} repeating rows from {edition}")
        return 0
    for path, text in outputs.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    print(f"wrote {len(exact)} exact + {len(repeating)} repeating rows from {edition}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
