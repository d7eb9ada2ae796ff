"""Python reference of the "lung2d-v1" preprocessing (docs/design/preprocessing.md).

Hand-written: no library resize. The resize is PIL's antialiased bilinear ("triangle") filter, applied
horizontally then vertically, with float64 weights/accumulation and float32 storage after each pass.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

S = 352
WINDOW_LEVEL = -600.0
WINDOW_WIDTH = 1500.0


def round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


@lru_cache(maxsize=512)
def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """n_out x n_in float64 matrix of normalised triangle-filter weights (spec step 2)."""
    f = n_in / n_out
    support = max(f, 1.0)
    m = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        c = (i + 0.5) * f
        j0 = max(0, int(math.floor(c - support + 0.5)))
        j1 = min(n_in, int(math.floor(c + support + 0.5)))
        j = np.arange(j0, j1, dtype=np.float64)
        w = np.maximum(0.0, 1.0 - np.abs((j + 0.5 - c) / support))
        s = w.sum()
        if s > 0:
            w = w / s
        m[i, j0:j1] = w
    m.setflags(write=False)
    return m


def resize(img: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Resize a 2-D float32 array to nh x nw: horizontal pass then vertical pass, float32 after each."""
    h, w = img.shape
    a = img.astype(np.float64)
    tmp = (a @ resize_matrix(w, nw).T).astype(np.float32)          # h x nw
    out = (resize_matrix(h, nh) @ tmp.astype(np.float64)).astype(np.float32)  # nh x nw
    return out


def target_size(h: int, w: int, side: int = S) -> tuple[int, int]:
    scale = side / max(h, w)
    nh = max(1, round_half_away(h * scale))
    nw = max(1, round_half_away(w * scale))
    return nh, nw


def letterbox_box(h: int, w: int, side: int = S) -> tuple[int, int, int, int]:
    """(top, left, nh, nw) of the resized image inside the side x side tensor."""
    nh, nw = target_size(h, w, side)
    return (side - nh) // 2, (side - nw) // 2, nh, nw


def intensity_from_pil(im) -> np.ndarray:
    """Step 1 for 8/16-bit raster images: float32 in [0, 1]."""
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im).astype(np.float32)
        return (a / np.float32(65535.0)).astype(np.float32)
    if im.mode == "L":
        return (np.asarray(im).astype(np.float32) / np.float32(255.0)).astype(np.float32)
    if im.mode == "LA":
        return (np.asarray(im)[..., 0].astype(np.float32) / np.float32(255.0)).astype(np.float32)
    if im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGB")
    a = np.asarray(im).astype(np.float32)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    grey = np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * b
    return (grey / np.float32(255.0)).astype(np.float32)


def intensity_from_hu(hu: np.ndarray) -> np.ndarray:
    lo = WINDOW_LEVEL - WINDOW_WIDTH / 2.0
    v = (hu.astype(np.float64) - lo) / WINDOW_WIDTH
    return np.clip(v, 0.0, 1.0).astype(np.float32)


def letterbox(v: np.ndarray, side: int = S) -> np.ndarray:
    """Steps 2-3: aspect-preserving resize to fit side, placed centred in a zero side x side canvas."""
    h, w = v.shape
    top, left, nh, nw = letterbox_box(h, w, side)
    out = np.zeros((side, side), dtype=np.float32)
    out[top:top + nh, left:left + nw] = resize(v, nh, nw)
    return out


def load_image(path: str) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        im.load()
        return intensity_from_pil(im)


def preprocess_file(path: str, side: int = S) -> np.ndarray:
    """A 2-D image file -> side x side float32 tensor slice in [0, 1]."""
    return letterbox(load_image(path), side)


def mask_to_image(prob: np.ndarray, h: int, w: int, threshold: float = 0.5) -> np.ndarray:
    """Step 5: S x S probability map -> uint8 0/255 mask of the original h x w."""
    side = prob.shape[0]
    top, left, nh, nw = letterbox_box(h, w, side)
    crop = prob[top:top + nh, left:left + nw].astype(np.float32)
    back = resize(crop, h, w)
    return np.where(back >= threshold, 255, 0).astype(np.uint8)


def prob_to_image(prob: np.ndarray, h: int, w: int) -> np.ndarray:
    side = prob.shape[0]
    top, left, nh, nw = letterbox_box(h, w, side)
    return resize(prob[top:top + nh, left:left + nw].astype(np.float32), h, w)
