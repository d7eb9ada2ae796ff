#!/usr/bin/python3
"""Normalized element lists from pydicom, for the peer comparison tests (tests/CovidFunctions.Dicom.Tests/Peers).

Usage: /usr/bin/python3 tests/peers/pydicom_elements.py < files.txt > out.jsonl
Reads one file path per line on stdin and writes one JSON object per line on stdout:
  {"file": PATH, "ok": true, "elements": [ELEMENT...]}  or  {"file": PATH, "ok": false, "error": "..."}
The element list holds the file meta group (0002) first, then the dataset, each in file order. An ELEMENT is
  {"t": "GGGGEEEE", "vr": "XX", ...} with exactly one of
  "v":     string VRs: list of decoded values (split at '\\'; LT/ST/UT/UR are one value), trailing spaces and NULs
           trimmed, leading spaces trimmed except for LT/ST/UT; PN values with trailing empty '=' groups dropped;
           numeric binary VRs (US SS UL SL FL FD SV UV): list of numbers (non-finite as "NaN"/"Infinity"/"-Infinity");
           AT: list of "GGGGEEEE"
  "items": SQ: list of items, each a list of ELEMENT
  "len"/"sha1": other binary VRs (OB OW OF OD OL OV UN): byte length and SHA-1 of the little-endian value
  "frags"/"bot": encapsulated pixel data: [[length, sha1], ...] per fragment and the basic offset table length
Elements read with implicit VR also carry "raw": [length, sha1] of the value bytes; private data elements (not
creators) read with implicit VR have "vr": "*" and only "raw" (their VR and value type are a reader's guess).
The C# side (PeerNormalizer) builds the same shape from our reader, so the two compare with ==.
"""
import hashlib
import json
import math
import sys
import warnings

warnings.simplefilter("ignore")

import pydicom  # noqa: E402
from pydicom import config  # noqa: E402
from pydicom.tag import Tag  # noqa: E402

try:  # pydicom >= 2.3: do not raise on invalid values, we compare what is in the file
    config.settings.reading_validation_mode = config.IGNORE
except AttributeError:
    pass
# Keep UN as written in the file (pydicom's default replaces it with the dictionary VR).
config.replace_un_with_known_vr = False

STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
TEXT_VRS = {"LT", "ST", "UT"}
SINGLE_VALUED = {"LT", "ST", "UT", "UR"}
NUMERIC_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"}
WORD = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def norm_text(vr, s):
    s = s.rstrip(" \0")
    if vr not in TEXT_VRS:
        s = s.lstrip(" ")
    if vr == "PN":
        s = s.rstrip("=")
    return s


