#!/usr/bin/python3
"""Independent side of VolumeContractTests: builds NIfTI variants of a real CT series with pydicom + nibabel and
checks covidfn's `_lesion.nii.gz` outputs with nibabel, never with the C# NIfTI code under test.

  volume_contract.py make DICOM_DIR OUT_DIR   writes the variants (see VARIANTS) and OUT_DIR/variants.json
  volume_contract.py check VARIANTS_JSON MASK_DIR REF_MASK
        REF_MASK: the mask covidfn wrote for the `lps` variant (DICOM order). For each variant with a mask in MASK_DIR
        (named <variant>_lesion.nii.gz) checks: shape, dim, pixdim, qform/sform codes and matrices equal the input's
        (the mask lies on the input's voxel grid), values 0/1, and the voxels equal the reference mask carried
        through the variant's own axis permutation and flips (no flip/transpose on the way back). Prints one line
        per variant and 'ok N' at the end; exits 1 on the first failure.
  volume_contract.py derive DICOM_DIR OUT_DIR gap|tilt|prone|localizer   a changed copy of the series (see derive)
  volume_contract.py dicom-world DICOM_DIR MASK   every DICOM slice lies on the mask grid (see dicom_world)
  volume_contract.py dicom-affine DICOM_DIR MASK
        the mask written for a DICOM input: its affine equals the one derived here from ImagePositionPatient,
        ImageOrientationPatient and PixelSpacing (LPS -> RAS), slices ordered along the normal, in DICOM pixel order.
"""
import gzip
import json
import os
import sys

import numpy as np
import nibabel as nib
import pydicom


def load_series(folder):
    """HU volume indexed [column, row, slice] (NIfTI order: i fastest) and its RAS affine, slices by IPP along the normal."""
    slices = [pydicom.dcmread(os.path.join(folder, f)) for f in sorted(os.listdir(folder))]
    iop = np.array(slices[0].ImageOrientationPatient, dtype=float)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    slices.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, dtype=float), normal)))
    hu = np.stack([d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in slices], axis=-1)
    data = np.transpose(hu, (1, 0, 2))  # [row, col, k] -> [col, row, k]
    ps = [float(v) for v in slices[0].PixelSpacing]  # row spacing, column spacing
    p0 = np.array(slices[0].ImagePositionPatient, dtype=float)
    pn = np.array(slices[-1].ImagePositionPatient, dtype=float)
    step = (pn - p0) / (len(slices) - 1) if len(slices) > 1 else normal * float(slices[0].SliceThickness)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * ps[1]
    lps[:3, 1] = col_dir * ps[0]
    lps[:3, 2] = step
    lps[:3, 3] = p0
    return data, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def transform(data, affine, perm, flips):
    """The same voxels stored with axes `perm` (new axis a = old axis perm[a]) then `flips` (new axes read backwards);
    the affine follows, so every voxel keeps its world position."""
    out = np.transpose(data, perm + list(range(3, data.ndim)))
    aff = affine[:, perm + [3]].copy()
    for a, f in enumerate(flips):
        if f:
            out = np.flip(out, axis=a)
            n = out.shape[a]
            aff[:, 3] = aff[:, 3] + aff[:, a] * (n - 1)
            aff[:, a] = -aff[:, a]
    return np.ascontiguousarray(out), aff


