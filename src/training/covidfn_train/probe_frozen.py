"""Round 3 (CPU): a linear head on FROZEN features that never saw a UCSD label, blended with the shipped ensemble.

  cd src/training
  /usr/bin/python3 -m covidfn_train.probe_frozen extract --out ../../.carry/round3cpu [--dfsn ../../.carry/gpu-out/dfsn.npz]
  /usr/bin/python3 -m covidfn_train.probe_frozen fit --out ../../.carry/round3cpu \
      --ensemble-scores ../../.carry/scores/ensemble --json ../../models/training_round3cpu_probe.json
  /usr/bin/python3 -m covidfn_train.probe_frozen bench --out ../../.carry/round3cpu [--dfsn ../../.carry/gpu-out/dfsn.npz]
      (size in fp16 MB + PyTorch CPU cost per slice, batch 1, --threads)

`fit --cv-only` runs the cross-validated selection without touching UCSD val.

Features (extract; frozen, computed once, cached in OUT/features.npz, resumable):
- ImageNet ResNet-18 (NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18, mapped by resnet_onnx.mapped_state_dict; all
  of it, layer4 = 3 blocks, which the pack's encoder_resnet18.npz lacks), input = the lung2d-v1 tensor of the
  ORIGINAL file (preprocess_file, as C# serves it) broadcast to 3 channels, x*255 - per-channel mean of the
  CNTK mean image (as the DFSN graphs do). Global average pooled layer3 (256-d) and layer4 (512-d), for the image
  and its horizontal mirror.
- optional (--dfsn): round-1 DFSN (trained on segmentation only) lesion-gated pooled features, i.e. the DTCN head's
  1,283-d vector WITHOUT the head's learnt attention and channel gate (those were trained on class labels):
  gate = lesion probability at 1/8; gated and global average pools of layer3, extra stage, fused, decoder(1/4);
  lesion mean / max / fraction > 0.5. UCSD images only, no mirror (CPU time).
Items: every "cls" entry of the pack's index.json; UCSD (train + val) all, the other sources subsampled with a seeded
permutation per (split, source, label) to --max-per-group (default 100) images (CPU time on a shared 2-core machine).

Head (fit): L2-regularised logistic regression (torch LBFGS, float64, features standardised on the training rows),
covid vs rest. Loss = weighted mean log loss + lam/2 |w|^2, C = 1/lam; weights: classes equal in total, and within a
class each source equal. Training rows: the image and its mirror (each half weight). Prediction: the un-mirrored
image only (one encoder pass at serving).
Selection (CV only, on the TRAIN split): UCSD train images grouped by patient (calibrate.ucsd_patients: metadata
patient id; images without metadata are their own patient), 5 folds stratified by label (calibrate.grouped_folds),
3 fold seeds (0, 1, 2). Held-out rows are UCSD train patients of the fold only; the non-UCSD train rows (option
"all") are always training rows. Grid: feature set in {l3, l4, l3+l4, dfsn (if extracted), l3+l4+dfsn (if
extracted)} x C in {0.01, 0.1, 1, 10, 100} x training rows in {ucsd (UCSD train only), all (all train sources)}.
Criterion: mean over the 3 seeds of the pooled out-of-fold AUC on UCSD train; ties (within 1e-4) go to the smaller
C. The chosen head is refit on all its training rows.

PRE-REGISTERED (written before UCSD val was looked at; evaluated ONCE on the 118 UCSD val images):
  1. head alone: p_head = the head's p(covid) on the un-mirrored image; label covid iff p_head >= 0.5.
  2. blend (primary): p_blend = 0.5 * p_ens(covid) + 0.5 * p_head, weight fixed at 0.5 (not tuned), where p_ens is
     the shipped graph's p(covid) (softmax of OUT-of-score_slices logits in scores_ucsd-val.npz, the mean of members
     A2 and B0); label covid iff p_blend >= 0.5 (the argmax of the two-class {covid, rest} posterior; the shipped
     rule is the 3-class argmax, reported alongside for the ensemble alone).
  Metrics: accuracy, F1, AUC for covid vs rest (metrics.binary), as validation.json computes them.
  Secondary (reported, not used for any decision): a 3-class head (same features and C, all train sources) blended
  0.5/0.5 with the ensemble's 3-class probabilities, label = 3-class argmax (the shipped rule).
  Also: the per-source check = a linear source probe (engine.linear_probe, train split -> val split, within one
  class) on the chosen features, as in the model card's "Source confounding" section.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from .calibrate import grouped_folds, softmax, ucsd_patients
from .data import cls_index, default_shared
from .engine import linear_probe, load_npz_into
from .metrics import auc, binary
from .models import DFSN, ResNet18Trunk, gated_pool
from .preprocess import preprocess_file
from .resnet_onnx import find_onnx_dir, input_mean, mapped_state_dict

SEED = 5
CS = (0.01, 0.1, 1.0, 10.0, 100.0)
FOLD_SEEDS = (0, 1, 2)


# ---------------------------------------------------------------- items and frozen encoders

def select_items(pack: str, shared: str, max_per_group: int) -> list[dict]:
    """Pack "cls" entries (ids, split, source, label), with the original file path from data.cls_index; UCSD all,
    other sources subsampled per (split, source, label)."""
    with open(os.path.join(pack, "index.json")) as fh:
        packed = json.load(fh)["cls"]
    path_of = {it["id"]: it["path"] for it in cls_index(shared)}
    rng = np.random.default_rng(SEED)
    groups: dict[tuple, list[dict]] = {}
    for c in packed:
        groups.setdefault((c["split"], c["source"], c["label"]), []).append(c)
    out = []
    for key in sorted(groups):
        g = groups[key]
        if key[1] != "ucsd" and len(g) > max_per_group:
            g = [g[i] for i in sorted(rng.permutation(len(g))[:max_per_group])]
        out += [{"id": c["id"], "path": path_of[c["id"]], "split": c["split"], "source": c["source"],
                 "label": c["label"], "y": c["y"]} for c in g]
    return out


def imagenet_trunk() -> tuple[ResNet18Trunk, torch.Tensor]:
    d = find_onnx_dir()
    sd = mapped_state_dict(os.path.join(d, "ResNet18Onnx", "ResNet18.onnx"))
    trunk = ResNet18Trunk(with_layer4=True).eval()
    missing, unexpected = trunk.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()},
                                                strict=False)
    if unexpected or [k for k in missing if not k.endswith("num_batches_tracked")]:
        raise RuntimeError(f"ResNet-18 mapping mismatch: {missing} {unexpected}")
    mean = torch.from_numpy(input_mean(os.path.join(d, "ResNetPrepOnnx", "ResNetPreprocess.onnx"))).view(1, 3, 1, 1)
    return trunk, mean


def imagenet_pools(trunk: ResNet18Trunk, mean: torch.Tensor, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """x: N x 1 x 352 x 352 in [0, 1] -> (GAP layer3 N x 256, GAP layer4 N x 512)."""
    _, _, _, l3, l4 = trunk.forward_all(x * 255.0 - mean)
    return l3.mean((2, 3)).numpy(), l4.mean((2, 3)).numpy()


def dfsn_pools(dfsn: DFSN, x: torch.Tensor) -> np.ndarray:
    f = dfsn.features(x)
    prob = torch.sigmoid(f["logit"])
    gate = F.interpolate(prob, size=f["fused"].shape[-2:], mode="bilinear", align_corners=False)
    feats = [f["l3"], f["l4"], f["fused"], f["d1"]]
    burden = torch.cat([prob.mean((2, 3)), prob.amax((2, 3)), (prob > 0.5).float().mean((2, 3))], 1)
    return torch.cat([gated_pool(t, gate) for t in feats] + [t.mean((2, 3)) for t in feats] + [burden], 1).numpy()


@torch.no_grad()
def extract(a) -> None:
    os.makedirs(a.out, exist_ok=True)
    items = select_items(a.pack, a.shared, a.max_per_group)
    if a.limit:  # smoke test only
        items = [it for it in items if it["source"] == "ucsd"][:a.limit] + [it for it in items if it["source"] != "ucsd"][:a.limit]
    with open(os.path.join(a.out, "items.json"), "w") as fh:
        json.dump(items, fh)
    from collections import Counter
    print(f"{len(items)} items:", dict(Counter(f"{i['split']}/{i['source']}/{i['label']}" for i in items)), flush=True)
    # UCSD first (the experiment needs those most), then the rest.
    order = sorted(range(len(items)), key=lambda i: (items[i]["source"] != "ucsd", i))
    part = os.path.join(a.out, "features_partial.npz")
    keys = ("l3", "l4", "l3_flip", "l4_flip")
    done, acc = 0, {k: [] for k in keys}
    if os.path.exists(part):
        with np.load(part) as z:
            done = int(z["done"])
            for k in keys:
                acc[k].append(z[k])
    trunk, mean = imagenet_trunk()
    t0 = time.time()
    for s in range(done, len(order), a.bs):
        idx = order[s:s + a.bs]
        x = torch.from_numpy(np.stack([preprocess_file(items[i]["path"]) for i in idx])).unsqueeze(1)
        l3, l4 = imagenet_pools(trunk, mean, torch.cat([x, torch.flip(x, dims=[3])]))
        n = len(idx)
        for k, v in (("l3", l3[:n]), ("l4", l4[:n]), ("l3_flip", l3[n:]), ("l4_flip", l4[n:])):
            acc[k].append(v)
        np.savez(part + ".tmp.npz", done=s + n, **{k: np.concatenate(v) for k, v in acc.items()})
        os.replace(part + ".tmp.npz", part)
        el = time.time() - t0
        print(f"  imagenet {s + n}/{len(order)}  {el:.0f} s  ({el / (s + n - done):.2f} s/image incl. mirror)", flush=True)
    feats = {k: np.concatenate(v) for k, v in acc.items()}
    inv = np.argsort(order)  # back to item order
    out = {k: v[inv] for k, v in feats.items()}
    out["ids"] = np.array([it["id"] for it in items])
    np.savez(os.path.join(a.out, "features.npz"), **out)
    print("wrote", os.path.join(a.out, "features.npz"), flush=True)
    if a.dfsn:  # separate file, written at the end: fit uses it only when complete
        ucsd = [i for i, it in enumerate(items) if it["source"] == "ucsd"]
        dfsn = DFSN()
        load_npz_into(dfsn, a.dfsn)
        dfsn.eval()
        dv = np.full((len(items), 2 * (256 + 256 + 64 + 64) + 3), np.nan, np.float32)
        t0 = time.time()
        for s in range(0, len(ucsd), a.bs):
            idx = ucsd[s:s + a.bs]
            x = torch.from_numpy(np.stack([preprocess_file(items[i]["path"]) for i in idx])).unsqueeze(1)
            dv[idx] = dfsn_pools(dfsn, x)
            print(f"  dfsn {s + len(idx)}/{len(ucsd)}  {time.time() - t0:.0f} s", flush=True)
        np.savez(os.path.join(a.out, "dfsn.npz"), ids=out["ids"], dfsn=dv)
        print("wrote", os.path.join(a.out, "dfsn.npz"), flush=True)


# ---------------------------------------------------------------- head

def fit_logreg(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float, n_classes: int = 2):
    """Weighted multinomial logistic regression, L2 on the weights (not the bias), standardised inputs.
    Returns a predict function: rows -> class probabilities."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    a = torch.from_numpy((x - mu) / sd).double()
    yt = torch.from_numpy(y).long()
    wt = torch.from_numpy(w / w.sum()).double()
    lin = torch.nn.Linear(a.shape[1], n_classes).double()
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")
    lam = 1.0 / c

    def closure():
        opt.zero_grad()
        loss = (F.cross_entropy(lin(a), yt, reduction="none") * wt).sum() + 0.5 * lam * lin.weight.pow(2).sum()
        loss.backward()
        return loss
    opt.step(closure)

    @torch.no_grad()
    def predict(xn: np.ndarray) -> np.ndarray:
        return torch.softmax(lin(torch.from_numpy((xn - mu) / sd).double()), 1).numpy()
    return predict


