"""Round 5 pilot (CPU): does a short SimCLR adaptation of the encoder make its layer3 features read out better on UCSD?

  cd src/training
  /usr/bin/python3 -m covidfn_train.ssl_round --pack ../../.carry/pack --out ../../.carry/round5pilot/ssl --device cpu \
      --ssl-only --ssl-budget-s 2700 --ssl-bs 64 --ssl-size 128 --threads 2
  /usr/bin/python3 -m covidfn_train.ssl_probe extract --ssl ../../.carry/round5pilot/ssl/ssl_encoder.npz --out ../../.carry/round5pilot
  /usr/bin/python3 -m covidfn_train.ssl_probe fit --out ../../.carry/round5pilot --json ../../models/training_round5cpu_pilot.json

Why: round 5 (ssl_round.py, run in session 11) spends most of a GPU budget on SimCLR -> DFSN -> DTCN. This pilot
asks the cheapest version of its question on the shared 2-core CPU: after 45 min of SimCLR at 128 px (about half the
images a 120 s H100 stage would see, at a lower resolution), is a linear read-out of the trunk's layer3 better than
the same read-out of the ImageNet trunk it started from? Both trunks are the same module (ResNet18Trunk without
layer4) loaded from the pack's encoder_resnet18.npz, one of them then through SimCLR, so SimCLR is the only
difference.

PRE-REGISTERED (written and committed before `fit` ran; the protocol is round 3's, probe_frozen.py):
- Items: the 543 UCSD images (425 train, 118 val), ORIGINAL files through lung2d-v1 (preprocess_file, as served).
- Features: global average pool of layer3 (256-d) for the image and its mirror, each trunk at two input sizes:
  128 px (the SimCLR size; bilinear resize of the 352 px tensor without antialiasing, as ssl_round.view does) and
  352 px (the serving size). Four feature sets: imagenet@128, ssl@128, imagenet@352, ssl@352.
- Head: probe_frozen.fit_logreg (L2 logistic regression, covid vs rest, classes equal in weight), rows = UCSD train
  image + mirror.
- CV on UCSD train only: patient-grouped, label-stratified 5 folds x fold seeds 0, 1, 2; C in {0.01, 0.1, 1, 10,
  100} chosen per feature set by mean pooled out-of-fold AUC (ties to the smaller C).
- Primary: delta = CV AUC(ssl) - CV AUC(imagenet), at each size. Reading fixed now: delta >= +0.02 at either size
  "supports spending the device call on round 5"; delta <= -0.02 at both sizes "argues against it"; otherwise
  "inconclusive" (round 3's fold AUC sd was ~0.05; the pooled paired difference is steadier, but 0.02 is the
  smallest difference we would act on).
- Secondary, reported only: each chosen head fitted on all of UCSD train, evaluated ONCE on the 118 UCSD val images
  (accuracy / F1 at p >= 0.5, AUC). Nothing from the pilot is shipped (a linear head on layer3 is far below the
  shipped graph: round 3 measured 0.849 CV AUC for imagenet@352).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from .data import default_shared
from .metrics import binary
from .models import ResNet18Trunk
from .preprocess import preprocess_file
from .probe_frozen import CS, SEED, choose, fit_logreg, grouped_cv, load_features, select_items, train_rows

SIZES = (128, 352)
ENCODERS = ("imagenet", "ssl")


def load_trunk(pack: str, ssl: str | None) -> tuple[ResNet18Trunk, torch.Tensor]:
    """The pack's ImageNet trunk (stem + layer1..layer3); with `ssl`, its enc.* weights from ssl_round on top."""
    trunk = ResNet18Trunk(with_layer4=False)
    with np.load(os.path.join(pack, "encoder_resnet18.npz")) as z:
        sd = {k: torch.from_numpy(z[k].astype(np.float32)) for k in z.files if k != "input_mean"}
        mean = torch.from_numpy(z["input_mean"].astype(np.float32)).view(1, 3, 1, 1)
    if ssl:
        with np.load(ssl) as z:
            sd = {k[len("enc."):]: torch.from_numpy(z[k].astype(np.float32)) if z[k].dtype.kind == "f"
                  else torch.from_numpy(z[k].copy()) for k in z.files if k.startswith("enc.")}
    missing, unexpected = trunk.load_state_dict(sd, strict=False)
    if unexpected or [k for k in missing if not k.endswith("num_batches_tracked")]:
        raise RuntimeError(f"trunk load mismatch: {missing} {unexpected}")
    return trunk.eval(), mean


@torch.no_grad()
def layer3_gap(trunk: ResNet18Trunk, mean: torch.Tensor, x: torch.Tensor, size: int) -> np.ndarray:
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    x = x.expand(-1, 3, -1, -1) * 255.0 - mean
    return trunk.forward_all(x)[3].mean((2, 3)).numpy()