def number(x):
    x = float(x) if isinstance(x, float) else int(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
    return x


def swap(data, size):
    if size <= 1:
        return data
    b = bytearray(data)
    n = len(b) - len(b) % size
    for i in range(0, n, size):
        b[i:i + size] = b[i:i + size][::-1]
    return bytes(b)


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def fragments(data, little):
    """Items of an encapsulated pixel data value: (basic offset table length, [fragment bytes])."""
    order = "little" if little else "big"
    pos, bot, frags = 0, None, []
    while pos + 8 <= len(data):
        group = int.from_bytes(data[pos:pos + 2], order)
        elem = int.from_bytes(data[pos + 2:pos + 4], order)
        length = int.from_bytes(data[pos + 4:pos + 8], order)
        pos += 8
        if (group, elem) == (0xFFFE, 0xE0DD):
            break
        if (group, elem) != (0xFFFE, 0xE000):
            raise ValueError("bad item tag in encapsulated pixel data")
        chunk = bytes(data[pos:pos + length])
        pos += length
        if bot is None:
            bot = len(chunk)
        else:
            frags.append([len(chunk), sha1(chunk)])
    return bot or 0, frags


def element(ds, tag, little, implicit):
    raw = ds.get_item(tag)
    elem = ds[tag]
    vr = elem.VR
    out = {"t": "%08X" % int(tag), "vr": vr}
    if implicit and vr != "SQ":
        # Implicit VR: the VR is a reader's guess (dictionary, private dictionary, US/SS and OB/OW resolution).
        # Report the raw little-endian bytes too (when pydicom has not converted the element already, or it is
        # empty), so a VR disagreement can still be checked on the value.
        raw_bytes = None
        if isinstance(raw, pydicom.dataelem.RawDataElement):
            raw_bytes = bytes(raw.value) if raw.value is not None else b""
        elif elem.value is None or elem.value == "" or elem.value == b"":
            raw_bytes = b""
        if raw_bytes is not None:
            out["raw"] = [len(raw_bytes), sha1(raw_bytes)]
        if Tag(tag).is_private and not (0x0010 <= Tag(tag).element <= 0x00FF):
            out["vr"] = "*"
            return out
    if vr == "SQ":
        out["items"] = [dataset(item, little, implicit) for item in (elem.value or [])]
        return out
    value = elem.value
    if vr in STRING_VRS:
        if value is None or value == "":
            out["v"] = []
        elif isinstance(value, (list, pydicom.multival.MultiValue)):
            out["v"] = [norm_text(vr, str(v)) for v in value]
        elif vr in SINGLE_VALUED:
            out["v"] = [norm_text(vr, str(value))]
        else:
            out["v"] = [norm_text(vr, str(value))]
        if out["v"] == [""]:
            out["v"] = []
        return out
    if vr in NUMERIC_VRS:
        if value is None or value == b"" or value == "":
            out["v"] = []
        elif isinstance(value, (list, pydicom.multival.MultiValue)):
            out["v"] = [number(v) for v in value]
        elif isinstance(value, (bytes, bytearray)):
            out["len"] = len(value)
            out["sha1"] = sha1(bytes(value))
        else:
            out["v"] = [number(value)]
        return out
    if vr == "AT":
        if value is None or value == "":
            out["v"] = []
        elif isinstance(value, (list, pydicom.multival.MultiValue)):
            out["v"] = ["%08X" % int(v) for v in value]
        else:
            out["v"] = ["%08X" % int(value)]
        return out
    data = raw.value if isinstance(raw, pydicom.dataelem.RawDataElement) else value
    if data is None:
        data = b""
    if isinstance(data, str):
        data = data.encode("latin-1", "replace")
    data = bytes(data)
    if int(tag) == 0x7FE00010 and elem.is_undefined_length:
        bot, frags = fragments(data, little)
        out["bot"] = bot
        out["frags"] = frags
        return out
    if not little:
        data = swap(data, WORD.get(vr, 1))
    out["len"] = len(data)
    out["sha1"] = sha1(data)
    return out


def dataset(ds, little, implicit):
    return [element(ds, tag, little, implicit) for tag in list(ds.keys())]


def describe(path):
    ds = pydicom.dcmread(path, force=True)
    little = ds.is_little_endian if ds.is_little_endian is not None else True
    meta = dataset(ds.file_meta, True, False) if getattr(ds, "file_meta", None) is not None else []
    body = dataset(ds, little, bool(ds.is_implicit_VR))
    return {"file": path, "ok": True, "elements": meta + body}


def main():
    for line in sys.stdin:
        path = line.rstrip("\n")
        if not path:
            continue
        try:
            result = describe(path)
        except Exception as e:  # noqa: BLE001 - any failure is reported per file
            result = {"file": path, "ok": False, "error": "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")}
            # pydicom cannot use an explicit UN Specific Character Set unless it replaces UN with the dictionary VR:
            # retry that way and say so ("un_replaced"), so the comparison can allow for it.
            config.replace_un_with_known_vr = True
            try:
                result = describe(path)
                result["un_replaced"] = True
            except Exception:  # noqa: BLE001
                pass
            finally:
                config.replace_un_with_known_vr = False
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