def balance_weights(labels: list, sources: list) -> np.ndarray:
    """Classes equal in total weight; within a class, each source equal."""
    labels, sources = np.asarray(labels), np.asarray(sources)
    w = np.zeros(len(labels))
    classes = sorted(set(labels))
    for c in classes:
        srcs = sorted(set(sources[labels == c]))
        for s in srcs:
            sel = (labels == c) & (sources == s)
            w[sel] = 1.0 / (len(classes) * len(srcs) * sel.sum())
    return w


def feature_matrix(z: dict, name: str, flip: bool = False) -> np.ndarray:
    parts = []
    for p in name.split("+"):
        if p == "dfsn":
            parts.append(z["dfsn"])  # no mirror extracted: the mirror row reuses the image's vector
        else:
            parts.append(z[p + ("_flip" if flip else "")])
    return np.concatenate(parts, 1).astype(np.float64)


def train_rows(items, rows: np.ndarray, z: dict, feat: str, n_classes: int):
    """Image + mirror rows (each half weight) of the given item rows."""
    x = np.concatenate([feature_matrix(z, feat)[rows], feature_matrix(z, feat, flip=True)[rows]])
    lab = [items[i]["label"] for i in rows]
    src = [items[i]["source"] for i in rows]
    y = np.array([0 if l == "covid" else 1 for l in lab]) if n_classes == 2 else np.array([items[i]["y"] for i in rows])
    w = balance_weights(lab, src)
    return x, np.concatenate([y, y]), np.concatenate([w, w]) * 0.5


