"""GPU rate of the SHIPPED architecture as one graph: the mean of two fine-tuned DTCN members (models.EnsembleCombined,
what export_onnx writes to models/dfsn_dtcn.onnx), both outputs, 352x352 input.

  PYTHONPATH=src/training python3 -m covidfn_train.bench_shipped_gpu --out DIR [--iters 20]

Until this script the card's two-member rate was derived from one member (half its slices per second). Speed does not
depend on the weights, so the members are freshly initialised (no checkpoint has to travel to the device machine);
the MAC count is the same hook count as finetune_round.bench_combined (Conv2d + Linear). Modes: fp32 (TF32 off),
TF32, bf16 autocast, and bf16 autocast with channels-last tensors (the card listed channels-last as untried).
Each point: 3 warm-up runs, then `iters` timed batches (4x as many at batch 1), engine.throughput. Writes
DIR/bench_shipped_gpu.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from . import engine
from .finetune_round import PEAKS_H100_H200
from .models import DFSN, DTCN, EnsembleCombined


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    device = torch.device(a.device)
    torch.manual_seed(0)
    model = EnsembleCombined([DTCN(DFSN()), DTCN(DFSN())]).to(device).eval()
    macs = engine.count_macs(model, torch.rand(1, 1, 352, 352, device=device))
    res = {"model": "EnsembleCombined of 2 DTCN members (the shipped graph's architecture), lesion_prob + class_prob",
           "macs_per_slice": macs, "flops_per_slice": 2 * macs,
           "flops_note": "2 x MACs of Conv2d + Linear (forward hooks); interpolation, BN, activations not counted",
           "device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "cuda": torch.version.cuda, "iters": a.iters,
           "peaks_used": PEAKS_H100_H200, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": {}}
    modes = (("fp32", False, False, False), ("tf32", False, True, False), ("bf16_autocast", True, True, False),
             ("bf16_autocast_channels_last", True, True, True))
    if device.type != "cuda":
        modes = modes[:1]
    for key, amp, tf32, cl in modes:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        model = model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        peak = PEAKS_H100_H200["bf16_dense"] if amp else PEAKS_H100_H200["tf32_dense" if tf32 else "fp32"]
        per = {}
        for bs in (int(b) for b in a.batches.split(",")):
            sps = engine.throughput(model, device, bs, amp, a.iters if bs >= 8 else a.iters * 4, channels_last=cl)
            per[str(bs)] = {"slices_per_s": sps, "fraction_of_peak": 2 * macs * sps / peak if device.type == "cuda" else None}
            print(f"{key} batch {bs}: {sps:.1f} slices/s", flush=True)
        res["runs"][key] = per
    with open(os.path.join(a.out, "bench_shipped_gpu.json"), "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
