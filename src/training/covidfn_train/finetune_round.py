"""Second training round: DTCN fine-tuned from an already trained DFSN, several members, then weight averaging.

  /usr/bin/python3 -m covidfn_train.finetune_round --pack .carry/pack --dfsn-init .carry/init/dfsn.npz \
      --out OUT --device cuda --member-budget-s 80 --members 11:none,12:none,11:0.5,12:0.5

Why: the first GPU run (session 1) fine-tuned one DTCN for ~100 s, picked the best of six evaluations and reached
UCSD val accuracy 0.822 / F1 0.840 / AUC 0.902, below the issue's anchors. This round keeps the trained DFSN
(val Dice 0.789; no need to spend the device time again) and changes three things, each measured on the same
validation split:
- an exponential moving average of the weights (EMA) is evaluated next to the raw weights at every evaluation;
- members that differ only in data order (shared head initialisation) are averaged into one set of weights
  ("model soup": uniform, and greedy in order of validation score) - one model's cost at inference;
- half of the members give UCSD at least half of each class's draws (--members SEED:SHARE; "none" = equal
  source shares as in round 1).
A logit ensemble of the members is reported for comparison only (it costs one backbone pass per member).

Round 4 (gpu_arms.sh) runs it with --steps N --ema-decay 0 --eval-every-s 1e9 --members-only: a fixed step count, one
evaluation at the end, the final raw weights, no soups; --train-on-val adds the classification val items to training
(the refit arm; its val numbers are then in-sample).

Writes to OUT as it goes: progress.log, metrics.json, member_<k>.npz (best state of each member, fp16 floats),
soup.npz (the chosen soup, fp16 floats) and at the end the PyTorch throughput of the chosen model on the device.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time

import numpy as np
import torch

from . import engine
from .data import load_pack, load_seg_originals
from .engine import cls_score, eval_cls, eval_seg, log, write_json
from .models import DFSN, DTCN, Combined

PEAKS_H100_H200 = {"fp32": 67e12, "tf32_dense": 494.7e12, "bf16_dense": 989.4e12}  # SXM, dense (NVIDIA data sheets)


def save_fp16(path: str, state: dict):
    """Weights as fp16 (halves what comes back from the device); small tensors (BN statistics, biases) and any
    tensor outside the fp16 range (the stem BN's running_var reaches 9e4) stay fp32."""
    out = {}
    for k, v in state.items():
        v = v.detach().float().cpu() if v.dtype.is_floating_point else v.detach().cpu()
        v = v.contiguous()  # a channels-last weight (round 6) is stored in the ordinary layout
        if v.dtype.is_floating_point and v.numel() >= 4096 and float(v.abs().max()) < 6e4:
            out[k] = v.half().numpy()
        else:
            out[k] = v.numpy()
    np.savez(path, **out)


def load_dfsn(path: str, device) -> DFSN:
    m = DFSN()
    with np.load(path) as z:
        sd = {k: torch.from_numpy(z[k].astype(np.float32) if z[k].dtype.kind == "f" else z[k].copy()) for k in z.files}
    m.load_state_dict(sd, strict=True)
    return m.to(device)


def average_states(states: list[dict]) -> dict:
    out = {}
    for k, v in states[0].items():
        if v.dtype.is_floating_point:
            out[k] = sum(s[k].float() for s in states) / len(states)
        else:
            out[k] = v.clone()
    return out


@torch.no_grad()
def ensemble_report(models: list[DTCN], data: dict, val: np.ndarray, device, amp: bool) -> dict:
    probs = []
    for m in models:
        _, p = eval_cls(m, data, val, device, amp)
        probs.append(p)
    prob = np.mean(probs, 0)
    y = data["cls_y"][val]
    return engine.cls_report(prob, y, [data["cls"][i] for i in val])


@torch.no_grad()
def flip_tta_report(model: DTCN, data: dict, val: np.ndarray, device, amp: bool) -> dict:
    model.eval()
    x = engine.take(data["cls_img_t"], val)
    fn = lambda xb: 0.5 * (torch.softmax(model.logits_and_prob(xb)[0].float(), 1) +  # noqa: E731
                           torch.softmax(model.logits_and_prob(torch.flip(xb, dims=[3]))[0].float(), 1))
    prob = engine.predict_batches(fn, x, 32, device, amp)[0].numpy()
    return engine.cls_report(prob, data["cls_y"][val], [data["cls"][i] for i in val])


def parse_members(spec: str) -> list[tuple[int, float | None]]:
    """--members "SEED:UCSD_MIN_SHARE,..." ("none" = equal source shares) as (seed, share) pairs."""
    members = []
    for item in spec.split(","):
        seed, share = item.split(":")
        members.append((int(seed), None if share == "none" else float(share)))
    return members


def member_config(pack: str, amp: bool, *, dtcn_bs: int, max_steps: int, budget_s: float, eval_every_s: float,
                  smoke: bool, head_seed: int, ema_decay: float, train_splits=("train",)) -> dict:
    """Round 2's DTCN fine-tuning recipe from a trained DFSN (head lr 1e-3, backbone lr 1e-4, 0.5 x seg loss on 4
    seg slices per step), shared by this round, round 4 (gpu_arms.sh) and round 5 (ssl_round.py); per member add
    seed, ucsd_min_share and dtcn_name."""
    return {"pack": pack, "amp": amp, "dtcn_bs": dtcn_bs, "head_lr": 1e-3, "backbone_lr": 1e-4,
            "ft_seg_weight": 0.5, "ft_seg_bs": 4, "dtcn_max_steps": max_steps, "eval_every_s": eval_every_s,
            "smoke": smoke, "head_seed": head_seed, "ema_decay": ema_decay, "save_best": False,
            "dtcn_ft_budget_s": budget_s, "dtcn_frozen_budget_s": budget_s, "train_splits": tuple(train_splits)}


def brief(rep: dict) -> dict:
    u = rep.get("ucsd_val_covid_vs_rest") or {}
    return {"score": cls_score(rep), "ucsd_accuracy": u.get("accuracy"), "ucsd_f1": u.get("f1"), "ucsd_auc": u.get("auc"),
            "balanced_accuracy_3class": rep.get("balanced_accuracy_3class")}


def bench_combined(model: DTCN, device, iters: int, batches=(1, 8, 32, 64)) -> dict:
    comb = Combined(model).eval()
    x1 = torch.rand(1, 1, 352, 352, device=device)
    macs = engine.count_macs(comb, x1)
    res = {"model": "dfsn_dtcn (fine-tuned backbone, one pass, lesion_prob + class_prob)", "macs_per_slice": macs,
           "flops_per_slice": 2 * macs, "flops_note": "2 x MACs of Conv2d + Linear (forward hooks); interpolation, BN, activations not counted",
           "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "peaks_used": PEAKS_H100_H200, "runs": {}}
    modes = (("fp32", False, False), ("tf32", False, True), ("bf16_autocast", True, True)) if device.type == "cuda" else (("fp32", False, False),)
    for key, amp, tf32 in modes:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        peak = {"fp32": PEAKS_H100_H200["fp32"], "tf32": PEAKS_H100_H200["tf32_dense"], "bf16_autocast": PEAKS_H100_H200["bf16_dense"]}[key]
        per = {}
        for bs in batches:
            sps = engine.throughput(comb, device, bs, amp, iters if bs >= 8 else iters * 4)
            per[str(bs)] = {"slices_per_s": sps, "fraction_of_peak": 2 * macs * sps / peak if device.type == "cuda" else None}
        res["runs"][key] = per
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", default=".carry/pack")
    ap.add_argument("--dfsn-init", required=True, help="dfsn.npz of a trained DFSN (fp32 or fp16 floats)")
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--member-budget-s", type=float, default=80.0)
    ap.add_argument("--members", default="11:none,12:none,11:0.5,12:0.5", help="SEED:UCSD_MIN_SHARE,... (none = equal source shares)")
    ap.add_argument("--head-seed", type=int, default=6)
    ap.add_argument("--ema-decay", type=float, default=0.998)
    ap.add_argument("--dtcn-bs", type=int, default=32)
    ap.add_argument("--eval-every-s", type=float, default=12.0)
    ap.add_argument("--bench-iters", type=int, default=20)
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--no-amp", dest="amp", action="store_false")
    ap.add_argument("--steps", type=int, default=0,
                    help="fixed step count per member (cosine over the steps, no time budget); 0 = --member-budget-s")
    ap.add_argument("--train-on-val", action="store_true",
                    help="classification val items join training (refit); val numbers are then in-sample")
    ap.add_argument("--members-only", action="store_true",
                    help="train and save the members, then stop (no soups, no benchmark)")
    ap.add_argument("--smoke", action="store_true", help="a handful of images, 2 steps per member (CI)")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    t_start = time.time()
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    max_steps = 2 if a.smoke else (a.steps if a.steps > 0 else 10**9)
    if a.steps > 0 and not a.smoke:
        a.member_budget_s = 1e9  # the cosine schedule runs over the step count alone
    if a.smoke:
        a.dtcn_bs, a.eval_every_s, a.bench_iters = 3, 1e9, 1
    members = parse_members(a.members)
    amp = a.amp and device.type == "cuda"
    env = {"python": sys.version.split()[0], "torch": torch.__version__, "device": a.device, "platform": platform.platform(),
           "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
           "threads": torch.get_num_threads(), "argv": sys.argv, "smoke": a.smoke}
    metrics = {"env": env, "args": vars(a), "members": []}
    write_json(a.out, "metrics.json", metrics)
    log(f"start: {env}", a.out)
    data = load_pack(a.pack, smoke=a.smoke)
    engine.data_to_device(data, device)
    dfsn = load_dfsn(a.dfsn_init, device)
    segv = np.array([i for i, s in enumerate(data["seg"]) if s["split"] == "val"])
    gts = load_seg_originals(a.pack, [data["seg"][i] for i in segv])
    sv = eval_seg(dfsn, data, segv, device, amp, gts)
    metrics["dfsn_init_seg_val"] = {k: v for k, v in sv.items() if k != "per_image"}
    log(f"data on {device}: seg {len(data['seg'])}, cls {len(data['cls'])}; DFSN init val Dice {sv['dice']:.4f} "
        f"(load {time.time() - t_start:.1f} s)", a.out)
    val = np.array([i for i, c in enumerate(data["cls"]) if c["split"] == "val"])

    base_cfg = member_config(a.pack, amp, dtcn_bs=a.dtcn_bs, max_steps=max_steps, budget_s=a.member_budget_s,
                             eval_every_s=a.eval_every_s, smoke=a.smoke, head_seed=a.head_seed, ema_decay=a.ema_decay,
                             train_splits=("train", "val") if a.train_on_val else ("train",))
    trained: list[tuple[dict, DTCN]] = []
    for k, (seed, share) in enumerate(members):
        cfg = dict(base_cfg, seed=seed, ucsd_min_share=share, dtcn_name=f"member{k}(seed {seed}, ucsd>={share})")
        model, r = engine.train_dtcn(data, cfg, dfsn, device, a.out, finetune=True)
        r = {"seed": seed, "ucsd_min_share": share, **{kk: v for kk, v in r.items()}}
        r["brief"] = brief(r["val"])
        metrics["members"].append(r)
        trained.append((r, model))
        save_fp16(os.path.join(a.out, f"member_{k}.npz"), model.state_dict())
        write_json(a.out, "metrics.json", metrics)
        if a.members_only:
            del model, trained[-1]  # keep device memory flat; the member is on disk
            if device.type == "cuda":
                torch.cuda.empty_cache()

    if a.members_only:
        return engine.finish_run(metrics, t_start, a.out, "members only: done")

    # weight averaging (all members share the DFSN and the head initialisation) and a logit ensemble for reference
    cands = {}
    order = sorted(range(len(trained)), key=lambda i: -trained[i][0]["score"])
    for i in order:
        cands[f"member{i}"] = (trained[i][0]["val"], [i])

    def eval_state(state):
        m = DTCN(DFSN()).to(device)
        m.load_state_dict(state)
        rep, _ = eval_cls(m, data, val, device, amp)
        return rep, m

    states = [copy.deepcopy(m.state_dict()) for _, m in trained]
    rep_u, _ = eval_state(average_states(states))
    cands["soup_uniform"] = (rep_u, list(range(len(trained))))
    greedy = [order[0]]
    best_rep = trained[order[0]][0]["val"]
    for i in order[1:]:
        rep_g, _ = eval_state(average_states([states[j] for j in greedy + [i]]))
        log(f"greedy soup {greedy + [i]}: {brief(rep_g)}", a.out)
        if cls_score(rep_g) >= cls_score(best_rep):
            greedy.append(i)
            best_rep = rep_g
    cands["soup_greedy"] = (best_rep, greedy)
    for share in sorted({s for _, s in members}, key=lambda v: -1 if v is None else v):
        ids = [i for i, (_, s) in enumerate(members) if s == share]
        if len(ids) > 1:
            rep_s, _ = eval_state(average_states([states[i] for i in ids]))
            cands[f"soup_share_{share}"] = (rep_s, ids)
    metrics["candidates"] = {k: {"members": ids, **brief(rep), "ucsd": rep.get("ucsd_val_covid_vs_rest"),
                                 "per_source_accuracy_3class": {s: d["accuracy_3class"] for s, d in rep["per_source"].items()},
                                 "confusion": rep["confusion"]} for k, (rep, ids) in cands.items()}
    models_only = [m for _, m in trained]
    metrics["reference_only"] = {"logit_ensemble_all": brief(ensemble_report(models_only, data, val, device, amp))}
    chosen = max(cands, key=lambda k: cls_score(cands[k][0]))
    ids = cands[chosen][1]
    final_state = average_states([states[i] for i in ids]) if len(ids) > 1 else states[ids[0]]
    final_rep, final = eval_state(final_state)
    metrics["chosen"] = {"name": chosen, "members": ids, **brief(final_rep), "val": final_rep}
    metrics["reference_only"]["chosen_with_flip_tta"] = brief(flip_tta_report(final, data, val, device, amp))
    sf = eval_seg(final.dfsn, data, segv, device, amp, gts)
    metrics["chosen"]["seg_val"] = {k: v for k, v in sf.items() if k != "per_image"}
    save_fp16(os.path.join(a.out, "chosen.npz"), final_state)
    log(f"chosen {chosen} members {ids}: {brief(final_rep)}; seg val Dice {sf['dice']:.4f}", a.out)
    log(f"candidates: { {k: round(v['score'], 4) for k, v in metrics['candidates'].items()} }; reference {metrics['reference_only']}", a.out)
    write_json(a.out, "metrics.json", metrics)
    if a.skip_bench:
        metrics["throughput"] = {"skipped": "--skip-bench"}
    else:
        try:
            metrics["throughput"] = bench_combined(final, device, a.bench_iters, (1, 2) if a.smoke else (1, 8, 32, 64))
            log(f"throughput: {metrics['throughput']['runs']}", a.out)
        except Exception as e:  # never lose the run to the benchmark
            metrics["throughput"] = {"error": repr(e)}
            log(f"benchmark failed: {e!r}", a.out)
    return engine.finish_run(metrics, t_start, a.out)


if __name__ == "__main__":
    main()