def grouped_cv(items, z, feat: str, c: float, shared, extra_rows=None) -> dict:
    """Patient-grouped, label-stratified 5-fold CV of the covid-vs-rest head on UCSD train, for each of FOLD_SEEDS;
    held-out rows are UCSD train patients only, `extra_rows` (item indices) are always training rows."""
    pid = ucsd_patients(shared)
    ut = np.array([i for i, it in enumerate(items) if it["source"] == "ucsd" and it["split"] == "train"])
    truth = np.array([1 if items[i]["label"] == "covid" else 0 for i in ut])
    groups = np.array([pid[items[i]["id"]] for i in ut])
    xa = feature_matrix(z, feat)
    aucs, fold_aucs, accs, f1s = [], [], [], []
    for fs in FOLD_SEEDS:
        oof = np.zeros(len(ut))
        for te in grouped_folds(groups, truth, 5, fs):
            tr = np.setdiff1d(np.arange(len(ut)), te)
            rows = ut[tr] if extra_rows is None else np.concatenate([ut[tr], extra_rows])
            oof[te] = fit_logreg(*train_rows(items, rows, z, feat, 2), c)(xa[ut[te]])[:, 0]
            fold_aucs.append(auc(oof[te], truth[te]))
        m = binary((oof >= 0.5).astype(int), truth, oof)
        aucs.append(m["auc"]), accs.append(m["accuracy"]), f1s.append(m["f1"])
    return {"features": feat, "C": c, "cv_auc": float(np.mean(aucs)), "cv_auc_per_seed": [float(v) for v in aucs],
            "cv_fold_auc_mean": float(np.mean(fold_aucs)), "cv_fold_auc_sd": float(np.std(fold_aucs)),
            "cv_accuracy": float(np.mean(accs)), "cv_f1": float(np.mean(f1s))}


