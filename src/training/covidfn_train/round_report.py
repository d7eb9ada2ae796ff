"""UCSD val numbers of several scored candidates side by side, with paired bootstrap intervals against a reference.

  cd src/training && /usr/bin/python3 -m covidfn_train.round_report --ref shipped=../../.carry/scores/ensemble \
      --cand E_mean=../../.carry/scores/round4E_mean --cand U_mean=... --runs E=../../.carry/round4/E ... --out F.json

Each --ref/--cand is NAME=DIR with DIR/scores_ucsd-val.npz written by score_slices.py (original files, serving
preprocessing, view 0 = the image as is). For each candidate: accuracy / F1 / AUC (covid vs rest, argmax label,
p(covid) for AUC) and, paired over the same 118 images (bootstrap, 5,000 resamples, seed 0), the 95 % interval of
its AUC and of its AUC minus the reference's. --runs NAME=DIR adds each member's numbers on the GPU pack from
DIR/metrics.json (finetune_round.py). Writes one JSON; no image data.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from .calibrate import softmax
from .metrics import auc, binary


def load_scores(d: str) -> dict:
    z = np.load(os.path.join(d, "scores_ucsd-val.npz"), allow_pickle=True)
    return {"ids": [str(i) for i in z["ids"]], "p": softmax(z["logits"]), "covid": (z["y"] == 0).astype(int)}


def summary(s: dict) -> dict:
    return binary((s["p"].argmax(1) == 0).astype(int), s["covid"], s["p"][:, 0])


def paired_bootstrap(ref: dict, cand: dict, n: int = 5000, seed: int = 0) -> dict:
    if ref["ids"] != cand["ids"]:
        raise SystemExit("the candidates were not scored on the same images in the same order")
    rng = np.random.default_rng(seed)
    y, a, b = ref["covid"], cand["p"][:, 0], ref["p"][:, 0]
    own, diff = [], []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        if y[i].min() == y[i].max():
            continue
        ca, cb = auc(a[i], y[i]), auc(b[i], y[i])
        own.append(ca)
        diff.append(ca - cb)
    q = lambda v: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]  # noqa: E731
    return {"auc_95": q(own), "auc_minus_ref_95": q(diff), "share_auc_above_ref": float(np.mean(np.array(diff) > 0)),
            "resamples": len(own)}


def pack_members(d: str) -> list[dict]:
    with open(os.path.join(d, "metrics.json")) as fh:
        m = json.load(fh)
    out = []
    for r in m["members"]:
        u = r["val"]["ucsd_val_covid_vs_rest"]
        out.append({"seed": r["seed"], "ucsd_min_share": r["ucsd_min_share"], "steps": r["steps"],
                    "train_splits": r.get("train_splits", ["train"]), "seconds_per_step": r["seconds_per_step"],
                    "ucsd_val_pack": {k: u[k] for k in ("accuracy", "f1", "auc")},
                    "balanced_accuracy_3class_pack": r["val"]["balanced_accuracy_3class"],
                    "per_source_accuracy_3class_pack": {s: v["accuracy_3class"] for s, v in r["val"]["per_source"].items()},
                    "seg_val_dice_pack": r["seg_val_after_finetune"]["dice"]})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", required=True, help="NAME=DIR of the reference (the shipped graph)")
    ap.add_argument("--cand", action="append", default=[], help="NAME=DIR, repeatable")
    ap.add_argument("--runs", action="append", default=[], help="NAME=DIR of a finetune_round output, repeatable")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    ref_name, ref_dir = a.ref.split("=", 1)
    ref = load_scores(ref_dir)
    res = {"how": __doc__.split("\n\n")[1].strip(), "reference": {"name": ref_name, **summary(ref)}, "candidates": {}, "runs": {}}
    for spec in a.cand:
        name, d = spec.split("=", 1)
        s = load_scores(d)
        res["candidates"][name] = {**summary(s), **paired_bootstrap(ref, s)}
        c = res["candidates"][name]
        print(f"{name}: acc {c['accuracy']:.3f} F1 {c['f1']:.3f} AUC {c['auc']:.3f} [{c['auc_95'][0]:.3f}, {c['auc_95'][1]:.3f}] "
              f"minus {ref_name} [{c['auc_minus_ref_95'][0]:+.3f}, {c['auc_minus_ref_95'][1]:+.3f}]", flush=True)
    for spec in a.runs:
        name, d = spec.split("=", 1)
        res["runs"][name] = pack_members(d)
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
