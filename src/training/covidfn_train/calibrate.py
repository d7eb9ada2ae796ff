"""Test-time augmentation, decision threshold / temperature and the patient-level rule, measured on validation data.

  cd src/training && /usr/bin/python3 -m covidfn_train.calibrate --scores DIR --out DIR/calibration.json

Reads DIR/scores_ucsd-val.npz (and DIR/scores_other-val.npz when present), written by score_slices.py from the
original validation files. Nothing here looks at a test set; the UCSD official val list is our only unbiased
estimate, so every choice made on it is also scored by patient-grouped cross-validation (choose on 4/5 of the
patients, score on the other 1/5, 50 seeded repeats) to show how much of an in-sample gain is selection noise.

Patients: UCSD val images are grouped by the metadata's patient id (COVID: ucsd-COVID-CT-MetaInfo.xlsx, read with
the standard library; NonCOVID: ucsd-NonCOVID-CT-MetaInfo.csv). Several slices (figure crops) per patient: the only
labelled multi-slice groups we have from more than one patient (CC-CCII is one patient, MosMed one slice per study).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import zipfile
from xml.etree import ElementTree

import numpy as np

from .data import default_shared
from .metrics import binary

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def softmax(z: np.ndarray, t: float = 1.0) -> np.ndarray:
    z = z / t
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def read_xlsx_first_two_columns(path: str) -> list[tuple[str, str]]:
    """(column A, column B) of every row of the first sheet (shared strings resolved)."""
    z = zipfile.ZipFile(path)
    strings = ["".join(t.text or "" for t in si.iter("{%s}t" % NS["m"]))
               for si in ElementTree.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", NS)]
    rows = []
    for row in ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml")).iter("{%s}row" % NS["m"]):
        vals = {}
        for c in row.findall("m:c", NS):
            col = re.match(r"[A-Z]+", c.get("r")).group(0)
            v = c.find("m:v", NS)
            if v is None:
                continue
            vals[col] = strings[int(v.text)] if c.get("t") == "s" else v.text
        rows.append((vals.get("A", ""), vals.get("B", "")))
    return rows


def ucsd_patients(shared: str) -> dict[str, str]:
    """Item id ("ucsd/<file>") -> patient key ("COVID:<id>" / "NonCOVID:<id>")."""
    base = os.path.join(shared, "cls", "ucsd-covid-ct")
    by_name = {}
    for name, pid in read_xlsx_first_two_columns(os.path.join(base, "ucsd-COVID-CT-MetaInfo.xlsx"))[1:]:
        by_name[("COVID", name.strip())] = "COVID:" + pid.strip()
    with open(os.path.join(base, "ucsd-NonCOVID-CT-MetaInfo.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            by_name[("NonCOVID", r["image name"].strip())] = "NonCOVID:" + r["patient id"].strip()
    out = {}
    with open(os.path.join(base, "splits", "index.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            key = by_name.get((r["label"], r["original_name"]))
            # 30 COVID images have no metadata row (README): each is its own patient.
            out["ucsd/" + r["file"]] = key or f"{r['label']}:file:{r['file']}"
    return out


def slice_metrics(prob: np.ndarray, y: np.ndarray, threshold: float | None = None) -> dict:
    truth = (y == 0).astype(int)
    pred = (prob.argmax(1) == 0) if threshold is None else (prob[:, 0] >= threshold)
    return binary(pred.astype(int), truth, prob[:, 0])


def nll(prob: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(prob[np.arange(len(y)), y], 1e-12, None))))


def ece(prob: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    conf, pred = prob.max(1), prob.argmax(1)
    e = 0.0
    for lo in np.linspace(0, 1, bins, endpoint=False):
        sel = (conf > lo) & (conf <= lo + 1 / bins)
        if sel.any():
            e += sel.mean() * abs((pred[sel] == y[sel]).mean() - conf[sel].mean())
    return float(e)


def best_threshold(p: np.ndarray, truth: np.ndarray) -> float:
    """The p_covid threshold with the highest accuracy (ties: the one nearest 0.5), midpoints between scores."""
    s = np.unique(p)
    cands = np.concatenate([[0.0], (s[1:] + s[:-1]) / 2, [1.0 + 1e-9]])
    accs = np.array([((p >= t).astype(int) == truth).mean() for t in cands])
    best = np.flatnonzero(accs == accs.max())
    return float(cands[best[np.argmin(np.abs(cands[best] - 0.5))]])


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    grid = np.exp(np.linspace(math.log(0.25), math.log(8), 241))
    return float(grid[np.argmin([nll(softmax(logits, t), y) for t in grid])])


def grouped_folds(groups: np.ndarray, strat: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """k folds of whole groups, stratified by the groups' label."""
    rng = np.random.default_rng(seed)
    fold_of = {}
    for lab in np.unique(strat):
        gs = sorted({g for g, s in zip(groups, strat) if s == lab})
        rng.shuffle(gs)
        for i, g in enumerate(gs):
            fold_of[g] = i % k
    f = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(f == i) for i in range(k)]