def cross_validate(items, z, feats, shared) -> list[dict]:
    others = np.array([i for i, it in enumerate(items) if it["source"] != "ucsd" and it["split"] == "train"])
    results = []
    for feat in feats:
        for rows_name in ("ucsd", "all"):
            if "dfsn" in feat and rows_name == "all":
                continue  # DFSN vectors were extracted for UCSD only
            for c in CS:
                t0 = time.time()
                cv = grouped_cv(items, z, feat, c, shared, None if rows_name == "ucsd" else others)
                r = {"features": feat, "train_rows": rows_name, **{k: v for k, v in cv.items() if k != "features"}}
                results.append(r)
                print(f"  {feat:14s} {rows_name:4s} C={c:<6g} CV AUC {r['cv_auc']:.3f} (folds {r['cv_fold_auc_mean']:.3f}"
                      f" +- {r['cv_fold_auc_sd']:.3f}) acc {r['cv_accuracy']:.3f} F1 {r['cv_f1']:.3f}  {time.time() - t0:.0f} s",
                      flush=True)
    return results


def choose(results: list[dict]) -> dict:
    best = max(r["cv_auc"] for r in results)
    near = [r for r in results if r["cv_auc"] >= best - 1e-4]
    return min(near, key=lambda r: r["C"])


def source_probe(items, z, feat) -> dict:
    x = feature_matrix(z, feat)
    res = {}
    for label in ("normal", "covid"):
        idx = np.array([i for i, it in enumerate(items) if it["label"] == label])
        srcs = sorted({items[i]["source"] for i in idx})
        s = np.array([srcs.index(items[i]["source"]) for i in idx])
        sp = np.array([items[i]["split"] for i in idx])
        tr, te = sp == "train", sp == "val"
        accv = linear_probe(x[idx][tr].astype(np.float32), s[tr], x[idx][te].astype(np.float32), s[te])
        maj = float(np.max(np.bincount(s[te], minlength=len(srcs))) / te.sum())
        res[label] = {"sources": srcs, "probe_val_accuracy": accv, "majority_baseline": maj,
                      "n_train": int(tr.sum()), "n_val": int(te.sum())}
    return res


