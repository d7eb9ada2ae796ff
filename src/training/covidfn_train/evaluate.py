"""Validation numbers of the weights that are exported, through the serving preprocessing (not the GPU pack).

  cd src/training && /usr/bin/python3 -m covidfn_train.evaluate --ckpt A.npz[,B.npz] --scores DIR \
      --calibration DIR/calibration.json --out DIR/validation.json

- Segmentation: the 10 validation slices of the COVID-SemiSeg train split (data.seg_index), each read from its
  original file with preprocess_file (lung2d-v1, as C# does), the lesion map mapped back to the image size
  (prob_to_image) and compared with the doctor's mask: Dice / IoU at 0.3-0.6.
- Classification: scores_ucsd-val.npz / scores_other-val.npz written by score_slices.py for the same weights
  (original files, serving preprocessing), summarised per source; calibration.json (calibrate.py) gives the
  patient-level rule numbers.
The result is the manifest's "validation" section (export_onnx --validation).
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

from .calibrate import softmax
from .data import default_shared, seg_index
from .metrics import binary, dice_iou
from .preprocess import preprocess_file, prob_to_image
from .score_slices import load_dtcn


@torch.no_grad()
def segmentation(model, shared: str) -> dict:
    items = [s for s in seg_index(shared) if s["split"] == "val"]
    gts = [np.asarray(g) for g in _masks(items)]
    res = {}
    probs = []
    for it, gt in zip(items, gts):
        x = torch.from_numpy(preprocess_file(it["image"]))[None, None]
        _, p, _ = model.logits_and_prob(x)
        probs.append(prob_to_image(p[0, 0].numpy(), gt.shape[0], gt.shape[1]))
    for t in (0.3, 0.4, 0.5, 0.6):
        d = [dice_iou(p >= t, g) for p, g in zip(probs, gts)]
        res[str(t)] = {"dice": float(np.mean([v[0] for v in d])), "iou": float(np.mean([v[1] for v in d]))}
    return {"n": len(items), "by_threshold": res, "dice@0.5": res["0.5"]["dice"], "iou@0.5": res["0.5"]["iou"],
            "ids": [it["id"] for it in items]}


def _masks(items):
    from PIL import Image
    out = []
    for it in items:
        with Image.open(it["mask"]) as im:
            out.append(np.asarray(im.convert("L")) >= 128)
    return out


def classification(scores: str) -> dict:
    res = {}
    z = dict(np.load(os.path.join(scores, "scores_ucsd-val.npz")))
    p = softmax(z["logits"])
    truth = (z["y"] == 0).astype(int)
    res["ucsd_val_covid_vs_rest"] = binary((p.argmax(1) == 0).astype(int), truth, p[:, 0])
    per = {"ucsd": float((p.argmax(1) == z["y"]).mean())}
    other = os.path.join(scores, "scores_other-val.npz")
    allp, ally = [p], [z["y"]]
    if os.path.exists(other):
        o = dict(np.load(other))
        po = softmax(o["logits"])
        allp.append(po)
        ally.append(o["y"])
        for s in sorted(set(o["source"])):
            sel = o["source"] == s
            per[str(s)] = float((po[sel].argmax(1) == o["y"][sel]).mean())
    P, Y = np.concatenate(allp), np.concatenate(ally)
    accs = [float((P[Y == c].argmax(1) == c).mean()) for c in range(3) if (Y == c).any()]
    res["balanced_accuracy_3class"] = float(np.mean(accs))
    res["per_source_accuracy_3class"] = per
    res["confusion_3class"] = [[int(((Y == a) & (P.argmax(1) == b)).sum()) for b in range(3)] for a in range(3)]
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True, help="checkpoint or comma list of members (scored as their mean)")
    ap.add_argument("--scores", required=True, help="score_slices.py output folder for the same weights")
    ap.add_argument("--calibration", default=None, help="calibrate.py output for the same scores")
    ap.add_argument("--shared", default=None)
    ap.add_argument("--note", default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    shared = a.shared or default_shared()
    model = load_dtcn(a.ckpt)
    out = {"how": "original validation files through the serving preprocessing (lung2d-v1), weights as exported",
           "weights": [os.path.basename(p) for p in a.ckpt.split(",")],
           "segmentation_val": segmentation(model, shared), "classification_val": classification(a.scores)}
    if a.calibration and os.path.exists(a.calibration):
        cal = json.load(open(a.calibration))
        out["classification_val"]["ucsd_val_flip_tta"] = cal["ucsd_val_slices"]["tta_flip_mean"]
        out["patients_ucsd_val"] = cal.get("patients")
        out["patient_rules"] = {k: cal["patient_rules"][k] for k in ("base/topk:default", "base/mean") if k in cal.get("patient_rules", {})}
    if a.note:
        out["note"] = a.note
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print(json.dumps({"segmentation_val": {k: out["segmentation_val"][k] for k in ("n", "dice@0.5", "iou@0.5")},
                      "ucsd": out["classification_val"]["ucsd_val_covid_vs_rest"]}, indent=1))
    return out


if __name__ == "__main__":
    main()
