"""One command for a whole training run: DFSN, DTCN (frozen and fine-tuned), evaluation, source probe, throughput.

  /usr/bin/python3 -m covidfn_train.run_all --pack .carry/pack --out OUT --device cuda --time-budget-s 400
  /usr/bin/python3 -m covidfn_train.run_all --pack .carry/pack --out OUT --device cpu --smoke

Everything is written to OUT as it goes: progress.log, metrics.json (updated after each stage), dfsn.npz,
dtcn_frozen_head.npz, dtcn_finetune.npz (fp32 state dicts as numpy archives: loadable by any torch version).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

from . import engine
from .data import load_pack
from .engine import log, write_json


def config(a) -> dict:
    T = a.time_budget_s
    cfg = {
        "seed": a.seed, "pack": a.pack, "amp": a.amp and a.device == "cuda",
        "dfsn_lr": 1e-3, "dfsn_bs": a.dfsn_bs, "doctor_frac": 0.5, "pseudo_weight": 0.5,
        "dtcn_bs": a.dtcn_bs, "head_lr": 1e-3, "backbone_lr": 1e-4, "ft_seg_weight": 0.5, "ft_seg_bs": max(2, a.dfsn_bs // 4),
        "dfsn_budget_s": a.dfsn_share * T, "dtcn_frozen_budget_s": a.frozen_share * T, "dtcn_ft_budget_s": a.ft_share * T,
        "dfsn_max_steps": a.max_steps, "dtcn_max_steps": a.max_steps,
        "eval_every_s": a.eval_every_s, "smoke": a.smoke,
    }
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", default=".carry/pack")
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--time-budget-s", type=float, default=400.0, help="total wall budget, data loading included")
    ap.add_argument("--dfsn-share", type=float, default=0.42)
    ap.add_argument("--frozen-share", type=float, default=0.12)
    ap.add_argument("--ft-share", type=float, default=0.28)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--dfsn-bs", type=int, default=16)
    ap.add_argument("--dtcn-bs", type=int, default=32)
    ap.add_argument("--eval-every-s", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--no-amp", dest="amp", action="store_false")
    ap.add_argument("--smoke", action="store_true", help="a handful of images, 2 steps per stage (CI)")
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--skip-probe", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args(argv)
    if a.smoke:
        a.max_steps, a.dfsn_bs, a.dtcn_bs, a.eval_every_s = 2, 2, 3, 1e9
    if a.threads:
        torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    t_start = time.time()
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    cfg = config(a)
    env = {"python": sys.version.split()[0], "torch": torch.__version__, "device": a.device, "platform": platform.platform(),
           "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
           "threads": torch.get_num_threads(), "argv": sys.argv, "smoke": a.smoke}
    metrics = {"env": env, "config": cfg}
    write_json(a.out, "metrics.json", metrics)
    log(f"start: {env}", a.out)
    data = load_pack(a.pack, smoke=a.smoke)
    # everything on the device once
    engine.data_to_device(data, device)
    log(f"data on {device}: seg {len(data['seg'])}, cls {len(data['cls'])} (load {time.time() - t_start:.1f} s)", a.out)
    metrics["data_load_s"] = time.time() - t_start

    def remaining():
        return a.time_budget_s - (time.time() - t_start)

    # DFSN
    cfg["dfsn_budget_s"] = min(cfg["dfsn_budget_s"], max(1.0, remaining() * 0.5))
    dfsn, r = engine.train_dfsn(data, cfg, device, a.out)
    metrics["dfsn"] = r
    write_json(a.out, "metrics.json", metrics)
    # DTCN frozen
    cfg["dtcn_frozen_budget_s"] = min(cfg["dtcn_frozen_budget_s"], max(1.0, remaining() * 0.3))
    dtcn_fr, r = engine.train_dtcn(data, cfg, dfsn, device, a.out, finetune=False)
    metrics["dtcn_frozen"] = r
    write_json(a.out, "metrics.json", metrics)
    # DTCN fine-tuned
    cfg["dtcn_ft_budget_s"] = min(cfg["dtcn_ft_budget_s"], max(1.0, remaining() - 0.12 * a.time_budget_s))
    dtcn_ft, r = engine.train_dtcn(data, cfg, dfsn, device, a.out, finetune=True)
    metrics["dtcn_finetune"] = r
    write_json(a.out, "metrics.json", metrics)
    # source confounding probe
    try:
        if a.skip_probe:
            raise RuntimeError("skipped (--skip-probe)")
        metrics["source_probe"] = {"frozen": engine.source_probe(dtcn_fr, data, device, cfg["amp"]),
                                   "finetune": engine.source_probe(dtcn_ft, data, device, cfg["amp"])}
        log(f"source probe: {metrics['source_probe']}", a.out)
    except Exception as e:  # never lose the run to a probe failure
        metrics["source_probe"] = {"error": repr(e)}
        log(f"source probe failed: {e!r}", a.out)
    write_json(a.out, "metrics.json", metrics)
    if not a.skip_bench:
        try:
            iters = 20 if device.type == "cuda" else 1
            metrics["throughput"] = engine.benchmark(dfsn, dtcn_fr, dtcn_ft, device, iters, bs=32 if device.type == "cuda" else 2)
            log(f"throughput: {metrics['throughput']}", a.out)
        except Exception as e:
            metrics["throughput"] = {"error": repr(e)}
            log(f"benchmark failed: {e!r}", a.out)
    return engine.finish_run(metrics, t_start, a.out, f"done (outputs in {a.out})")


if __name__ == "__main__":
    main()