def load_features(out: str) -> tuple[list[dict], dict]:
    """An extract step's items.json and features.npz, checked to be in the same order."""
    with open(os.path.join(out, "items.json")) as fh:
        items = json.load(fh)
    z = dict(np.load(os.path.join(out, "features.npz")))
    assert list(z["ids"]) == [it["id"] for it in items]
    return items, z


def fit(a) -> None:
    torch.manual_seed(SEED)
    items, z = load_features(a.out)
    if os.path.exists(os.path.join(a.out, "dfsn.npz")) and not a.no_dfsn:
        z["dfsn"] = np.load(os.path.join(a.out, "dfsn.npz"))["dfsn"]
    feats = ["l3", "l4", "l3+l4"]
    if "dfsn" in z:
        feats += ["dfsn", "l3+l4+dfsn"]
    t0 = time.time()
    results = cross_validate(items, z, feats, a.shared)
    chosen = choose(results)
    print("chosen by CV:", chosen, flush=True)
    n_items = {}
    for it in items:
        k = f"{it['split']}/{it['source']}/{it['label']}"
        n_items[k] = n_items.get(k, 0) + 1
    out = {"how": "probe_frozen.py: frozen ImageNet ResNet-18 (and round-1 DFSN) pooled features, L2 logistic "
                  "regression covid vs rest, selected by patient-grouped 5-fold CV on UCSD train (3 fold seeds)",
           "items": n_items, "grid": {"features": feats, "C": list(CS), "train_rows": ["ucsd", "all"]},
           "cv": results, "chosen": chosen, "cv_seconds": round(time.time() - t0)}
    out["source_probe_chosen_features"] = source_probe(items, z, chosen["features"]) \
        if "dfsn" not in chosen["features"] else "n/a (DFSN vectors extracted for UCSD only)"
    for f in ("l3", "l4", "l3+l4"):
        out.setdefault("source_probe", {})[f] = source_probe(items, z, f)
    if not a.cv_only:
        out["val"] = evaluate_val(a, items, z, chosen)
    with open(a.json, "w") as fh:
        json.dump(out, fh, indent=1)
    print(json.dumps({k: out[k] for k in ("chosen", "source_probe_chosen_features") if k in out}, indent=1))
    if "val" in out:
        print(json.dumps(out["val"]["summary"], indent=1))


