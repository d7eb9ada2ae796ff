"""Round 6 (prepared, not run; docs/model-card.md "Round 6"): three DTCN arms with round 4's protocol (fixed steps,
nothing chosen on validation), one new lever each, trained at the same time on one GPU by `gpu_round6.sh`.

  python3 -m covidfn_train.round6 dfsn --pack .carry/pack --out OUT/r6/dfsn --device cuda --budget-s 75
  python3 -m covidfn_train.round6 arm --arm L --pack .carry/pack --dfsn OUT/r6/dfsn/dfsn.npz --out OUT/r6/L --device cuda
  python3 -m covidfn_train.round6 summary --out OUT/r6

Why a DFSN stage: round 1's DFSN (the starting point of rounds 2 and 4) is no longer on disk, so the call trains one
from the ImageNet encoder with round 1's recipe (75 s, best checkpoint by SEGMENTATION val Dice, as round 1;
no classification label or image is used to choose it). Every arm starts from that DFSN, and arm C's raw weights
are round 4's recipe on it: the control that separates the new DFSN from the levers.

The arms (ARMS below; each member: head seed 6, UCSD share >= 0.5, batch 32, head lr 1e-3, backbone lr 1e-4,
0.5 x seg loss, bf16 autocast, channels-last tensors, a fixed 1,150 steps, cosine, the final weights, one evaluation
at the end):
- C: round 4's recipe; its primary weights are the EMA (decay 0.998) of the run at its last step (Polyak
  averaging; no selection); the raw final weights of the same runs are the control.
- L: LP-FT (Kumar et al., ICLR 2022): 300 steps training the head alone on the frozen DFSN, then round 4's
  fine-tuning from that head (the backbone's first updates no longer follow a random head's gradients).
- A: stronger augmentation: RandomResizedCrop-like zoom 0.85-1.45 with aspect 3/4-4/3 and shift +-10 % (the
  Self-Trans/COVID-CT training transform crops 50-100 % of the area), mixup (alpha 0.2) and label smoothing 0.1.
Every arm also keeps an EMA; only arm C's comes back (the others are reported on the pack, for reference).

Each member is written as it finishes (member_<k>.npz: final raw weights, fp16 floats; arm C also ema_<k>.npz), with
metrics.json (GPU-pack validation of each member and of the ensemble so far; seconds per step). The pre-registered
numbers are computed afterwards on the ORIGINAL validation files by `round6_report.py`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

from . import engine
from .data import load_pack
from .engine import cls_report, log, write_json
from .finetune_round import load_dfsn, member_config, save_fp16

# seeds shared by all arms: members with the same seed see the same data order in the fine-tuning phase
SEEDS = (61, 62)
STEPS = 1150
ARMS = {
    "C": {"lever": "EMA of the weights (decay 0.998), no selection; raw final weights = control",
          "primary": "ema", "ema_decay": 0.998},
    "L": {"lever": "LP-FT: 300 head-only steps on the frozen DFSN, then round 4's fine-tuning from that head",
          "primary": "raw", "ema_decay": 0.998, "lp_steps": 300},
    "A": {"lever": "RandomResizedCrop-like zoom 0.85-1.45, aspect 3/4-4/3, shift 10 %, mixup 0.2, label smoothing 0.1",
          "primary": "raw", "ema_decay": 0.998,
          "geometric": {"max_rot": 12.0, "scale": (0.85, 1.45), "max_shift": 0.10, "aspect": (0.75, 4 / 3)},
          "mixup_alpha": 0.2, "label_smoothing": 0.1},
}


def environment(device: str, smoke: bool) -> dict:
    return {"python": sys.version.split()[0], "torch": torch.__version__, "device": device, "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None, "argv": sys.argv, "smoke": smoke}


def prepare(a) -> tuple[torch.device, bool, dict]:
    os.makedirs(a.out, exist_ok=True)
    device = torch.device(a.device)
    amp = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.time()
    data = load_pack(a.pack, smoke=a.smoke)
    engine.data_to_device(data, device)
    log(f"data on {device}: seg {len(data['seg'])}, cls {len(data['cls'])} (load {time.time() - t0:.1f} s)", a.out)
    return device, amp, data


def cmd_dfsn(a) -> dict:
    t_start = time.time()
    metrics = {"env": environment(a.device, a.smoke), "args": vars(a)}
    log(f"round 6 DFSN start: {metrics['env']}", a.out)
    device, amp, data = prepare(a)
    cfg = {"seed": 5, "pack": a.pack, "amp": amp, "dfsn_lr": 1e-3, "dfsn_bs": 2 if a.smoke else 32, "doctor_frac": 0.5,
           "pseudo_weight": 0.5, "dfsn_budget_s": 1e9 if a.smoke else a.budget_s, "dfsn_max_steps": 2 if a.smoke else 10**9,
           "eval_every_s": 1e9 if a.smoke else 15.0, "smoke": a.smoke}
    _, metrics["dfsn"] = engine.train_dfsn(data, cfg, device, a.out)  # dfsn.npz at each better seg val Dice
    if not metrics["dfsn"]["pretrained_encoder"] and not a.smoke:
        raise SystemExit("round 6 needs the ImageNet encoder: carry .carry/pack/encoder_resnet18.npz")
    return engine.finish_run(metrics, t_start, a.out, "round 6 DFSN done")


def member_cfgs(arm: dict, a, amp: bool, seed: int, k: int) -> tuple[dict | None, dict]:
    """(head-only phase config or None, fine-tuning config) of one member."""
    steps = 2 if a.smoke else a.steps
    base = member_config(a.pack, amp, dtcn_bs=3 if a.smoke else 32, max_steps=steps, budget_s=1e9, eval_every_s=1e9,
                         smoke=a.smoke, head_seed=6, ema_decay=arm.get("ema_decay", 0.0))
    base["channels_last"] = True  # every arm alike: layout only, the same arithmetic (engine.train_dtcn)
    ft = dict(base, seed=seed, ucsd_min_share=0.5, dtcn_name=f"{a.arm}-member{k}(seed {seed})", select="final",
              return_ema=True, geometric=arm.get("geometric"), mixup_alpha=arm.get("mixup_alpha", 0.0),
              label_smoothing=arm.get("label_smoothing", 0.05))
    lp = None
    if arm.get("lp_steps"):
        lp = dict(base, seed=seed, ucsd_min_share=0.5, dtcn_name=f"{a.arm}-member{k}-head(seed {seed})", select="final",
                  ema_decay=0.0, dtcn_max_steps=2 if a.smoke else arm["lp_steps"])
    return lp, ft


def brief(rep: dict | None) -> dict | None:
    if not rep:
        return None
    u = rep.get("ucsd_val_covid_vs_rest") or {}
    return {"ucsd_accuracy": u.get("accuracy"), "ucsd_f1": u.get("f1"), "ucsd_auc": u.get("auc"),
            "balanced_accuracy_3class": rep.get("balanced_accuracy_3class")}


def cmd_arm(a) -> dict:
    if a.arm not in ARMS:
        raise SystemExit(f"unknown arm {a.arm!r}: one of {sorted(ARMS)}")
    arm = ARMS[a.arm]
    t_start = time.time()
    seeds = [int(s) for s in a.seeds.split(",")]
    metrics = {"env": environment(a.device, a.smoke), "args": vars(a), "arm": a.arm,
               "recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in arm.items()},
               "protocol": f"fixed {a.steps} fine-tuning steps, final weights, one evaluation at the end, no selection; "
                           "channels-last tensors",
               "members": []}
    write_json(a.out, "metrics.json", metrics)
    log(f"round 6 arm {a.arm} start ({arm['lever']}): {metrics['env']}", a.out)
    device, amp, data = prepare(a)
    dfsn = load_dfsn(a.dfsn, device)
    val = np.array([i for i, c in enumerate(data["cls"]) if c["split"] == "val"])  # train_dtcn's order
    y, items = data["cls_y"][val], [data["cls"][i] for i in val]
    probs = {"raw": [], "ema": []}
    for k, seed in enumerate(seeds):
        t_member = time.time()
        lp, ft = member_cfgs(arm, a, amp, seed, k)
        r_lp = None
        if lp is not None:
            head_model, r_lp = engine.train_dtcn(data, lp, dfsn, device, a.out, finetune=False)
            ft["head_init"] = {kk: v.detach().clone() for kk, v in head_model.head.state_dict().items()}
            del head_model
        model, r, ema_model = engine.train_dtcn(data, ft, dfsn, device, a.out, finetune=True)
        save_fp16(os.path.join(a.out, f"member_{k}.npz"), model.state_dict())
        probs["raw"].append(r.pop("val_prob"))
        if ema_model is not None:
            probs["ema"].append(r.pop("ema_val_prob"))
            if arm["primary"] == "ema":
                save_fp16(os.path.join(a.out, f"ema_{k}.npz"), ema_model.state_dict())
        rec = {"seed": seed, "seconds": time.time() - t_member, **{kk: v for kk, v in r.items() if kk != "history"},
               "raw": brief(r["val"]), "ema": brief(r.get("ema_val"))}
        if r_lp is not None:
            rec["head_phase"] = {"steps": r_lp["steps"], "seconds_per_step": r_lp["seconds_per_step"], "val": brief(r_lp["val"])}
        metrics["members"].append(rec)
        # the ensemble of the members finished so far, on the GPU pack (provisional; the pre-registered numbers are
        # round6_report.py's on the original files)
        metrics["ensemble_pack"] = {kind: {"members": len(p), **brief(cls_report(np.mean(p, 0), y, items))}
                                    for kind, p in probs.items() if p}
        write_json(a.out, "metrics.json", metrics)
        log(f"arm {a.arm} member {k} (seed {seed}) done in {rec['seconds']:.0f} s, {r['seconds_per_step']:.3f} s/step: "
            f"raw {rec['raw']} ema {rec['ema']}; ensemble so far {metrics['ensemble_pack']}", a.out)
        del model, ema_model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return engine.finish_run(metrics, t_start, a.out, f"round 6 arm {a.arm} done")


def cmd_summary(a) -> dict:
    """One table of what came out of the call (GPU pack numbers, timings) for progress.log and summary.json."""
    out = {"dfsn": None, "arms": {}}
    p = os.path.join(a.out, "dfsn", "metrics.json")
    if os.path.exists(p):
        d = json.load(open(p)).get("dfsn") or {}
        out["dfsn"] = {"steps": d.get("steps"), "seconds_per_step": d.get("seconds_per_step"),
                       "seg_val_dice": (d.get("val") or {}).get("dice")}
    for name in sorted(ARMS):
        # gpu_round6.sh copies each arm's metrics.json to dfsn/arm_<arm>.json before the arm's folder becomes tars
        found = [p for p in (os.path.join(a.out, name, "metrics.json"), os.path.join(a.out, "dfsn", f"arm_{name}.json")) if os.path.exists(p)]
        if not found:
            out["arms"][name] = {"members_finished": 0}
            continue
        m = json.load(open(found[0]))
        out["arms"][name] = {
            "members_finished": len(m["members"]), "total_s": m.get("total_s"),
            "members": [{"seed": r["seed"], "seconds": r["seconds"], "seconds_per_step": r["seconds_per_step"],
                         "raw": r["raw"], "ema": r["ema"], "seg_val_dice": (r.get("seg_val_after_finetune") or {}).get("dice")}
                        for r in m["members"]],
            "ensemble_pack": m.get("ensemble_pack")}
    write_json(a.out, "summary.json", out)
    print(json.dumps(out, indent=1, default=float), flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("dfsn", "arm", "summary"):
        p = sub.add_parser(name)
        p.add_argument("--out", required=True)
        if name == "summary":
            continue
        p.add_argument("--pack", default=".carry/pack")
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        p.add_argument("--smoke", action="store_true", help="a handful of images, 2 steps per phase (CI)")
        p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
        if name == "dfsn":
            p.add_argument("--budget-s", type=float, default=75.0)
        else:
            p.add_argument("--arm", required=True, choices=sorted(ARMS))
            p.add_argument("--dfsn", required=True, help="dfsn.npz of the DFSN stage")
            p.add_argument("--seeds", default=",".join(str(s) for s in SEEDS))
            p.add_argument("--steps", type=int, default=STEPS)
    a = ap.parse_args(argv)
    return {"dfsn": cmd_dfsn, "arm": cmd_arm, "summary": cmd_summary}[a.cmd](a)


if __name__ == "__main__":
    main()
