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

# Compressed TIFF fixtures (LZW and Deflate with Predictor 2, as libtiff writes them through PIL): a 257x131 pattern
# with a closed form, v = (x*x + 3*y*y + x*y) % 251, so the C# test recomputes the expected pixels without an oracle
# file. Big enough for the LZW code width to reach 12 bits and the table to be cleared, and (16-bit, RGB) to span
# two strips.
ty, tx = np.mgrid[0:131, 0:257].astype(np.int64)
tv = ((tx * tx + 3 * ty * ty + tx * ty) % 251).astype(np.uint8)
Image.fromarray(tv, mode="L").save(os.path.join(here, "decode_grey8_lzw_predictor.tif"),
                                   compression="tiff_lzw", tiffinfo={317: 2, 278: 16})
t16 = ((tv.astype(np.int64) * 257 + tx * 11) % 65536).astype(np.uint16)
Image.fromarray(t16.astype(np.int32), mode="I").convert("I;16").save(
    os.path.join(here, "decode_grey16_deflate_predictor.tif"), compression="tiff_adobe_deflate", tiffinfo={317: 2, 278: 16})
trgb = np.stack([tv, 255 - tv, ((tv.astype(np.int64) * 3) % 256).astype(np.uint8)], axis=-1)
Image.fromarray(trgb, mode="RGB").save(os.path.join(here, "decode_rgb_lzw_predictor.tif"),
                                       compression="tiff_lzw", tiffinfo={317: 2, 278: 16})

# NIfTI fixtures written field by field from the NIfTI-2 / NIfTI-1 standards (nibabel is not installed), to check
# the reader's offsets independently of its own writer. Volume 4x3x2, value = i + 10 j + 100 k.
import struct
vol = np.array([[[i + 10 * j + 100 * k for i in range(4)] for j in range(3)] for k in range(2)], dtype=np.float32)
srow = [[0.0, 0.0, 2.5, -10.0], [0.0, -1.5, 0.0, 20.0], [0.75, 0.0, 0.0, -30.0]]


def nifti2(path):
    h = bytearray(540)
    struct.pack_into("<i", h, 0, 540)
    h[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into("<hh", h, 12, 16, 32)
    struct.pack_into("<8q", h, 16, 3, 4, 3, 2, 1, 1, 1, 1)
    struct.pack_into("<8d", h, 104, 1, 0.75, 1.5, 2.5, 0, 0, 0, 0)
    struct.pack_into("<q", h, 168, 544)
    struct.pack_into("<dd", h, 176, 2.0, -5.0)
    h[240:240 + 9] = b"fixture-2"
    struct.pack_into("<ii", h, 344, 0, 2)
    for r in range(3):
        struct.pack_into("<4d", h, 400 + 32 * r, *srow[r])
    struct.pack_into("<i", h, 500, 2)
    with open(path, "wb") as f:
        f.write(bytes(h) + b"\0\0\0\0" + vol.astype("<f4").tobytes())


def nifti1_big_endian(path):
    h = bytearray(348)
    struct.pack_into(">i", h, 0, 348)
    struct.pack_into(">8h", h, 40, 3, 4, 3, 2, 1, 1, 1, 1)
    struct.pack_into(">hh", h, 70, 4, 16)
    struct.pack_into(">8f", h, 76, -1, 0.75, 1.5, 2.5, 0, 0, 0, 0)
    struct.pack_into(">fff", h, 108, 352, 1.0, 0.0)
    h[123] = 2
    struct.pack_into(">hh", h, 252, 1, 0)
    struct.pack_into(">6f", h, 256, 0.0, 1.0, 0.0, 5.0, 6.0, 7.0)
    h[344:348] = b"n+1\0"
    with open(path, "wb") as f:
        f.write(bytes(h) + b"\0\0\0\0" + vol.astype(">i2").tobytes())


nifti2(os.path.join(here, "nifti2_f32_4x3x2.nii"))
nifti1_big_endian(os.path.join(here, "nifti1_be_i16_4x3x2.nii"))
