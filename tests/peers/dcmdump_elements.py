#!/usr/bin/python3
"""Normalized element trees from dcmtk's dcmdump, for the peer comparison tests.

Usage: /usr/bin/python3 tests/peers/dcmdump_elements.py < files.txt > out.jsonl
One JSON object per input path and line: {"file", "ok", "rc", "error"?, "elements"}. dcmdump prints values in its
own formats, so the comparison is structural: an ELEMENT is {"t": "GGGGEEEE", "vr": "XX", "len": N or -1 (undefined)}
plus "items" (SQ: list of item element lists), "frags" (encapsulated pixel data: fragment lengths, basic offset table
first) and "s" (string VRs whose printed value is plain ASCII and not shortened: the value as printed, '\\'-joined).
dcmdump runs with +Qn so that control characters (CR LF in texts) are quoted and every element is one line; values
holding '&' (quoting) are not reported as "s". dcmdump's "??" VR (unknown tag read with implicit VR) is reported as "UN". Synthetic delimitation items that dcmdump
prints "for re-encoding" and real delimitation items are not elements and are skipped.
Runs one dcmdump process per file (4 at a time) so that each file gets its own exit status and error lines.
"""
import concurrent.futures
import json
import re
import subprocess
import sys

LINE = re.compile(r"^( *)\(([0-9a-f]{4}),([0-9a-f]{4})\) (\S\S) (.*?) *# *(u/l|\d+), *(\d+) ")
STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}


def parse(text):
    root = []
    # stack of (indent level, list to append elements to, owning element or None)
    stack = [(-1, root, None)]
    for raw in text.splitlines():
        m = LINE.match(raw)
        if not m:
            continue
        level = len(m.group(1)) // 2
        group, elem, vr, value, length = m.group(2), m.group(3), m.group(4), m.group(5), m.group(6)
        tag = (group + elem).upper()
        while stack and stack[-1][0] >= level:
            stack.pop()
        parent_level, container, owner = stack[-1]
        if tag in ("FFFEE00D", "FFFEE0DD"):
            continue
        n = -1 if length == "u/l" else int(length)
        if tag == "FFFEE000":
            if owner is None:
                continue
            if "frags" in owner:
                owner["frags"].append(n)
                continue
            item = []
            owner.setdefault("items", []).append(item)
            stack.append((level, item, None))
            continue
        node = {"t": tag, "vr": "UN" if vr == "??" else vr, "len": n}
        if vr == "SQ":
            node["items"] = []
            stack.append((level, node["items"], node))
        elif value.startswith("(PixelSequence"):
            node["frags"] = []
            stack.append((level, [], node))
        elif vr in STRING_VRS and value.startswith("[") and value.endswith("]"):
            s = value[1:-1]
            if all(0x20 <= ord(c) < 0x7F for c in s) and "&" not in s:
                node["s"] = s
        container.append(node)
    return root


def describe(path):
    proc = subprocess.run(["dcmdump", "-Un", "+E", "+Qn", path], capture_output=True, timeout=120)
    text = proc.stdout.decode("latin-1")
    errors = [x for x in proc.stderr.decode("latin-1").splitlines() if x.startswith(("E:", "F:"))]
    result = {"file": path, "ok": proc.returncode == 0 and not errors, "rc": proc.returncode}
    if errors:
        result["error"] = errors[0]
    result["elements"] = parse(text)
    return result


def main():
    paths = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for result in pool.map(describe, paths):
            sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
