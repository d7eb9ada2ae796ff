#!/usr/bin/python3
"""Hounsfield units of single-frame CT files by independent decoders, for the tiling tests.

Usage: /usr/bin/python3 tests/peers/hu_reference.py < files.txt > out.jsonl
One JSON object per input path and line: {"file", "ok", "tool", "rows", "columns", "slope", "hu", "error"?}. "hu" is a
file (in a temporary folder this script creates; "dir" names it, the caller deletes it) holding the frame's HU as
little-endian int16, row-major as stored: the stored values through pydicom's modality LUT (Rescale Slope and
Intercept), rounded half away from zero and clamped to int16, as the tiles are written; padding (Pixel Padding Value,
up to Pixel Padding Range Limit when present) is air, -1024 HU, as the assembler writes it (PaddingHu).

Each compressed file is first made uncompressed by the same decoders, in the same order, as pixel_reference.py
(dcmtk dcmdjpeg / dcmdjpls / dcmdrle, gdcmconv --raw for JPEG 2000), then read by pydicom; native and deflated files
are read by pydicom itself.
"""
import json
import os
import sys
import tempfile

import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pixel_reference import run_tool, tools_for  # noqa: E402


def decoded(path, workdir, index):
    src = pydicom.dcmread(path, force=True)
    for tool in tools_for(str(src.file_meta.TransferSyntaxUID)):
        tmp = os.path.join(workdir, f"{index}.{tool}.dcm")
        try:
            ds = run_tool(tool, path, tmp)
            if ds is not None:
                return tool, ds, ds.pixel_array
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return "pydicom", src, src.pixel_array


def reference(path, workdir, index):
    tool, ds, stored = decoded(path, workdir, index)
    hu = apply_modality_lut(stored, ds).astype(np.float64)
    hu = np.sign(hu) * np.floor(np.abs(hu) + 0.5)
    if "PixelPaddingValue" in ds:
        low = int(ds.PixelPaddingValue)
        high = int(ds.PixelPaddingRangeLimit) if "PixelPaddingRangeLimit" in ds else low
        low, high = min(low, high), max(low, high)
        hu[(stored >= low) & (stored <= high)] = -1024
    out = os.path.join(workdir, f"{index}.hu")
    np.clip(hu, -32768, 32767).astype("<i2").tofile(out)
    return {"ok": True, "tool": tool, "rows": int(ds.Rows), "columns": int(ds.Columns),
            "slope": float(getattr(ds, "RescaleSlope", 1) or 1), "hu": out}


def main():
    workdir = tempfile.mkdtemp(prefix="covidfn-huref-")
    for index, line in enumerate(sys.stdin):
        path = line.strip()
        if not path:
            continue
        try:
            result = reference(path, workdir, index)
        except Exception as e:  # noqa: BLE001 - reported per file
            result = {"ok": False, "error": str(e)}
        result["file"] = path
        result["dir"] = workdir
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