# ---------------------------------------------------------------- patient-level rules

def study_prob(probs: np.ndarray, lesion_mean: np.ndarray, rule: str) -> np.ndarray:
    n = len(probs)
    if rule == "mean":
        return probs.mean(0)
    if rule.startswith("topk:"):
        spec = rule.split(":", 1)[1]
        k = n if spec == "all" else (max(3, math.ceil(0.1 * n)) if spec == "default" else int(spec))
        k = min(n, k)
        order = sorted(range(n), key=lambda i: (-lesion_mean[i], i))[:k]
        return probs[order].mean(0)
    if rule == "lesion-weighted":
        w = lesion_mean + 1e-6
        return (probs * w[:, None]).sum(0) / w.sum()
    if rule == "max-covid":
        return probs[int(np.argmax(probs[:, 0]))]
    raise ValueError(rule)


RULES = ["topk:default", "topk:1", "topk:2", "topk:3", "topk:5", "mean", "lesion-weighted", "max-covid"]


def patient_table(prob: np.ndarray, lesion: np.ndarray, y: np.ndarray, groups: np.ndarray, rule: str):
    keys = sorted(set(groups))
    P, Y, N = [], [], []
    for g in keys:
        idx = np.flatnonzero(groups == g)
        P.append(study_prob(prob[idx], lesion[idx], rule))
        Y.append(int(y[idx[0]]))
        N.append(len(idx))
    return np.array(P), np.array(Y), np.array(N), keys


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--scores", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", default=None)
    ap.add_argument("--repeats", type=int, default=50)
    a = ap.parse_args(argv)
    shared = a.shared or default_shared()
    res: dict = {}

    z = dict(np.load(os.path.join(a.scores, "scores_ucsd-val.npz")))
    y = z["y"]
    p_base = softmax(z["logits"])
    p_flip = softmax(z["logits_flip"])
    p_tta = 0.5 * (p_base + p_flip)
    lesion_base, lesion_tta = z["lesion_mean"], z["lesion_mean_tta"]
    truth = (y == 0).astype(int)
    res["ucsd_val_slices"] = {
        "n": int(len(y)),
        "base": slice_metrics(p_base, y),
        "flip_only": slice_metrics(p_flip, y),
        "tta_flip_mean": slice_metrics(p_tta, y),
        "nll_3class": {"base": nll(p_base, y), "tta": nll(p_tta, y)},
        "ece": {"base": ece(p_base, y), "tta": ece(p_tta, y)},
    }

    # Temperature (NLL on val) and threshold (accuracy on val): in-sample and patient-grouped CV.
    pid = ucsd_patients(shared)
    groups = np.array([pid[i] for i in z["ids"]])
    t_base = fit_temperature(z["logits"], y)
    res["temperature"] = {"fitted_on_ucsd_val": t_base,
                          "nll_before": nll(p_base, y), "nll_after": nll(softmax(z["logits"], t_base), y),
                          "ece_before": ece(p_base, y), "ece_after": ece(softmax(z["logits"], t_base), y),
                          "note": "temperature does not change the argmax label; it changes p_covid ranking only "
                                  "through the 3-class softmax (AUC) and the spread of probabilities"}
    thr = {}
    for name, p in (("base", p_base), ("tta", p_tta)):
        t_in = best_threshold(p[:, 0], truth)
        cv_acc, cv_f1, cv_acc_argmax, cv_f1_argmax, ts = [], [], [], [], []
        for rep in range(a.repeats):
            folds = grouped_folds(groups, truth, 5, seed=rep)
            pred_t = np.zeros(len(y), dtype=int)
            for f in folds:
                train = np.setdiff1d(np.arange(len(y)), f)
                t = best_threshold(p[train, 0], truth[train])
                ts.append(t)
                pred_t[f] = (p[f, 0] >= t).astype(int)
            m = binary(pred_t, truth, p[:, 0])
            cv_acc.append(m["accuracy"])
            cv_f1.append(m["f1"])
        thr[name] = {"threshold_in_sample": t_in, "in_sample": slice_metrics(p, y, t_in),
                     "grouped_cv_5fold": {"repeats": a.repeats, "accuracy_mean": float(np.mean(cv_acc)),
                                          "accuracy_sd": float(np.std(cv_acc)), "f1_mean": float(np.mean(cv_f1)),
                                          "f1_sd": float(np.std(cv_f1)), "threshold_median": float(np.median(ts)),
                                          "threshold_iqr": [float(np.percentile(ts, 25)), float(np.percentile(ts, 75))]},
                     "argmax": slice_metrics(p, y)}
    res["threshold"] = thr

    # Patient level on UCSD val.
    pats = {}
    for view, p, les in (("base", p_base, lesion_base), ("tta", p_tta, lesion_tta)):
        for rule in RULES:
            P, Y, N, keys = patient_table(p, les, y, groups, rule)
            tr = (Y == 0).astype(int)
            entry = {"argmax": binary((P.argmax(1) == 0).astype(int), tr, P[:, 0]),
                     "at_0.5": binary((P[:, 0] >= 0.5).astype(int), tr, P[:, 0])}
            # Threshold chosen by leave-one-patient-out (each patient scored with a threshold chosen on the others).
            pred = np.array([int(P[i, 0] >= best_threshold(np.delete(P[:, 0], i), np.delete(tr, i))) for i in range(len(tr))])
            entry["threshold_loo"] = binary(pred, tr, P[:, 0])
            entry["threshold_in_sample"] = best_threshold(P[:, 0], tr)
            pats[f"{view}/{rule}"] = entry
        if view == "base":
            res["patients"] = {"n": int(len(Y)), "covid": int((Y == 0).sum()), "noncovid": int((Y != 0).sum()),
                               "slices_per_patient": {"min": int(N.min()), "median": float(np.median(N)),
                                                      "max": int(N.max()), "multi_slice_patients": int((N > 1).sum())}}
    res["patient_rules"] = pats

    other = os.path.join(a.scores, "scores_other-val.npz")
    if os.path.exists(other):
        o = dict(np.load(other))
        pb, pt = softmax(o["logits"]), 0.5 * (softmax(o["logits"]) + softmax(o["logits_flip"]))
        per = {}
        for s in sorted(set(o["source"])):
            sel = o["source"] == s
            per[str(s)] = {"n": int(sel.sum()),
                           "accuracy_3class_base": float((pb[sel].argmax(1) == o["y"][sel]).mean()),
                           "accuracy_3class_tta": float((pt[sel].argmax(1) == o["y"][sel]).mean())}
            if s == "mosmed":
                per[str(s)]["covid_vs_normal_base"] = slice_metrics(pb[sel], o["y"][sel])
                per[str(s)]["covid_vs_normal_tta"] = slice_metrics(pt[sel], o["y"][sel])
            if s == "ccccii":
                # One CT scan (3133) of the one CC-CCII patient, as a study.
                for view, p, les in (("base", pb, o["lesion_mean"]), ("tta", pt, o["lesion_mean_tta"])):
                    per[str(s)][f"study_{view}"] = {r: study_prob(p[sel], les[sel], r).round(4).tolist() for r in RULES}
        res["other_val_per_source"] = per

    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)
    print(json.dumps({k: res[k] for k in ("ucsd_val_slices", "patients")}, indent=1))


if __name__ == "__main__":
    main()
