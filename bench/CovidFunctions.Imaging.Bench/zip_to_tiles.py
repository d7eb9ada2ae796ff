#!/usr/bin/python3
"""The Python path of the imaging benchmark: the same work as `CovidFunctions.Imaging.Bench zip-to-tiles`,
with pydicom + numpy. Open the zip; read every header; group by (study, series); choose the axial ORIGINAL series
with the most slices; sort by ImagePositionPatient projected on the slice normal; decode pixels; HU =
stored * slope + intercept, rounded to int16; write .npy chunks of 16 slices and a JSON manifest.
Usage: zip_to_tiles.py IN.zip OUT_DIR
"""
import json
import os
import sys
import time
import zipfile

import numpy as np
import pydicom

t0 = time.perf_counter()
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
z = zipfile.ZipFile(src)
headers = []
for name in z.namelist():
    if name.endswith("/"):
        continue
    with z.open(name) as f:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:
            continue
    headers.append((name, ds))
series = {}
for name, ds in headers:
    series.setdefault((ds.StudyInstanceUID, ds.SeriesInstanceUID), []).append((name, ds))


def rank(items):
    ds = items[0][1]
    original = str(ds.ImageType[0]).upper() == "ORIGINAL"
    return (not original, -len(items), float(ds.get("SliceThickness", 1e9)))


chosen = sorted(series.values(), key=rank)[0]
iop = np.array([float(v) for v in chosen[0][1].ImageOrientationPatient])
normal = np.cross(iop[:3], iop[3:])
chosen.sort(key=lambda item: float(np.dot(normal, [float(v) for v in item[1].ImagePositionPatient])))
rows, cols = int(chosen[0][1].Rows), int(chosen[0][1].Columns)
chunks = []
buffer = []
for i, (name, _) in enumerate(chosen):
    with z.open(name) as f:
        ds = pydicom.dcmread(f)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    buffer.append(np.clip(np.round(hu), -32768, 32767).astype("<i2"))
    if len(buffer) == 16 or i == len(chosen) - 1:
        path = f"hu-{i + 1 - len(buffer):05d}.npy"
        np.save(os.path.join(out, path), np.stack(buffer))
        chunks.append({"path": path, "firstSlice": i + 1 - len(buffer), "sliceCount": len(buffer)})
        buffer = []
positions = [float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])) for _, ds in chosen]
with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump({"rows": rows, "columns": cols, "sliceCount": len(chosen), "slicePositions": positions, "chunks": chunks}, f)
print(f"python: {len(chosen)} slices, {time.perf_counter() - t0:.2f} s")
