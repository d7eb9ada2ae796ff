"""Does the shipped classifier separate real CT slices, and does the display window matter?

Renders the axial COVID-19-NY-SBU slices (COVID-19 positive patients) and the Lung-PET-CT-Dx A0002 slices
(a lung-cancer patient, not COVID-19) from Hounsfield units to 8-bit PNG under several windows, scores every PNG
with the serving CLI (`covidfn classify`, the same graph and preprocessing as the pipeline) and reports, per window,
the labels and the slice-level AUC of p(covid), positives against negatives.

Why PNG and not the DICOM path: the CLI's DICOM path always uses the lung window of lung2d-v1; rendering the HU
ourselves is the only way to ask the graph about other windows. With the lung window the PNG scores match the DICOM
path to within 8-bit rounding. The A027284 slices lie below the lungs (the DICOM path refuses them as `no-lungs`),
so they are left out of the AUC. Negatives "in the lung range" are instances 8-24 of each A0002 series.

Usage (from the repository root, after publishing the CLI to artifacts/covidfn):
    /usr/bin/python3 -m covidfn_train.real_ct_window_sweep --covidfn artifacts/covidfn/covidfn --work /tmp/sweep
(run with PYTHONPATH=src/training). Data are read from ../shared/data and rendered outside the repository.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess

import numpy as np
import pydicom
from PIL import Image

# (level, width) in HU. "lung" is lung2d-v1's window; the wide ones approximate how the MosMed JPEGs in the
# training data look (air outside the body black, soft tissue at ~0.7 grey rather than saturated).
WINDOWS = {"lung": (-600, 1500), "w2500": (-600, 2500), "w3000": (-500, 3000)}


def hounsfield(path: str) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def auc(pos: list[float], neg: list[float]) -> float:
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--covidfn", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--data", default="../shared/data/dicom/chest-ct")
    args = ap.parse_args()

    positives = sorted(glob.glob(f"{args.data}/covid19-ny-sbu/*/axial/*.dcm"))
    negatives = sorted(glob.glob(f"{args.data}/lung-pet-ct-dx/**/*.dcm", recursive=True))
    report = {}
    for name, (level, width) in WINDOWS.items():
        root = os.path.join(args.work, name)
        for group, files in (("pos", positives), ("neg", negatives)):
            os.makedirs(os.path.join(root, group), exist_ok=True)
            for f in files:
                v = np.clip((hounsfield(f) - (level - width / 2)) / width, 0, 1)
                tag = os.path.relpath(f, args.data).replace("/", "_")[:-4]
                Image.fromarray(np.round(v * 255).astype(np.uint8)).save(os.path.join(root, group, tag + ".png"))
        out = os.path.join(args.work, name + ".json")
        subprocess.run([args.covidfn, "classify", root, "--json", out], check=True, stdout=subprocess.DEVNULL)
        items = json.load(open(out))["items"]

        def p_covid(pred):
            return [i["probabilities"]["covid"] for i in items if pred(i["path"])]

        pos = p_covid(lambda p: p.startswith("pos") and "A027284" not in p)
        neg = p_covid(lambda p: p.startswith("neg"))
        neg_lung = p_covid(lambda p: p.startswith("neg") and 8 <= int(p.rsplit("-", 1)[1][:2]) <= 24)
        labels = {g: {} for g in ("pos", "neg")}
        for i in items:
            g = i["path"][:3]
            labels[g][i["label"]] = labels[g].get(i["label"], 0) + 1
        report[name] = {
            "window": [level, width],
            "labels": labels,
            "positives": len(pos), "negatives": len(neg), "negatives_lung_range": len(neg_lung),
            "auc_all": round(auc(pos, neg), 3), "auc_lung_range": round(auc(pos, neg_lung), 3),
            "negatives_lung_range_called_covid": sum(x > 0.5 for x in neg_lung),
        }
        print(name, json.dumps(report[name]))
    with open(os.path.join(args.work, "report.json"), "w") as fh:
        json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