def extract(a) -> None:
    torch.set_num_threads(a.threads)
    items = [it for it in select_items(a.pack, a.shared, 0) if it["source"] == "ucsd"]
    if a.limit:  # smoke test: a spread over both splits and labels
        items = items[::max(1, len(items) // a.limit)]
    os.makedirs(a.out, exist_ok=True)
    trunks = {"imagenet": load_trunk(a.pack, None), "ssl": load_trunk(a.pack, a.ssl)}
    acc: dict[str, list] = {}
    t0 = time.time()
    for s in range(0, len(items), a.bs):
        chunk = items[s:s + a.bs]
        x = torch.from_numpy(np.stack([preprocess_file(it["path"]) for it in chunk])).unsqueeze(1)
        both = torch.cat([x, torch.flip(x, dims=[3])])
        for enc, (trunk, mean) in trunks.items():
            for size in SIZES:
                f = layer3_gap(trunk, mean, both, size)
                acc.setdefault(f"{enc}@{size}", []).append(f[:len(chunk)])
                acc.setdefault(f"{enc}@{size}_flip", []).append(f[len(chunk):])
        print(f"  {s + len(chunk)}/{len(items)}  {time.time() - t0:.0f} s", flush=True)
    out = {k: np.concatenate(v) for k, v in acc.items()}
    np.savez(os.path.join(a.out, "features.npz"), ids=np.array([it["id"] for it in items]), **out)
    with open(os.path.join(a.out, "items.json"), "w") as fh:
        json.dump(items, fh)
    print("wrote", os.path.join(a.out, "features.npz"), flush=True)


def fit(a) -> None:
    torch.manual_seed(SEED)
    items, z = load_features(a.out)
    res: dict = {"how": "ssl_probe.py (pre-registered in its docstring): layer3 GAP of the ImageNet trunk and of the "
                        "SimCLR-adapted trunk, L2 logistic regression covid vs rest, patient-grouped 5-fold CV on UCSD "
                        "train (3 fold seeds), one evaluation of each chosen head on UCSD val",
                 "items": {"train": sum(it["split"] == "train" for it in items),
                           "val": sum(it["split"] == "val" for it in items)},
                 "cv": [], "chosen": {}, "val": {}}
    ssl_metrics = os.path.join(os.path.dirname(a.ssl_metrics), "metrics.json") if a.ssl_metrics else None
    if ssl_metrics and os.path.exists(ssl_metrics):
        with open(ssl_metrics) as fh:
            res["ssl_training"] = json.load(fh).get("ssl")
    val = np.array([i for i, it in enumerate(items) if it["split"] == "val"])
    train = np.array([i for i, it in enumerate(items) if it["split"] == "train"])
    truth = np.array([1 if items[i]["label"] == "covid" else 0 for i in val])
    for size in SIZES:
        for enc in ENCODERS:
            feat = f"{enc}@{size}"
            grid = []
            for c in CS:
                r = grouped_cv(items, z, feat, c, a.shared)
                grid.append(r)
                print(f"  {feat:13s} C={c:<6g} CV AUC {r['cv_auc']:.4f} acc {r['cv_accuracy']:.3f} F1 {r['cv_f1']:.3f}",
                      flush=True)
            res["cv"] += grid
            best = choose(grid)
            res["chosen"][feat] = best
            head = fit_logreg(*train_rows(items, train, z, feat, 2), best["C"])
            p = head(z[feat][val].astype(np.float64))[:, 0]
            res["val"][feat] = binary((p >= 0.5).astype(int), truth, p)
        d = res["chosen"][f"ssl@{size}"]["cv_auc"] - res["chosen"][f"imagenet@{size}"]["cv_auc"]
        res.setdefault("delta_cv_auc", {})[str(size)] = d
    deltas = list(res["delta_cv_auc"].values())
    res["reading"] = ("supports round 5" if max(deltas) >= 0.02 else
                      "argues against round 5" if max(deltas) <= -0.02 else "inconclusive")
    with open(a.json, "w") as fh:
        json.dump(res, fh, indent=1)
    print(json.dumps({"chosen": {k: (v["C"], round(v["cv_auc"], 4)) for k, v in res["chosen"].items()},
                      "delta_cv_auc": res["delta_cv_auc"], "reading": res["reading"],
                      "val": {k: {m: round(v[m], 4) for m in ("accuracy", "f1", "auc")} for k, v in res["val"].items()}},
                     indent=1))


def main(argv=None):
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=("extract", "fit"))
    ap.add_argument("--out", default=os.path.join(repo, ".carry", "round5pilot"), help="feature cache (git-ignored)")
    ap.add_argument("--pack", default=os.path.join(repo, ".carry", "pack"))
    ap.add_argument("--shared", default=None, help="../shared/data (default: data.default_shared())")
    ap.add_argument("--ssl", default=os.path.join(repo, ".carry", "round5pilot", "ssl", "ssl_encoder.npz"))
    ap.add_argument("--ssl-metrics", default=None, help="fit: the SimCLR run's ssl_encoder.npz (default: --ssl)")
    ap.add_argument("--json", default=os.path.join(repo, "models", "training_round5cpu_pilot.json"))
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="extract: about N UCSD images, spread over splits and labels (smoke test)")
    a = ap.parse_args(argv)
    a.shared = a.shared or default_shared()
    a.ssl_metrics = a.ssl_metrics or a.ssl
    {"extract": extract, "fit": fit}[a.command](a)


if __name__ == "__main__":
    main()
