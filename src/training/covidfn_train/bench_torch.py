"""PyTorch CPU per-slice time on the same weights as the ONNX graphs (tools/bench_inference.sh).

  /usr/bin/python3 -m covidfn_train.bench_torch --ckpt-dir DIR [--slices 8] [--threads 1,2]
  /usr/bin/python3 -m covidfn_train.bench_torch --members A.npz,B.npz ...   (the shipped mean-of-members graph)
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from .engine import load_dtcn_members
from .export_onnx import load_models
from .models import Combined, EnsembleCombined


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt-dir", default=None)
    ap.add_argument("--members", default=None, help="comma list of member checkpoints (export_onnx --members)")
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,4")
    a = ap.parse_args(argv)
    if a.members:
        graphs = {"dfsn_dtcn": EnsembleCombined(load_dtcn_members(a.members)).eval()}
    else:
        dfsn, frozen, ft = load_models(a.ckpt_dir)
        # the same graphs as export_onnx's defaults: dfsn_dtcn = fine-tuned DTCN (one pass, both outputs)
        graphs = {"dfsn_dtcn": Combined(ft if ft is not None else frozen).eval()}
    x = torch.from_numpy(np.random.default_rng(5).random((a.slices, 1, 352, 352)).astype(np.float32))
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        for batch in [int(b) for b in a.batches.split(",")]:
            for name, g in graphs.items():
                with torch.no_grad():
                    g(x[:batch])
                    times = []
                    for _ in range(3):
                        t = time.perf_counter()
                        for i in range(0, a.slices, batch):
                            g(x[i:i + batch])
                        times.append((time.perf_counter() - t) * 1000 / a.slices)
                times.sort()
                print(f"torch\t{name}\tthreads={threads}\tbatch={batch}\tms_per_slice={times[1]:.1f}", flush=True)


if __name__ == "__main__":
    main()