# name: (perm, flips, file name, how it is stored). Only `lps` is in DICOM order; the mask of each other variant must be
# the reference mask carried through its perm/flips.
VARIANTS = {
    "lps": ([0, 1, 2], [False, False, False], "lps.nii.gz", {}),
    "las": ([0, 1, 2], [False, True, False], "las.nii.gz", {}),  # dcm2niix's usual layout
    "ras": ([0, 1, 2], [True, True, False], "ras.nii", {}),  # nibabel's canonical, uncompressed
    "headfirst": ([0, 1, 2], [False, True, True], "headfirst.nii.gz", {}),
    "sagittal_first": ([2, 0, 1], [False, False, False], "sagittal_first.nii.gz", {}),
    "transposed": ([1, 0, 2], [True, False, False], "transposed.nii.gz", {}),
    "uint16_inter": ([0, 1, 2], [False, True, False], "uint16_inter.nii.gz", {"dtype": "uint16", "slope": 1.0, "inter": -1024.0}),
    "int32": ([0, 1, 2], [False, True, False], "int32.nii.gz", {"dtype": "int32"}),
    "float32": ([0, 1, 2], [False, True, False], "float32.nii.gz", {"dtype": "float32"}),
    "float64": ([0, 1, 2], [False, True, False], "float64.nii.gz", {"dtype": "float64"}),
    "slope_half": ([0, 1, 2], [False, True, False], "slope_half.nii.gz", {"dtype": "int16", "slope": 0.5, "inter": -1024.0}),
    "slope_zero": ([0, 1, 2], [False, True, False], "slope_zero.nii.gz", {"dtype": "int16", "slope": 0.0, "inter": 0.0}),
    "qform_only": ([0, 1, 2], [False, True, False], "qform_only.nii.gz", {"sform_code": 0}),
    "sform_only": ([0, 1, 2], [False, True, False], "sform_only.nii.gz", {"qform_code": 0}),
    "big_endian": ([0, 1, 2], [False, True, False], "big_endian.nii.gz", {"endian": ">"}),
    "nifti2": ([0, 1, 2], [False, True, False], "nifti2.nii.gz", {"nifti2": True}),
    "t1": ([0, 1, 2], [False, True, False], "t1.nii.gz", {"t": 1}),
    "t2": ([0, 1, 2], [False, True, False], "t2.nii.gz", {"t": 2}),
}


def make(dicom_dir, out_dir):
    data, affine = load_series(dicom_dir)
    os.makedirs(out_dir, exist_ok=True)
    listing = {}
    for name, (perm, flips, file_name, how) in VARIANTS.items():
        vox, aff = transform(data, affine, perm, flips)
        dtype = how.get("dtype", "int16")
        slope, inter = how.get("slope", 1.0), how.get("inter", 0.0)
        stored = vox if slope == 0 else (vox - inter) / slope
        if how.get("t"):
            extra = [stored] + [np.zeros_like(stored)] * (how["t"] - 1)
            stored = np.stack(extra, axis=-1)
        endian = how.get("endian", "<")
        cls = nib.Nifti2Image if how.get("nifti2") else nib.Nifti1Image
        header = (nib.Nifti2Header if how.get("nifti2") else nib.Nifti1Header)(endianness=endian)
        header.set_data_dtype(np.dtype(dtype).newbyteorder(endian))
        img = cls(np.round(stored).astype(dtype) if np.dtype(dtype).kind in "iu" else stored.astype(dtype), None, header)
        img.set_qform(aff, code=how.get("qform_code", 1))
        img.set_sform(aff, code=how.get("sform_code", 1))
        img.header["scl_slope"] = slope
        img.header["scl_inter"] = inter
        img.header.set_xyzt_units("mm", "sec")
        path = os.path.join(out_dir, file_name)
        nib.save(img, path)
        # nibabel rewrites scl_slope/scl_inter from its own scaling on save; put the asked-for values back.
        set_scaling(path, slope, inter, how.get("nifti2", False), endian)
        listing[name] = {"file": file_name, "perm": perm, "flips": flips}
    with open(os.path.join(out_dir, "variants.json"), "w") as f:
        json.dump(listing, f, indent=1)


def set_scaling(path, slope, inter, nifti2, endian):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = bytearray(f.read())
    fmt, offset = ((endian + "d", 176) if nifti2 else (endian + "f", 112))
    size = np.dtype(fmt).itemsize
    raw[offset:offset + size] = np.array([slope], dtype=fmt).tobytes()
    raw[offset + size:offset + 2 * size] = np.array([inter], dtype=fmt).tobytes()
    with opener(path, "wb") as f:
        f.write(bytes(raw))


def fail(message):
    print("FAIL " + message)
    sys.exit(1)


def header_fields(img):
    h = img.header
    return {
        "dim": [int(v) for v in h["dim"]],
        "pixdim": [float(v) for v in h["pixdim"][:4]],
        "qform_code": int(h["qform_code"]),
        "sform_code": int(h["sform_code"]),
        "qform": h.get_qform(),
        "sform": h.get_sform(),
    }


