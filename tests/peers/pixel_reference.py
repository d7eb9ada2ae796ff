#!/usr/bin/python3
"""Reference decodes of encapsulated pixel data by independent decoders, for the pixel codec tests.

Usage: /usr/bin/python3 tests/peers/pixel_reference.py < files.txt > out.jsonl
One JSON object per input path and line: {"file", "ok", "tool", "photometric", "raw", "frame_bytes", "error"?}.
"raw" is a file (in a temporary folder this script creates; "dir" names it, the caller deletes it) holding every
frame as native pixel data would: little-endian samples, interleaved (Planar Configuration 0), and for Bits
Allocated 1 each frame bit-packed on its own (least significant bit first, starting at bit 0).

The decoders, tried in order per transfer syntax, each writing an uncompressed copy that pydicom then reads:
- JPEG (1.2.840.10008.1.2.4.5x/.70): dcmtk dcmdjpeg (IJG; converts YBR to RGB), then gdcmconv --raw;
- JPEG-LS (.80/.81): dcmtk dcmdjpls (CharLS fork), then gdcmconv --raw;
- RLE (1.2.840.10008.1.2.5): dcmtk dcmdrle, then gdcmconv --raw (gdcm 3.0 mis-orders 16/32-bit RGB RLE);
- JPEG 2000 (.90/.91): gdcmconv --raw (OpenJPEG), then pydicom's own handlers;
- anything else, and when the tools fail: pydicom's own handlers.
pydicom 2.3 decodes neither RLE nor deflated frames with Bits Allocated 1; for pydicom-data's liver_*_rle and
liver_*_deflate the reference is the native sibling file (liver.dcm, liver_nonbyte_aligned.dcm) they were made from,
and for *_too_short.dcm (sequence delimiter cut off, which pydicom cannot read) the complete file.
Files are read with force=True: some corpus files are bare datasets without the Part 10 preamble.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pydicom

JPEG = ("dcmdjpeg", "gdcmconv")
TOOLS = {
    "1.2.840.10008.1.2.4.80": ("dcmdjpls", "gdcmconv"),
    "1.2.840.10008.1.2.4.81": ("dcmdjpls", "gdcmconv"),
    "1.2.840.10008.1.2.5": ("dcmdrle", "gdcmconv"),
    "1.2.840.10008.1.2.4.90": ("gdcmconv",),
    "1.2.840.10008.1.2.4.91": ("gdcmconv",),
}


def tools_for(uid):
    if uid.startswith("1.2.840.10008.1.2.4.5") or uid == "1.2.840.10008.1.2.4.70":
        return JPEG
    return TOOLS.get(uid, ())


def run_tool(tool, src, dst):
    args = [tool, "--raw", src, dst] if tool == "gdcmconv" else [tool, src, dst]
    result = subprocess.run(args, capture_output=True, timeout=300)
    if result.returncode != 0 or not os.path.exists(dst):
        return None
    ds = pydicom.dcmread(dst, force=True)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return None
    return ds


def native_sibling(path):
    """The file a derived test file was made from: liver_*_rle/_deflate -> liver*.dcm, *_too_short -> the whole file."""
    name = os.path.basename(path)
    for suffix, prefix in (("_rle.dcm", "liver"), ("_deflate.dcm", "liver"), ("_too_short.dcm", "")):
        if name.startswith(prefix) and name.endswith(suffix):
            sibling = os.path.join(os.path.dirname(path), name[: -len(suffix)] + ".dcm")
            if os.path.exists(sibling):
                return sibling
    return None


def write_frames(ds, expected, out):
    arr = ds.pixel_array
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames == 1:
        arr = arr[None, ...]
    bits = int(ds.BitsAllocated)
    if bits != int(expected.BitsAllocated) or int(ds.Rows) != int(expected.Rows) or int(ds.Columns) != int(expected.Columns):
        raise ValueError("reference has another pixel layout")
    dtype = {1: np.uint8, 8: np.uint8, 16: np.uint16, 32: np.uint32}[bits]
    with open(out, "wb") as f:
        for i in range(frames):
            a = np.ascontiguousarray(arr[i])
            if bits == 1:
                f.write(np.packbits(a.astype(np.uint8).ravel(), bitorder="little").tobytes())
            elif a.dtype.itemsize == np.dtype(dtype).itemsize:
                f.write(a.astype(a.dtype.newbyteorder("<")).view(dtype).tobytes())
            else:
                f.write(a.astype(dtype).tobytes())
    return frames


def reference(path, workdir, index):
    src = pydicom.dcmread(path, force=True)
    uid = str(src.file_meta.TransferSyntaxUID)
    out = os.path.join(workdir, f"{index}.raw")
    errors = []
    for tool in tools_for(uid):
        tmp = os.path.join(workdir, f"{index}.{tool}.dcm")
        try:
            ds = run_tool(tool, path, tmp)
            if ds is not None:
                frames = write_frames(ds, src, out)
                return {"ok": True, "tool": tool, "photometric": str(ds.PhotometricInterpretation), "raw": out, "frames": frames}
            errors.append(f"{tool}: failed")
        except Exception as e:  # noqa: BLE001 - a failing peer is reported, the next one tried
            errors.append(f"{tool}: {e}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    sibling = native_sibling(path)
    candidates = [("pydicom", path)] + ([("native-sibling", sibling)] if sibling else [])
    for tool, candidate in candidates:
        try:
            ds = pydicom.dcmread(candidate, force=True)
            frames = write_frames(ds, src, out)
            return {"ok": True, "tool": tool, "photometric": str(ds.PhotometricInterpretation), "raw": out, "frames": frames}
        except Exception as e:  # noqa: BLE001
            errors.append(f"{tool}: {e}")
    return {"ok": False, "error": "; ".join(errors)}


def main():
    workdir = tempfile.mkdtemp(prefix="covidfn-pixref-")
    for index, line in enumerate(sys.stdin):
        path = line.strip()
        if not path:
            continue
        try:
            result = reference(path, workdir, index)
        except Exception as e:  # noqa: BLE001
            result = {"ok": False, "error": str(e)}
        result["file"] = path
        result["dir"] = workdir
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
