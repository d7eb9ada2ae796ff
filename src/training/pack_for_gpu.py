#!/usr/bin/env python3
"""Packs everything training needs into .carry/pack/ (git-ignored, <= 55 MiB; about 46 MiB) for the one GPU run.

- seg/: the COVID-SemiSeg train (50) + pseudo (400) images and masks, original bytes (JPG / PNG).
- cls/: classification images, already preprocessed by lung2d-v1 steps 1-2 (intensity + resize to fit 352),
  stored as the nh x nw resized content (no letterbox padding; offsets in index.json) as 8-bit greyscale JPEG q90
  (q95 would make the pack ~62 MiB, over the 55 MiB cap). DEVIATION from serving: values are quantised to 8 bits
  and JPEG-compressed once more after the resize (mean abs error measured and written to index.json).
- seg pseudo: every 2nd of the 400 pseudo-labelled slices (200; neighbouring slices are strongly correlated). Training augments intensity far more than that; documented in the model card.
- encoder_resnet18.npz: ImageNet ResNet-18 stem + layer1..layer3 from NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18
  0.23.1 (conv weights fp16, BN tensors fp32) and the encoder's input mean; mapping verified (encoder_verify.json).
- index.json: items, splits, labels, sources.

Usage: /usr/bin/python3 src/training/pack_for_gpu.py [--shared ../shared/data] [--out .carry/pack]
(needs `dotnet restore tools/FetchResNet18` once for the encoder weights; ~285 s of CPU here).
`--check` rebuilds nothing: it compares an existing pack with what this builder would put there (items, splits,
labels, sources, files present, segmentation bytes, encoder verified) and exits 1 naming the first differences.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from covidfn_train import data, resnet_onnx  # noqa: E402
from covidfn_train.preprocess import load_image, target_size, resize, letterbox_box  # noqa: E402

REPO = os.path.normpath(os.path.join(HERE, "..", ".."))


def pack_encoder(out: str) -> dict:
    d = resnet_onnx.find_onnx_dir()
    onnx_path = os.path.join(d, "ResNet18Onnx", "ResNet18.onnx")
    res = resnet_onnx.verify(onnx_path)
    if not res["ok"]:
        raise SystemExit(f"ResNet-18 mapping verification FAILED: {res}")
    sd = resnet_onnx.mapped_state_dict(onnx_path)
    keep = {}
    for k, v in sd.items():
        if k.startswith("layer4"):
            continue
        keep[k] = v.astype(np.float16) if v.ndim == 4 else v.astype(np.float32)
    keep["input_mean"] = resnet_onnx.input_mean(os.path.join(d, "ResNetPrepOnnx", "ResNetPreprocess.onnx"))
    np.savez(os.path.join(out, "encoder_resnet18.npz"), **keep)
    res["source"] = "NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 tools/DnnImageModels/ResNet18Onnx/ResNet18.onnx (MIT)"
    res["method"] = "node-by-node torch.functional interpreter of the ONNX graph vs torch modules with mapped weights, random 1x3x224x224 input"
    res["input_mean"] = [float(x) for x in keep["input_mean"]]
    with open(os.path.join(out, "encoder_verify.json"), "w") as fh:
        json.dump(res, fh, indent=1)
    return res


def select_items(a) -> tuple[list[dict], list[dict]]:
    """The segmentation and classification items a pack holds (paths still pointing into --shared)."""
    seg = data.seg_index(a.shared)
    pseudo = [s for s in seg if s["kind"] == "pseudo"][::a.pseudo_every]
    seg = [s for s in seg if s["kind"] == "doctor"] + pseudo
    if a.smoke:
        seg = [s for s in seg if s["split"] == "val"][:2] + [s for s in seg if s["split"] == "train"][:4] + pseudo[:2]
    cls = data.cls_index(a.shared)
    if a.smoke:
        cls = [c for sp in ("train", "val") for lab in ("covid", "cap", "normal")
               for c in [c for c in cls if c["split"] == sp and c["label"] == lab][:3]]
    return seg, cls


def seg_rel(s: dict, key: str) -> str:
    return os.path.join("seg", s["id"].split("/")[0], key + "s", os.path.basename(s[key]))


def cls_rel(c: dict) -> str:
    return os.path.join("cls", c["id"].replace("/", "__").rsplit(".", 1)[0] + ".jpg")


def check(a) -> int:
    """Does the pack at a.out hold what main() would write from a.shared? Compares item by item without decoding
    images (the classification JPEGs are deterministic from the sources: same items, same files); exits 1 with the
    first differences."""
    t0 = time.time()
    problems = []
    idx_path = os.path.join(a.out, "index.json")
    if not os.path.exists(idx_path):
        raise SystemExit(f"{idx_path}: missing (build the pack: /usr/bin/python3 src/training/pack_for_gpu.py)")
    with open(idx_path) as fh:
        idx = json.load(fh)
    seg, cls = select_items(a)
    fields = ("id", "split", "kind")
    want = [tuple(s[k] for k in fields) for s in seg]
    have = [tuple(s.get(k) for k in fields) for s in idx["seg"]]
    if want != have:
        problems.append(f"seg items differ: {len(have)} in the pack, {len(want)} from the sources; first "
                        f"{next((w, h) for w, h in zip(want + [None] * len(have), have + [None] * len(want)) if w != h)}")
    else:
        for s, p in zip(seg, idx["seg"]):
            for key in ("image", "mask"):
                f = os.path.join(a.out, p[key])
                if p[key] != seg_rel(s, key) or not os.path.isfile(f) or os.path.getsize(f) != os.path.getsize(s[key]):
                    problems.append(f"seg {s['id']} {key}: {p[key]} missing or not the source's bytes")
    fields = ("id", "split", "label", "source", "y")
    want = [tuple(c[k] for k in fields) for c in cls]
    have = [tuple(c.get(k) for k in fields) for c in idx["cls"]]
    if want != have:
        problems.append(f"cls items differ: {len(have)} in the pack, {len(want)} from the sources; first "
                        f"{next((w, h) for w, h in zip(want + [None] * len(have), have + [None] * len(want)) if w != h)}")
    else:
        for c, p in zip(cls, idx["cls"]):
            f = os.path.join(a.out, p.get("packed", ""))
            if p.get("packed") != cls_rel(c) or not os.path.isfile(f) or os.path.getsize(f) == 0:
                problems.append(f"cls {c['id']}: {p.get('packed')} missing or empty")
    enc = os.path.join(a.out, "encoder_resnet18.npz")
    if not a.smoke:
        ver = os.path.join(a.out, "encoder_verify.json")
        if not os.path.isfile(enc) or not os.path.isfile(ver) or not json.load(open(ver)).get("ok"):
            problems.append("encoder_resnet18.npz missing or its mapping not verified (encoder_verify.json)")
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(a.out) for f in fs)
    for p in problems[:10]:
        print("MISMATCH:", p, flush=True)
    state = "does NOT match" if problems else "matches"
    print(f"{a.out} {state} the sources ({len(idx['seg'])} seg + {len(idx['cls'])} cls items, {total / 2**20:.1f} MiB, "
          f"{len(problems)} problem(s), checked in {time.time() - t0:.0f} s)", flush=True)
    if problems:
        raise SystemExit(1)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=data.default_shared())
    ap.add_argument("--out", default=os.path.join(REPO, ".carry", "pack"))
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--pseudo-every", type=int, default=2, help="keep every k-th pseudo-labelled slice (size cap)")
    ap.add_argument("--smoke", action="store_true", help="a handful of items only (CI)")
    ap.add_argument("--check", action="store_true", help="compare the existing pack at --out with the sources; rebuild nothing")
    a = ap.parse_args(argv)
    if a.check:
        return check(a)
    t0 = time.time()
    if os.path.isdir(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    try:
        enc = pack_encoder(a.out)
    except FileNotFoundError as e:
        if not a.smoke:
            raise
        enc = {"skipped": str(e)}  # smoke/CI without the NuGet package: random encoder init
    print(f"encoder mapping verified: {enc}", flush=True)
    seg, cls = select_items(a)
    for s in seg:
        for key in ("image", "mask"):
            rel = seg_rel(s, key)
            os.makedirs(os.path.join(a.out, os.path.dirname(rel)), exist_ok=True)
            shutil.copyfile(s[key], os.path.join(a.out, rel))
            s[key] = rel
    err = []
    for i, c in enumerate(cls):
        v = load_image(c["path"])
        h, w = v.shape
        top, left, nh, nw = letterbox_box(h, w)
        r = resize(v, nh, nw)
        u8 = data.quantise(r)
        b = data.jpeg_bytes(u8, a.quality)
        rel = cls_rel(c)
        os.makedirs(os.path.join(a.out, "cls"), exist_ok=True)
        with open(os.path.join(a.out, rel), "wb") as fh:
            fh.write(b)
        if i % 50 == 0:
            from PIL import Image
            import io
            back = np.asarray(Image.open(io.BytesIO(b)).convert("L")).astype(np.float32) / 255.0
            err.append(float(np.abs(back - r).mean()))
        c.update({"packed": rel, "top": top, "left": left, "nh": nh, "nw": nw, "h": h, "w": w})
        del c["path"]
    idx = {"preprocessing": "lung2d-v1", "cls_storage": f"resized content, 8-bit grey JPEG q{a.quality}",
           "cls_storage_mean_abs_error_sampled": float(np.mean(err)), "seg": seg, "cls": cls}
    with open(os.path.join(a.out, "index.json"), "w") as fh:
        json.dump(idx, fh, indent=0)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(a.out) for f in fs)
    print(f"packed {len(seg)} seg + {len(cls)} cls items into {a.out}: {total / 2**20:.1f} MiB "
          f"(cls JPEG mean abs error {np.mean(err):.4f}) in {time.time() - t0:.0f} s", flush=True)
    if total > 55 * 2**20:
        raise SystemExit("pack exceeds 55 MiB")


if __name__ == "__main__":
    main()
