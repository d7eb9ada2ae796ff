"""Export DFSN / DTCN checkpoints (numpy .npz state dicts from run_all) to ONNX opset 17 with a dynamic batch.

  /usr/bin/python3 -m covidfn_train.export_onnx --ckpt-dir .carry/gpu-out --out models [--metrics M.json]

Writes (fp32 initialisers; every graph takes `image` N x 1 x 352 x 352 in [0, 1], lung2d-v1):
  dfsn_dtcn.onnx  frozen-backbone DTCN: outputs lesion_prob (N x 1 x 352 x 352) and class_prob (N x 3) from ONE pass
  dfsn.onnx       lesion_prob only
  dtcn.onnx       fine-tuned DTCN (own backbone): class_prob (and its own lesion_prob) - written when the checkpoint exists
and manifest.json (sha256, sizes, training commit, data, validation metrics, thresholds, preprocessing id).
Also writes parity fixtures (synthetic inputs + PyTorch fp32 outputs as .npy) when --fixtures DIR is given.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import time

import numpy as np
import torch

from . import CLASSES, PREPROCESSING_ID
from .engine import load_dtcn_members, load_npz_into
from .models import DFSN, DTCN, Combined, EnsembleCombined

OPSET = 17


class _Seg(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return torch.sigmoid(self.m.features(x)["logit"])


class _Cls(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.d = d

    def forward(self, x):
        logits, prob, _ = self.d.logits_and_prob(x)
        return torch.softmax(logits, dim=1), prob


def load_models(ckpt_dir: str):
    dfsn = DFSN()
    load_npz_into(dfsn, os.path.join(ckpt_dir, "dfsn.npz"))
    dfsn.eval()
    frozen = DTCN(dfsn)
    load_npz_into(frozen.head, os.path.join(ckpt_dir, "dtcn_frozen_head.npz"))
    frozen.eval()
    ft = None
    p = os.path.join(ckpt_dir, "dtcn_finetune.npz")
    if os.path.exists(p):
        ft = DTCN(DFSN())
        load_npz_into(ft, p)
        ft.eval()
    return dfsn, frozen, ft


def export(module: torch.nn.Module, path: str, outputs: list[str], fp16_storage: bool = False):
    x = torch.rand(2, 1, 352, 352)
    dyn = {"image": {0: "batch"}}
    for o in outputs:
        dyn[o] = {0: "batch"}
    # fp16 storage must round exactly the tensors PyTorch holds: exporting in EVAL mode folds BatchNorm into the
    # convolution weights (new values, not fp16-exact), so the fp16 graph is exported with the module in eval()
    # but TrainingMode.PRESERVE (BatchNormalization nodes kept; ONNX Runtime fuses them at load, in fp32)
    mode = torch.onnx.TrainingMode.PRESERVE if fp16_storage else torch.onnx.TrainingMode.EVAL
    with torch.no_grad():
        torch.onnx.export(module, (x,), path, opset_version=OPSET, input_names=["image"], output_names=outputs,
                          dynamic_axes=dyn, do_constant_folding=not fp16_storage, training=mode)
    import onnx
    if fp16_storage:
        m = onnx.load(path)
        fp16_initialisers(m)
        onnx.save(m, path)
    m = onnx.load(path)
    onnx.checker.check_model(m)


FP16_MIN_ELEMENTS = 4096  # the same rule as finetune_round.save_fp16: big weight tensors only, BN statistics stay fp32


def fp16_initialisers(model) -> int:
    """Stores every float initialiser of >= FP16_MIN_ELEMENTS values that fp16 holds exactly as fp16 plus a Cast
    back to fp32 (constant-folded by ONNX Runtime at load). Exact: the weights come from fp16 checkpoints
    (finetune_round.save_fp16). Returns the number of tensors converted; refuses a tensor fp16 would change."""
    import onnx
    from onnx import helper, numpy_helper
    g = model.graph
    keep, casts, n = [], [], 0
    for init in g.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and int(np.prod(init.dims)) >= FP16_MIN_ELEMENTS:
            a = numpy_helper.to_array(init)
            h = a.astype(np.float16)
            if np.array_equal(h.astype(np.float32), a):
                keep.append(numpy_helper.from_array(h, init.name + "__fp16"))
                casts.append(helper.make_node("Cast", [init.name + "__fp16"], [init.name], to=onnx.TensorProto.FLOAT,
                                              name=init.name + "__cast"))
                n += 1
                continue
            raise ValueError(f"initialiser {init.name} is not fp16-exact (max abs change "
                             f"{float(np.abs(h.astype(np.float32) - a).max())}); export fp32 instead")
        keep.append(init)
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    return n


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"], text=True, cwd=os.path.dirname(__file__)).strip()
    except Exception:
        return "unknown"


def synthetic_inputs(n: int = 3, seed: int = 11) -> np.ndarray:
    """Smooth synthetic 'CT-like' slices (body ellipse, darker lungs, bright blobs), deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:352, 0:352].astype(np.float32) / 351.0
    out = np.zeros((n, 1, 352, 352), np.float32)
    for k in range(n):
        body = (((xx - 0.5) / 0.45) ** 2 + ((yy - 0.5) / 0.35) ** 2 <= 1).astype(np.float32) * 0.55
        for cx in (0.32, 0.68):
            lung = (((xx - cx) / 0.14) ** 2 + ((yy - 0.5) / 0.24) ** 2 <= 1)
            body[lung] = 0.12
        for _ in range(4):
            cx, cy, r = rng.uniform(0.25, 0.75), rng.uniform(0.3, 0.7), rng.uniform(0.02, 0.06)
            body += 0.35 * np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))).astype(np.float32)
        body += rng.normal(0, 0.02, body.shape).astype(np.float32)
        out[k, 0] = np.clip(body, 0, 1)
    if n > 2:
        out[-1, 0, :20] = 0  # a letterbox band
    return out


