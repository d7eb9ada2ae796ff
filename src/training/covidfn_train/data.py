"""Data indexing, validation splits and the packed training set (.carry/).

Splits (fixed, seed 5; never the held-out test sets, which are not in ../shared/data):
- seg: 50 doctor-labelled COVID-SemiSeg train slices; 10 of them (seeded permutation) are validation for model
  selection. 400 pseudo-labelled slices (Inf-Net predictions, thresholded at >= 128) are extra training data.
- cls: UCSD official train / val lists (patient-disjoint). MosMed: study id (integer in the file name, per class
  folder) % 5 == 1 -> val; the byte-identical duplicate ct1/img0_mosmed.jpg = ct2/mosmed_img0_mosmed.jpg is dropped
  (both copies). CC-CCII CP: scan 3133 -> val, 3131/3132 -> train (ONE patient: this val set measures nothing about
  generalisation to other patients). neg-unknown: group n of nor_<n>_img_<k> (10 groups), 2 seeded groups -> val.
Labels: covid = UCSD COVID, MosMed CT-1/CT-2; cap = CC-CCII CP; normal = UCSD NonCOVID ("normal" here means
"non-COVID": that set mixes normal lungs and other diseases without per-image diagnosis), MosMed CT-0, neg-unknown.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re

import numpy as np

from . import CLASSES
from .preprocess import S, letterbox

SEED = 5
MOSMED_DUPLICATES = {"ct1/img0_mosmed.jpg", "ct2/mosmed_img0_mosmed.jpg"}


def default_shared() -> str:
    env = os.environ.get("COVIDFN_SHARED_DATA")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "..", "..", "shared", "data"))


def seg_index(shared: str) -> list[dict]:
    items = []
    tdir = os.path.join(shared, "seg", "covid-semiseg", "train")
    ids = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(tdir, "images")) if f.endswith(".jpg"))
    rng = np.random.default_rng(SEED)
    perm = [ids[i] for i in rng.permutation(len(ids))]
    val = set(perm[:10])
    for i in ids:
        items.append({"id": f"train/{i}", "image": os.path.join(tdir, "images", i + ".jpg"),
                      "mask": os.path.join(tdir, "masks", i + ".png"), "split": "val" if i in val else "train",
                      "kind": "doctor"})
    pdir = os.path.join(shared, "seg", "covid-semiseg", "pseudo")
    for f in sorted(os.listdir(os.path.join(pdir, "images"))):
        if not f.endswith(".jpg"):
            continue
        stem = os.path.splitext(f)[0]
        items.append({"id": f"pseudo/{stem}", "image": os.path.join(pdir, "images", f),
                      "mask": os.path.join(pdir, "masks", stem + ".png"), "split": "train", "kind": "pseudo"})
    return items


def cls_index(shared: str) -> list[dict]:
    items = []
    base = os.path.join(shared, "cls")
    with open(os.path.join(base, "ucsd-covid-ct", "splits", "index.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            items.append({"id": "ucsd/" + r["file"], "path": os.path.join(base, "ucsd-covid-ct", r["file"]),
                          "source": "ucsd", "label": "covid" if r["label"] == "COVID" else "normal",
                          "orig": r["label"], "split": "val" if r["split"] == "val" else "train"})
    with open(os.path.join(base, "mosmed", "index.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            if r["file"] in MOSMED_DUPLICATES:
                continue
            cls = r["class"]
            items.append({"id": "mosmed/" + r["file"], "path": os.path.join(base, "mosmed", r["file"]),
                          "source": "mosmed", "label": "normal" if cls.startswith("ct0") else "covid", "orig": cls,
                          "split": "val" if int(r["study_index"]) % 5 == 1 else "train"})
    cdir = os.path.join(base, "ccccii-cp", "CP", "0")
    for scan in sorted(os.listdir(cdir)):
        for f in sorted(os.listdir(os.path.join(cdir, scan))):
            if f.endswith(".png"):
                items.append({"id": f"ccccii/{scan}/{f}", "path": os.path.join(cdir, scan, f), "source": "ccccii",
                              "label": "cap", "orig": "CP", "split": "val" if scan == "3133" else "train"})
    ndir = os.path.join(base, "neg-unknown")
    files = sorted(f for f in os.listdir(ndir) if f.endswith(".jpg"))
    groups = sorted({int(re.match(r"nor_(\d+)_", f).group(1)) for f in files})
    rng = np.random.default_rng(SEED)
    val_groups = {groups[i] for i in rng.permutation(len(groups))[:2]}
    for f in files:
        g = int(re.match(r"nor_(\d+)_", f).group(1))
        items.append({"id": "neg/" + f, "path": os.path.join(ndir, f), "source": "neg-unknown", "label": "normal",
                      "orig": "normal", "split": "val" if g in val_groups else "train"})
    for it in items:
        it["y"] = CLASSES.index(it["label"])
    return items


# ---------------------------------------------------------------- packed set (.carry/)

def quantise(v: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(v * 255.0), 0, 255).astype(np.uint8)


def read_grey_u8(path: str) -> np.ndarray:
    """8-bit greyscale file (JPG/PNG, mode L) -> H x W uint8. PIL if present, else torchvision.io, else cv2
    (the GPU machine's Python may lack PIL)."""
    try:
        from PIL import Image
        with Image.open(path) as im:
            if im.mode != "L":
                raise ValueError(f"{path}: expected greyscale, got {im.mode}")
            return np.asarray(im).copy()
    except ImportError:
        pass
    try:
        import torch
        from torchvision.io import ImageReadMode, decode_image, read_file
        return decode_image(read_file(path), mode=ImageReadMode.GRAY)[0].numpy().copy()
    except ImportError:
        pass
    import cv2  # last resort
    a = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if a is None:
        raise IOError(path)
    return a


def jpeg_bytes(u8: np.ndarray, quality: int = 95) -> bytes:
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray(u8, mode="L").save(b, format="JPEG", quality=quality)
    return b.getvalue()


def load_pack(pack: str, smoke: bool = False, max_per_split: int | None = None):
    """Returns dict with numpy arrays (uint8 N x S x S images; float32 masks in [0,1]) and item metadata."""
    with open(os.path.join(pack, "index.json")) as fh:
        idx = json.load(fh)
    seg, cls = idx["seg"], idx["cls"]
    if smoke:
        seg = [s for s in seg if s["split"] == "val"][:2] + [s for s in seg if s["split"] == "train" and s["kind"] == "doctor"][:4] \
            + [s for s in seg if s["kind"] == "pseudo"][:2]
        pick = []
        for split in ("train", "val"):
            for lab in CLASSES:
                pick += [c for c in cls if c["split"] == split and c["label"] == lab][:3]
        cls = pick
    out = {"seg": seg, "cls": cls}
    n = len(seg)
    simg = np.zeros((n, S, S), np.float32)
    smask = np.zeros((n, S, S), np.float32)
    for i, s in enumerate(seg):
        v = (read_grey_u8(os.path.join(pack, s["image"])).astype(np.float32) / np.float32(255.0)).astype(np.float32)
        simg[i] = letterbox(v)
        m = (read_grey_u8(os.path.join(pack, s["mask"])) >= 128).astype(np.float32)
        smask[i] = letterbox(m)          # same geometric transform; soft edges, thresholded in the loss
        s["h"], s["w"] = int(v.shape[0]), int(v.shape[1])
    out["seg_img"], out["seg_mask"] = simg, smask
    cimg = np.zeros((len(cls), S, S), np.float32)
    for i, c in enumerate(cls):
        u = read_grey_u8(os.path.join(pack, c["packed"])).astype(np.float32) / np.float32(255.0)
        top, left = c["top"], c["left"]
        cimg[i, top:top + u.shape[0], left:left + u.shape[1]] = u
    out["cls_img"] = cimg
    out["cls_y"] = np.array([c["y"] for c in cls], np.int64)
    return out


def load_seg_originals(pack: str, items: list[dict]):
    """Original-resolution binary masks for validation Dice at image resolution."""
    res = []
    for s in items:
        res.append(read_grey_u8(os.path.join(pack, s["mask"])) >= 128)
    return res