def evaluate_val(a, items, z, chosen) -> dict:
    """The ONE evaluation on UCSD val, by the pre-registered rules (module docstring)."""
    feat = chosen["features"]
    x = feature_matrix(z, feat)
    train_sel = [i for i, it in enumerate(items) if it["split"] == "train"
                 and (chosen["train_rows"] == "all" or it["source"] == "ucsd")]
    val = [i for i, it in enumerate(items) if it["split"] == "val" and it["source"] == "ucsd"]
    head = fit_logreg(*train_rows(items, np.array(train_sel), z, feat, 2), chosen["C"])
    p_head = head(x[val])[:, 0]
    ens = np.load(os.path.join(a.ensemble_scores, "scores_ucsd-val.npz"))
    pos = {i: k for k, i in enumerate(ens["ids"])}
    order = [pos[items[i]["id"]] for i in val]
    p_ens3 = softmax(ens["logits"][order])
    assert (ens["y"][order] == np.array([items[i]["y"] for i in val])).all()
    truth = np.array([1 if items[i]["label"] == "covid" else 0 for i in val])
    p_blend = 0.5 * p_ens3[:, 0] + 0.5 * p_head
    res = {"n": len(val),
           "ensemble_shipped_argmax": binary((p_ens3.argmax(1) == 0).astype(int), truth, p_ens3[:, 0]),
           "ensemble_threshold_0.5": binary((p_ens3[:, 0] >= 0.5).astype(int), truth, p_ens3[:, 0]),
           "head_alone": binary((p_head >= 0.5).astype(int), truth, p_head),
           "blend_0.5": binary((p_blend >= 0.5).astype(int), truth, p_blend),
           "score_correlation_head_vs_ensemble": float(np.corrcoef(p_head, p_ens3[:, 0])[0, 1])}
    # Secondary: 3-class head on all train sources, 3-class blend, argmax (the shipped rule).
    if "dfsn" not in feat:
        all_train = np.array([i for i, it in enumerate(items) if it["split"] == "train"])
        head3 = fit_logreg(*train_rows(items, all_train, z, feat, 3), chosen["C"], n_classes=3)
        p3 = head3(x[val])
        pb3 = 0.5 * p_ens3 + 0.5 * p3
        res["secondary_3class_head_alone_argmax"] = binary((p3.argmax(1) == 0).astype(int), truth, p3[:, 0])
        res["secondary_3class_blend_argmax"] = binary((pb3.argmax(1) == 0).astype(int), truth, pb3[:, 0])
        # per-source: the covid-vs-rest head on the other validation sources it was not trained on
        other = {}
        for s in ("mosmed", "neg-unknown", "ccccii"):
            sel = [i for i, it in enumerate(items) if it["split"] == "val" and it["source"] == s]
            if sel:
                t = np.array([1 if items[i]["label"] == "covid" else 0 for i in sel])
                ph = head(x[sel])[:, 0]
                other[s] = binary((ph >= 0.5).astype(int), t, ph)
        res["head_alone_other_val_sources_subsampled"] = other
    targets = {"accuracy": 0.86, "f1": 0.85, "auc": 0.94}
    res["summary"] = {k: {m: round(res[k][m], 4) for m in ("accuracy", "f1", "auc")}
                      for k in ("ensemble_shipped_argmax", "head_alone", "blend_0.5")}
    res["blend_meets_targets_on_val"] = {m: bool(res["blend_0.5"][m] >= t) for m, t in targets.items()}
    return res


# ---------------------------------------------------------------- size and CPU cost