def write_fixtures(fix_dir: str, models: dict, n: int = 3):
    os.makedirs(fix_dir, exist_ok=True)
    x = synthetic_inputs(n)
    np.save(os.path.join(fix_dir, "input.npy"), x)
    with torch.no_grad():
        t = torch.from_numpy(x)
        for name, (mod, outs) in models.items():
            y = mod(t)
            y = y if isinstance(y, tuple) else (y,)
            for o, v in zip(outs, y):
                np.save(os.path.join(fix_dir, f"{name}.{o}.npy"), v.float().numpy().astype(np.float32))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt-dir", default=None, help="folder with dfsn.npz, dtcn_frozen_head.npz [, dtcn_finetune.npz] (not with --members)")
    ap.add_argument("--out", default="models")
    ap.add_argument("--metrics", default=None, help="metrics.json of the training run (default: CKPT_DIR/metrics.json)")
    ap.add_argument("--fixtures", default=None, help="write parity fixtures (.npy) here")
    ap.add_argument("--data-note", default="see docs/model-card.md")
    ap.add_argument("--combined-variant", choices=["frozen", "finetune"], default="finetune",
                    help="which DTCN the one-pass graph dfsn_dtcn.onnx holds (finetune: its own fine-tuned backbone gives both outputs)")
    ap.add_argument("--graphs", default="dfsn_dtcn,dfsn,dtcn", help="comma list of graphs to write")
    ap.add_argument("--fixture-slices", type=int, default=3)
    ap.add_argument("--training-commit", default=None, help="commit of the training code that produced the checkpoints (default: HEAD)")
    ap.add_argument("--members", default=None,
                    help="comma list of fine-tuned DTCN checkpoints (finetune_round member_k.npz): dfsn_dtcn.onnx is their "
                         "mean (EnsembleCombined) instead of CKPT_DIR's checkpoints; implies --graphs dfsn_dtcn")
    ap.add_argument("--validation", default=None, help="JSON written as the manifest's validation section (evaluate.py's summary)")
    ap.add_argument("--fp16-storage", action="store_true", help="store big weight tensors as fp16 (exact for fp16 checkpoints)")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    if not a.members and not a.ckpt_dir:
        ap.error("--ckpt-dir or --members is required")
    if a.members:
        members = load_dtcn_members(a.members)
        graphs = {"dfsn_dtcn": (EnsembleCombined(members).eval(), ["lesion_prob", "class_prob"])}
        comb_src = ft = members[0]
    else:
        dfsn, frozen, ft = load_models(a.ckpt_dir)
        comb_src = ft if (a.combined_variant == "finetune" and ft is not None) else frozen
        graphs = {"dfsn_dtcn": (Combined(comb_src).eval(), ["lesion_prob", "class_prob"]),
                  "dfsn": (_Seg(dfsn).eval(), ["lesion_prob"])}
        if ft is not None:
            graphs["dtcn"] = (_Cls(ft).eval(), ["class_prob", "lesion_prob"])
    wanted = set(a.graphs.split(","))
    graphs = {k: v for k, v in graphs.items() if k in wanted}
    entries = {}
    for name, (mod, outs) in graphs.items():
        path = os.path.join(a.out, name + ".onnx")
        export(mod, path, outs, a.fp16_storage)
        holds = {"dfsn_dtcn": f"DTCN ({'fine-tuned' if comb_src is ft else 'frozen'} backbone): one pass, both outputs",
                 "dfsn": "DFSN only", "dtcn": "fine-tuned DTCN (own backbone)"}[name]
        if a.members:
            holds = (f"mean of {len(a.members.split(','))} fine-tuned DTCNs (each its own backbone pass): "
                     "lesion_prob and class_prob averaged")
        entries[name] = {"file": name + ".onnx", "sha256": sha256(path), "bytes": os.path.getsize(path),
                         "inputs": {"image": ["N", 1, 352, 352]}, "outputs": outs, "opset": OPSET,
                         "initialiser_dtype": "float16 (weights >= 4096 values, cast to float32 at load) + float32" if a.fp16_storage else "float32",
                         "holds": holds}
        if a.members:
            entries[name]["members"] = [os.path.basename(p) for p in a.members.split(",")]
        print(f"exported {path} ({os.path.getsize(path) / 1e6:.2f} MB)", flush=True)
    mpath = a.metrics or os.path.join(a.ckpt_dir or ".", "metrics.json")
    metrics = json.load(open(mpath)) if os.path.exists(mpath) else {}
    summary = summarise(metrics)
    if a.validation:
        with open(a.validation) as fh:
            summary = json.load(fh)
    elif comb_src is ft and "dtcn_finetune" in metrics and "seg_val_after_finetune" in metrics["dtcn_finetune"]:
        v = metrics["dtcn_finetune"]["seg_val_after_finetune"]
        summary["shipped_lesion_prob_segmentation_val"] = {"n": v["n"], "dice@0.5": v["dice"], "iou@0.5": v["iou"],
                                                          "note": "lesion_prob of dfsn_dtcn.onnx comes from the fine-tuned backbone"}
    if not a.validation:
        summary["shipped_class_prob"] = "dtcn_finetune" if comb_src is ft else "dtcn_frozen"
    manifest = {
        "preprocessing": PREPROCESSING_ID, "classes": list(CLASSES), "lesion_threshold": 0.5,
        "training_commit": a.training_commit or git_commit(), "export_commit": git_commit(), "exported_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "models": entries, "default_models": {"segment": "dfsn_dtcn", "classify": "dfsn_dtcn"},
        "combined_variant": a.combined_variant,
        "data": {"segmentation": "COVID-SemiSeg train (40 doctor-labelled + 200 pseudo-labelled slices); 10 doctor slices = validation",
                 "classification": "UCSD COVID-CT official train (val = official val), MosMed CT-0/1/2 (study id % 5 == 1 -> val), CC-CCII CP scans 3131/3132 (3133 -> val), neg-unknown (2 of 10 groups -> val)",
                 "note": a.data_note},
        "validation": summary,
    }
    with open(os.path.join(a.out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, default=float)
    if a.fixtures:
        write_fixtures(a.fixtures, graphs, a.fixture_slices)
    return manifest


def summarise(m: dict) -> dict:
    s = {}
    if "dfsn" in m:
        v = m["dfsn"]["val"]
        s["segmentation_val"] = {"n": v["n"], "dice@0.5": v["dice"], "iou@0.5": v["iou"],
                                 "dice_by_threshold": m["dfsn"].get("val_dice_by_threshold")}
    for k in ("dtcn_frozen", "dtcn_finetune"):
        if k in m:
            v = m[k]["val"]
            s[k] = {"ucsd_val_covid_vs_rest": v.get("ucsd_val_covid_vs_rest"), "balanced_accuracy_3class": v.get("balanced_accuracy_3class"),
                    "per_source_accuracy_3class": {src: d["accuracy_3class"] for src, d in v.get("per_source", {}).items()}}
    if "source_probe" in m:
        s["source_probe"] = m["source_probe"]
    if "env" in m:
        s["trained_on"] = {k: m["env"].get(k) for k in ("device", "gpu", "torch")}
    return s


if __name__ == "__main__":
    main()