def check(variants_json, mask_dir, ref_mask):
    listing = json.load(open(variants_json))
    folder = os.path.dirname(variants_json)
    ref = np.asarray(nib.load(ref_mask).dataobj)
    if ref.sum() == 0:
        fail("the reference mask is empty: the comparison would prove nothing")
    done = 0
    for name, v in listing.items():
        mask_path = os.path.join(mask_dir, name + "_lesion.nii.gz")
        if not os.path.exists(mask_path):
            continue
        src = nib.load(os.path.join(folder, v["file"]))
        out = nib.load(mask_path)
        a, b = header_fields(src), header_fields(out)
        spatial = src.shape[:3]
        expected_shape = src.shape if (len(src.shape) < 4 or src.shape[3] == 1) else spatial
        if out.shape != expected_shape:
            fail(f"{name}: mask shape {out.shape}, input {src.shape}")
        if b["dim"][1:4] != a["dim"][1:4]:
            fail(f"{name}: dim {b['dim']} vs {a['dim']}")
        if not np.allclose(b["pixdim"][1:4], a["pixdim"][1:4], atol=1e-5) or np.sign(b["pixdim"][0] or 1) != np.sign(a["pixdim"][0] or 1):
            fail(f"{name}: pixdim {b['pixdim']} vs {a['pixdim']}")
        for key in ("qform_code", "sform_code"):
            if a[key] != b[key]:
                fail(f"{name}: {key} {b[key]} vs {a[key]}")
        if a["qform_code"] > 0 and not np.allclose(a["qform"], b["qform"], atol=1e-4):
            fail(f"{name}: qform\n{b['qform']}\nvs\n{a['qform']}")
        if a["sform_code"] > 0 and not np.allclose(a["sform"], b["sform"], atol=1e-4):
            fail(f"{name}: sform\n{b['sform']}\nvs\n{a['sform']}")
        if not np.allclose(src.affine, out.affine, atol=1e-4):
            fail(f"{name}: affine\n{out.affine}\nvs\n{src.affine}")
        got = np.asarray(out.dataobj).reshape(spatial)
        if not set(np.unique(got)).issubset({0, 1}):
            fail(f"{name}: mask values {np.unique(got)[:10]}")
        expected, _ = transform(ref.reshape(ref.shape[:3]), np.eye(4), v["perm"], v["flips"])
        if got.shape != expected.shape or not np.array_equal(got, expected):
            diff = int((got != expected).sum()) if got.shape == expected.shape else -1
            fail(f"{name}: voxels differ from the reference mask carried through perm {v['perm']} flips {v['flips']} ({diff} voxels)")
        print(f"{name}: ok ({int(got.sum())} lesion voxels)")
        done += 1
    print(f"ok {done}")


def dicom_affine(dicom_dir, mask):
    _, affine = load_series(dicom_dir)
    out = nib.load(mask)
    if not np.allclose(out.affine, affine, atol=1e-3):
        fail(f"affine\n{out.affine}\nvs pydicom-derived\n{affine}")
    if int(out.header["sform_code"]) <= 0 or int(out.header["qform_code"]) <= 0:
        fail("sform/qform codes not set")
    if not np.allclose(out.header.get_qform(), affine, atol=1e-3):
        fail(f"qform\n{out.header.get_qform()}\nvs\n{affine}")
    print("ok 1")


