#!/usr/bin/python3
"""Synthetic fixtures for tests/CovidFunctions.Imaging.Tests (owner: imaging).

Run: /usr/bin/python3 tests/data/imaging/make_fixtures.py  (numpy + PIL only; deterministic).
- resize_*.npy: an independent oracle for the triangle-filter resize: PIL Image.resize(BILINEAR) on mode "F"
  images (float64 weights and accumulation, horizontal pass first), i.e. exactly preprocessing step 2.
- decode_*: small images in each pixel layout ImageLoader reads, with the values the test expects.
"""
import os
import numpy as np
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261126)


def save(name, arr):
    np.save(os.path.join(here, name), arr)


src = rng.random((37, 53), dtype=np.float32)
save("resize_src_37x53.npy", src)
for (h, w) in [(25, 35), (70, 90), (37, 53), (5, 200), (1, 1)]:
    out = np.asarray(Image.fromarray(src, mode="F").resize((w, h), Image.BILINEAR), dtype=np.float32)
    save(f"resize_37x53_to_{h}x{w}.npy", out)

# Decode fixtures: a 6x4 pattern covering the 8-bit range.
g8 = (np.arange(24, dtype=np.uint16).reshape(4, 6) * 11).astype(np.uint8)
Image.fromarray(g8, mode="L").save(os.path.join(here, "decode_grey8.png"))
g16 = (np.arange(24, dtype=np.uint32).reshape(4, 6) * 2849).astype(np.uint16)
Image.fromarray(g16.astype(np.int32), mode="I").convert("I;16").save(os.path.join(here, "decode_grey16.png"))
rgb = np.stack([g8, 255 - g8, (g8 // 2).astype(np.uint8)], axis=-1)
rgba = np.concatenate([rgb, np.full((4, 6, 1), 7, np.uint8)], axis=-1)
Image.fromarray(rgba, mode="RGBA").save(os.path.join(here, "decode_rgba.png"))
Image.fromarray(rgb, mode="RGB").save(os.path.join(here, "decode_rgb.tif"))
Image.fromarray(g8, mode="L").save(os.path.join(here, "decode_grey8_packbits.tif"), compression="packbits")
Image.fromarray(g16.astype(np.int32), mode="I").convert("I;16").save(os.path.join(here, "decode_grey16.tif"))
Image.fromarray(rgb, mode="RGB").quantize(colors=16).save(os.path.join(here, "decode_palette.png"))
save("decode_expected_grey8.npy", g8)
save("decode_expected_grey16.npy", g16)
save("decode_expected_rgb.npy", rgb)
save("decode_expected_palette_rgb.npy",
     np.asarray(Image.open(os.path.join(here, "decode_palette.png")).convert("RGB"), dtype=np.uint8))
