#!/usr/bin/python3
"""Builds the imaging benchmark input: a 300-slice 512x512 CT study in one zip (bench only, not committed data).

The 30 real slices of ../shared/data/dicom/chest-ct/lung-pet-ct-dx/A0002-s2-b70f are replicated 10 times with
positions shifted by 240 mm per copy (8 mm spacing continues), new SOP Instance UIDs and instance numbers, all in one
series. A second, 30-slice series (the B40f reconstruction, unchanged) is added so selection has work to do.
Usage: make_study.py OUT.zip [SHARED_DATA]
"""
import glob
import io
import os
import sys
import uuid
import zipfile

import pydicom

out = sys.argv[1]
shared = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
base = os.path.join(shared, "dicom", "chest-ct", "lung-pet-ct-dx")
sharp = sorted(glob.glob(os.path.join(base, "A0002-s2-b70f", "*.dcm")))
soft = sorted(glob.glob(os.path.join(base, "A0002-s3-b40f", "*.dcm")))
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
    n = 0
    for copy in range(10):
        for path in sharp:
            ds = pydicom.dcmread(path)
            ipp = [float(v) for v in ds.ImagePositionPatient]
            ipp[2] += 240.0 * copy
            ds.ImagePositionPatient = [f"{v:.4f}" for v in ipp]
            ds.SliceLocation = f"{ipp[2]:.4f}"
            ds.InstanceNumber = str(int(ds.InstanceNumber) + 30 * copy)
            ds.SOPInstanceUID = "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, f"{ds.SOPInstanceUID}.{copy}").int)
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            buf = io.BytesIO()
            ds.save_as(buf, write_like_original=True)
            z.writestr(f"study/sharp/{n:04d}.dcm", buf.getvalue())
            n += 1
    for path in soft:
        z.write(path, f"study/soft/{os.path.basename(path)}")
print(out, os.path.getsize(out))