def derive(src_dir, dst_dir, kind):
    """A changed copy of a DICOM series: `gap` drops the middle slice, `tilt` shifts each slice 2 mm further anterior
    (y) per slice (a sheared stack, as gantry tilt gives), `prone` stores every slice rotated by 180 degrees with
    ImageOrientationPatient (-1, 0, 0, 0, -1, 0) and ImagePositionPatient at the old last pixel (the same voxels in the same
    places, stored the other way round, as a prone scan is)."""
    os.makedirs(dst_dir, exist_ok=True)
    names = sorted(os.listdir(src_dir))
    slices = sorted(((pydicom.dcmread(os.path.join(src_dir, f)), f) for f in names), key=lambda p: float(p[0].ImagePositionPatient[2]))
    if kind == "gap":
        slices = slices[:len(slices) // 2] + slices[len(slices) // 2 + 1:]
    if kind == "localizer":
        # The series as it is, plus a scout in its own series (ImageType LOCALIZER) in a subfolder.
        for ds, name in slices:
            ds.save_as(os.path.join(dst_dir, name))
        scout = slices[0][0]
        scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        scout.SeriesInstanceUID = scout.SeriesInstanceUID + ".99"
        scout.SOPInstanceUID = scout.SOPInstanceUID + ".99"
        scout.file_meta.MediaStorageSOPInstanceUID = scout.SOPInstanceUID
        scout.SeriesNumber = 1
        scout.SeriesDescription = "Topogram"
        os.makedirs(os.path.join(dst_dir, "scout"), exist_ok=True)
        scout.save_as(os.path.join(dst_dir, "scout", "topogram.dcm"))
        return
    for rank, (ds, name) in enumerate(slices):
        ipp = np.array(ds.ImagePositionPatient, dtype=float)
        if kind == "tilt":
            ipp[1] -= 2.0 * rank
        elif kind == "prone":
            iop = np.array(ds.ImageOrientationPatient, dtype=float)
            ps = [float(v) for v in ds.PixelSpacing]
            ipp = ipp + iop[:3] * ps[1] * (ds.Columns - 1) + iop[3:] * ps[0] * (ds.Rows - 1)
            ds.ImageOrientationPatient = [float(v) for v in np.concatenate([-iop[:3], -iop[3:]])]
            ds.PixelData = np.ascontiguousarray(ds.pixel_array[::-1, ::-1]).astype(ds.pixel_array.dtype).tobytes()
        ds.ImagePositionPatient = [float(v) for v in ipp]
        ds.save_as(os.path.join(dst_dir, name))


def dicom_world(dicom_dir, mask):
    """Every DICOM slice lies on the mask grid: the world positions (LPS -> RAS) of its first and last pixel map
    through the inverse of the mask's affine onto whole voxel indices inside the mask, one mask slice per DICOM slice.
    Mask slices no DICOM slice maps to must be empty."""
    out = nib.load(mask)
    inverse = np.linalg.inv(out.affine)
    data = np.asarray(out.dataobj)
    hit = set()
    for f in sorted(os.listdir(dicom_dir)):
        ds = pydicom.dcmread(os.path.join(dicom_dir, f))
        iop = np.array(ds.ImageOrientationPatient, dtype=float)
        ps = [float(v) for v in ds.PixelSpacing]
        ipp = np.array(ds.ImagePositionPatient, dtype=float)
        ks = set()
        for (c, r) in ((0, 0), (ds.Columns - 1, ds.Rows - 1), (ds.Columns - 1, 0)):
            lps = ipp + iop[:3] * ps[1] * c + iop[3:] * ps[0] * r
            ijk = (inverse @ np.append(lps * [-1, -1, 1], 1.0))[:3]
            if not np.allclose(ijk, np.round(ijk), atol=2e-3):
                fail(f"{f}: pixel ({c}, {r}) maps to voxel {ijk}, not a whole index")
            i, j, k = (int(v) for v in np.round(ijk))
            if not (0 <= i < data.shape[0] and 0 <= j < data.shape[1] and 0 <= k < data.shape[2]):
                fail(f"{f}: pixel ({c}, {r}) maps to voxel {(i, j, k)} outside the mask {data.shape}")
            ks.add(k)
        if len(ks) != 1:
            fail(f"{f}: its corners map to mask slices {sorted(ks)}")
        k = ks.pop()
        if k in hit:
            fail(f"{f}: mask slice {k} already holds another DICOM slice")
        hit.add(k)
    empty = [k for k in range(data.shape[2]) if k not in hit]
    for k in empty:
        if data[:, :, k].any():
            fail(f"mask slice {k} holds no DICOM slice but has lesion voxels")
    print(f"ok {len(hit)} slices, {len(empty)} empty")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "make":
        make(sys.argv[2], sys.argv[3])
    elif command == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4])
    elif command == "derive":
        derive(sys.argv[2], sys.argv[3], sys.argv[4])
    elif command == "dicom-world":
        dicom_world(sys.argv[2], sys.argv[3])
    elif command == "dicom-affine":
        dicom_affine(sys.argv[2], sys.argv[3])
    else:
        fail("unknown command " + command)