@torch.no_grad()
def bench(a) -> None:
    trunk, mean = imagenet_trunk()
    n3 = sum(p.numel() for n, p in trunk.named_parameters() if not n.startswith("layer4"))
    n4 = sum(p.numel() for n, p in trunk.named_parameters() if n.startswith("layer4"))
    b3 = sum(b.numel() for n, b in trunk.named_buffers() if not n.startswith("layer4") and "num_batches" not in n)
    b4 = sum(b.numel() for n, b in trunk.named_buffers() if n.startswith("layer4") and "num_batches" not in n)
    x = torch.rand(1, 1, 352, 352)
    res = {"params_to_layer3": n3, "params_layer4": n4, "bn_buffers_to_layer3": b3, "bn_buffers_layer4": b4,
           "fp16_MB_to_layer3": round(2 * n3 / 1e6, 2), "fp16_MB_to_layer4": round(2 * (n3 + n4) / 1e6, 2),
           "bn_buffers_fp32_MB_to_layer4": round(4 * (b3 + b4) / 1e6, 2), "threads": torch.get_num_threads()}

    def to_l3():
        e = trunk
        z = x * 255.0 - mean
        return e.layer3(e.layer2(e.layer1(e.maxpool(F.relu(e.bn1(e.conv1(z)))))))
    fns = {"torch_ms_per_slice_to_layer3_bs1": to_l3,
           "torch_ms_per_slice_to_layer4_bs1": lambda: trunk.forward_all(x * 255.0 - mean)}
    if a.dfsn:  # the round-1 DFSN branch (a second, frozen backbone next to the shipped members)
        dfsn = DFSN()
        load_npz_into(dfsn, a.dfsn)
        dfsn.eval()
        nd = sum(p.numel() for p in dfsn.parameters())
        res["params_dfsn"] = nd
        res["fp16_MB_dfsn"] = round(2 * nd / 1e6, 2)
        fns["torch_ms_per_slice_dfsn_pools_bs1"] = lambda: dfsn_pools(dfsn, x)
    ts = {k: [] for k in fns}
    for r in range(22):  # interleaved rounds (the machine is shared: load changes between blocks); 2 warm-up
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            if r >= 2:
                ts[k].append(time.perf_counter() - t)
    for k, v in ts.items():
        res[k] = {"median": round(1000 * float(np.median(v)), 1), "min": round(1000 * float(np.min(v)), 1)}
    res["how"] = "PyTorch CPU (torch.set_num_threads(--threads)), batch 1, 352x352, median and min of 20 interleaved rounds after 2 warm-up rounds (shared machine: min is the least disturbed)"
    print(json.dumps(res, indent=1))
    with open(os.path.join(a.out, "bench.json"), "w") as fh:
        json.dump(res, fh, indent=1)
    if os.path.exists(a.json):  # add to fit's results file
        with open(a.json) as fh:
            out = json.load(fh)
        out["size_and_cpu_cost"] = res
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("extract", "fit", "bench"))
    ap.add_argument("--out", default=os.path.join(repo, ".carry", "round3cpu"), help="feature cache folder (git-ignored)")
    ap.add_argument("--pack", default=os.path.join(repo, ".carry", "pack"), help="pack with index.json (item list)")
    ap.add_argument("--shared", default=None, help="../shared/data (default: data.default_shared())")
    ap.add_argument("--max-per-group", type=int, default=100,
                    help="extract: at most this many non-UCSD images per (split, source, label), seeded")
    ap.add_argument("--dfsn", default=None, help="extract: round-1 DFSN .npz for the optional DFSN features (UCSD only)")
    ap.add_argument("--limit", type=int, default=0, help="extract: smoke test on this many UCSD + other images")
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ensemble-scores", default=os.path.join(repo, ".carry", "scores", "ensemble"),
                    help="fit: score_slices.py output of the shipped ensemble (scores_ucsd-val.npz)")
    ap.add_argument("--json", default=os.path.join(repo, "models", "training_round3cpu_probe.json"))
    ap.add_argument("--no-dfsn", action="store_true", help="fit: ignore OUT/dfsn.npz")
    ap.add_argument("--cv-only", action="store_true", help="fit: selection only, no UCSD val evaluation")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    a.shared = a.shared or default_shared()
    {"extract": extract, "fit": fit, "bench": bench}[a.command](a)


if __name__ == "__main__":
    main()
