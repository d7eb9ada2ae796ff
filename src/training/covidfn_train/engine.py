"""Training / evaluation engine shared by the GPU run, CPU runs and the smoke test.

Everything stays on one device: the whole (small) data set is moved there once, augmentation runs there, and each
stage stops at its own time budget keeping the best checkpoint by its validation metric.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import CLASSES
from . import augment
from .data import load_seg_originals
from .metrics import binary, dice_iou
from .models import DFSN, DTCN, Combined
from .preprocess import prob_to_image

T0 = time.time()


def log(msg: str, out: str | None = None):
    line = f"[{time.strftime('%H:%M:%S', time.gmtime())}Z +{time.time() - T0:6.1f}s] {msg}"
    print(line, flush=True)
    if out:
        with open(os.path.join(out, "progress.log"), "a") as fh:
            fh.write(line + "\n")


def write_json(out: str, name: str, obj):
    tmp = os.path.join(out, name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1, default=float)
    os.replace(tmp, os.path.join(out, name))


def finish_run(metrics: dict, t_start: float, out: str, what: str = "done") -> dict:
    """The end of every training entry point: total time into metrics.json and the last progress line."""
    metrics["total_s"] = time.time() - t_start
    write_json(out, "metrics.json", metrics)
    log(f"{what} in {metrics['total_s']:.1f} s", out)
    return metrics


def data_to_device(data: dict, device) -> dict:
    """Moves load_pack's numpy arrays onto the device once (as *_t tensors) and drops the numpy copies."""
    for key in ("seg_img", "seg_mask", "cls_img"):
        data[key + "_t"] = torch.from_numpy(data.pop(key)).to(device)
    return data


def take(t: torch.Tensor, idx) -> torch.Tensor:
    """Rows of a (possibly device-resident) tensor by a numpy index array."""
    return t.index_select(0, torch.as_tensor(np.asarray(idx, dtype=np.int64), device=t.device))


def set_seed(seed: int):
    torch.manual_seed(seed)
    np.random.seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def autocast_ctx(device: torch.device, enabled: bool):
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def state_to_numpy(model: torch.nn.Module) -> dict:
    return {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items() if v.dtype.is_floating_point} | \
        {k: v.detach().cpu().numpy() for k, v in model.state_dict().items() if not v.dtype.is_floating_point}


def save_npz(path: str, model_or_state):
    sd = model_or_state if isinstance(model_or_state, dict) else state_to_numpy(model_or_state)
    np.savez(path, **sd)


def load_npz_into(model: torch.nn.Module, path: str, prefix: str = "", strict: bool = True):
    with np.load(path) as z:
        sd = {prefix + k: torch.from_numpy(z[k].copy()) for k in z.files}
    return model.load_state_dict(sd, strict=strict)


def load_dtcn_members(paths: str) -> list[DTCN]:
    """Fine-tuned DTCN checkpoints from a comma list of .npz paths (finetune_round member_k.npz), in eval mode."""
    members = []
    for path in paths.split(","):
        m = DTCN(DFSN())
        load_npz_into(m, path)
        members.append(m.eval())
    return members


def load_encoder(model: DFSN, pack: str) -> bool:
    p = os.path.join(pack, "encoder_resnet18.npz")
    if not os.path.exists(p):
        return False
    with np.load(p) as z:
        sd = {"enc." + k: torch.from_numpy(z[k].astype(np.float32)) for k in z.files if k != "input_mean"}
        mean = torch.from_numpy(z["input_mean"].astype(np.float32)).view(1, 3, 1, 1)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    bad = [k for k in missing if k.startswith("enc.") and not k.endswith("num_batches_tracked")]
    if bad or unexpected:
        raise RuntimeError(f"encoder load mismatch: {bad} {unexpected}")
    model.input_mean.copy_(mean)
    return True


# ------------------------------------------------------------------ losses

def structure_loss(logit: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Inf-Net/F3Net structure loss: boundary-weighted BCE + weighted soft IoU. Returns per-sample loss (B,)."""
    logit = logit.float()
    weit = 1 + 5 * torch.abs(F.avg_pool2d(mask, 31, 1, 15) - mask)
    wbce = F.binary_cross_entropy_with_logits(logit, mask, reduction="none")
    wbce = (weit * wbce).sum((2, 3)) / weit.sum((2, 3))
    pred = torch.sigmoid(logit)
    inter = (pred * mask * weit).sum((2, 3))
    union = ((pred + mask) * weit).sum((2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    return (wbce + wiou).squeeze(1)


def seg_loss(model: DFSN, x, m, w):
    f = model.features(x)
    loss = structure_loss(f["logit"], m)
    for side in model.side_logits(f, x.shape[-2:]):
        loss = loss + 0.5 * structure_loss(side, m)
    return (loss * w).sum() / w.sum(), f


# ------------------------------------------------------------------ evaluation

@torch.no_grad()
def predict_batches(fn, x: torch.Tensor, bs: int, device, amp: bool):
    outs = []
    for i in range(0, x.shape[0], bs):
        xb = x[i:i + bs].unsqueeze(1).to(device, non_blocking=True)
        with autocast_ctx(device, amp):
            y = fn(xb)
        outs.append(y if isinstance(y, tuple) else (y,))
    return [torch.cat([o[k].float() for o in outs]).cpu() for k in range(len(outs[0]))]


def eval_seg(model: DFSN, data: dict, val_idx: np.ndarray, device, amp: bool, gts, threshold: float = 0.5) -> dict:
    model.eval()
    probs = predict_batches(lambda xb: torch.sigmoid(model.features(xb)["logit"]), take(data["seg_img_t"], val_idx), 8, device, amp)[0]
    dices, ious, per = [], [], []
    for k, i in enumerate(val_idx):
        item = data["seg"][i]
        p = prob_to_image(probs[k, 0].numpy(), item["h"], item["w"])
        d, j = dice_iou(p >= threshold, gts[k])
        dices.append(d)
        ious.append(j)
        per.append({"id": item["id"], "dice": d, "iou": j})
    return {"n": len(val_idx), "threshold": threshold, "dice": float(np.mean(dices)), "iou": float(np.mean(ious)),
            "per_image": per}


def cls_report(prob: np.ndarray, y: np.ndarray, items: list[dict]) -> dict:
    pred = prob.argmax(1)
    rep = {"n": int(len(y)), "accuracy_3class": float((pred == y).mean()) if len(y) else float("nan")}
    accs = []
    for c, name in enumerate(CLASSES):
        sel = y == c
        if sel.any():
            accs.append(float((pred[sel] == c).mean()))
    rep["balanced_accuracy_3class"] = float(np.mean(accs)) if accs else float("nan")
    rep["confusion"] = [[int(((y == a) & (pred == b)).sum()) for b in range(3)] for a in range(3)]
    src = np.array([it["source"] for it in items])
    per = {}
    for s in sorted(set(src)):
        sel = src == s
        per[s] = {"n": int(sel.sum()), "accuracy_3class": float((pred[sel] == y[sel]).mean()),
                  "covid_vs_rest": binary((pred[sel] == 0).astype(int), (y[sel] == 0).astype(int), prob[sel, 0])}
    rep["per_source"] = per
    rep["covid_vs_rest_all"] = binary((pred == 0).astype(int), (y == 0).astype(int), prob[:, 0])
    u = src == "ucsd"
    rep["ucsd_val_covid_vs_rest"] = binary((pred[u] == 0).astype(int), (y[u] == 0).astype(int), prob[u, 0]) if u.any() else {}
    return rep


def cls_score(rep: dict) -> float:
    u = rep.get("ucsd_val_covid_vs_rest") or {}
    auc = u.get("auc", 0.5)
    auc = 0.5 if auc != auc else auc
    return 0.5 * auc + 0.25 * u.get("accuracy", 0.0) + 0.25 * rep["balanced_accuracy_3class"]


def eval_cls(dtcn: DTCN, data: dict, idx: np.ndarray, device, amp: bool):
    dtcn.eval()
    prob = predict_batches(lambda xb: torch.softmax(dtcn.logits_and_prob(xb)[0].float(), 1), take(data["cls_img_t"], idx), 32, device, amp)[0].numpy()
    y = data["cls_y"][idx]
    return cls_report(prob, y, [data["cls"][i] for i in idx]), prob


# ------------------------------------------------------------------ training loops

def cosine_lr(frac: float, warm: float = 0.05) -> float:
    if frac < warm:
        return max(frac / warm, 0.05)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - warm) / (1 - warm)))) * 0.98 + 0.02


class Budget:
    def __init__(self, seconds: float, max_steps: int):
        self.t0 = time.time()
        self.seconds = seconds
        self.max_steps = max_steps

    def frac(self, step: int) -> float:
        return max((time.time() - self.t0) / self.seconds, step / self.max_steps)

    def done(self, step: int) -> bool:
        return self.frac(step) >= 1.0


def train_dfsn(data: dict, cfg: dict, device, out: str) -> tuple[DFSN, dict]:
    set_seed(cfg["seed"])
    model = DFSN().to(device)
    pretrained = load_encoder(model, cfg["pack"])
    if cfg.get("encoder_init") is not None:
        # an encoder adapted after ImageNet (ssl_round.py: self-supervised on CT); the same keys as the ImageNet load
        missing, unexpected = model.load_state_dict(cfg["encoder_init"], strict=False)
        if unexpected or any(k.startswith("enc.") and not k.endswith("num_batches_tracked") for k in missing):
            raise RuntimeError(f"encoder_init mismatch: missing {[k for k in missing if k.startswith('enc.')]} unexpected {unexpected}")
        pretrained = "imagenet+encoder_init" if pretrained else "encoder_init"
    log(f"DFSN: {sum(p.numel() for p in model.parameters())} params, ImageNet encoder loaded={pretrained}", out)
    seg = data["seg"]
    tr_doc = np.array([i for i, s in enumerate(seg) if s["split"] == "train" and s["kind"] == "doctor"])
    tr_ps = np.array([i for i, s in enumerate(seg) if s["kind"] == "pseudo"])
    val = np.array([i for i, s in enumerate(seg) if s["split"] == "val"])
    gts = load_seg_originals(cfg["pack"], [seg[i] for i in val])
    x_all, m_all = data["seg_img_t"], data["seg_mask_t"]
    enc_params = [p for n, p in model.named_parameters() if n.startswith("enc.")]
    other = [p for n, p in model.named_parameters() if not n.startswith("enc.")]
    base_lr = cfg["dfsn_lr"]
    opt = torch.optim.AdamW([{"params": enc_params, "lr": base_lr * 0.5}, {"params": other, "lr": base_lr}],
                            weight_decay=1e-4)
    bud = Budget(cfg["dfsn_budget_s"], cfg["dfsn_max_steps"])
    bs = cfg["dfsn_bs"]
    n_doc = max(1, int(round(bs * (cfg["doctor_frac"] if len(tr_ps) else 1.0))))
    best, best_state, hist, step = -1.0, None, [], 0
    next_eval = cfg["eval_every_s"]
    g = torch.Generator().manual_seed(cfg["seed"])
    t_steps = 0.0
    while not bud.done(step):
        ts = time.time()
        frac = bud.frac(step)
        for k, grp in enumerate(opt.param_groups):
            grp["lr"] = (base_lr * (0.5 if k == 0 else 1.0)) * cosine_lr(frac)
        di = tr_doc[torch.randint(len(tr_doc), (n_doc,), generator=g).numpy()]
        pi = tr_ps[torch.randint(len(tr_ps), (bs - n_doc,), generator=g).numpy()] if len(tr_ps) and bs > n_doc else np.array([], int)
        idx = np.concatenate([di, pi])
        w = torch.tensor([1.0] * len(di) + [cfg["pseudo_weight"]] * len(pi), device=device)
        xb = take(x_all, idx).unsqueeze(1).to(device, non_blocking=True)
        mb = take(m_all, idx).unsqueeze(1).to(device, non_blocking=True)
        model.train()
        with torch.no_grad():
            xb, mb = augment.geometric(xb, mb)
            xb = augment.intensity(xb)
            mb = (mb >= 0.5).float()
        with autocast_ctx(device, cfg["amp"]):
            loss, _ = seg_loss(model, xb, mb, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        if device.type == "cuda" and step % 50 == 0:
            torch.cuda.synchronize()
        t_steps += time.time() - ts
        elapsed = time.time() - bud.t0
        if elapsed >= next_eval or bud.done(step):
            next_eval = elapsed + cfg["eval_every_s"]
            ev = eval_seg(model, data, val, device, cfg["amp"], gts)
            hist.append({"step": step, "elapsed_s": elapsed, "loss": float(loss), "val_dice": ev["dice"], "val_iou": ev["iou"]})
            log(f"DFSN step {step} loss {float(loss):.4f} val Dice {ev['dice']:.4f} IoU {ev['iou']:.4f} "
                f"({t_steps / step:.3f} s/step)", out)
            if ev["dice"] > best:
                best, best_state = ev["dice"], copy.deepcopy(model.state_dict())
                save_npz(os.path.join(out, "dfsn.npz"), model)
    model.load_state_dict(best_state)
    ev = eval_seg(model, data, val, device, cfg["amp"], gts)
    thr = {}
    for t in ((0.3, 0.4, 0.5, 0.6) if not cfg.get("smoke") else ()):
        thr[str(t)] = eval_seg(model, data, val, device, cfg["amp"], gts, t)["dice"]
    res = {"steps": step, "batch": bs, "seconds_per_step": t_steps / max(step, 1), "history": hist,
           "pretrained_encoder": pretrained, "val": ev, "val_dice_by_threshold": thr,
           "train_items": {"doctor": int(len(tr_doc)), "pseudo": int(len(tr_ps))}}
    log(f"DFSN best val Dice {ev['dice']:.4f} IoU {ev['iou']:.4f} (by threshold {thr})", out)
    return model, res


def cls_sampling_weights(items: list[dict], idx: np.ndarray, ucsd_min_share: float | None = None) -> np.ndarray:
    """Each class equally likely; within a class each source equally likely (guards against source priors).

    ucsd_min_share: within a class that UCSD has, UCSD gets at least this share of the class's draws and the other
    sources split the rest equally. UCSD is the only source whose "normal" class holds non-COVID disease (the others
    are clean normals), so only UCSD teaches "abnormal but not COVID"; equal source shares give it a third of the
    normal draws."""
    from collections import Counter, defaultdict
    cnt = Counter((items[i]["label"], items[i]["source"]) for i in idx)
    sources = defaultdict(list)
    for lab, src in cnt:
        sources[lab].append(src)
    share = {}
    for lab, srcs in sources.items():
        for src in srcs:
            share[(lab, src)] = 1.0 / len(srcs)
        if ucsd_min_share is not None and "ucsd" in srcs and len(srcs) > 1 and share[(lab, "ucsd")] < ucsd_min_share:
            for src in srcs:
                share[(lab, src)] = ucsd_min_share if src == "ucsd" else (1.0 - ucsd_min_share) / (len(srcs) - 1)
    w = np.array([share[(items[i]["label"], items[i]["source"])] / cnt[(items[i]["label"], items[i]["source"])] for i in idx])
    return w / w.sum()


class Ema:
    """Exponential moving average of a model's weights and BN statistics (decay warms up as (1+t)/(10+t))."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.t = 0
        self.keys = [k for k, v in self.model.state_dict().items() if v.dtype.is_floating_point]
        self.other = [k for k, v in self.model.state_dict().items() if not v.dtype.is_floating_point]

    @torch.no_grad()
    def update(self, model: torch.nn.Module):
        """v = d*v + (1-d)*w for every float tensor, as one multi-tensor op (round 6 updates it at every step of
        three concurrent runs; a Python loop over ~300 tensors costs launches)."""
        self.t += 1
        d = min(self.decay, (1 + self.t) / (10 + self.t))
        src, dst = model.state_dict(), self.model.state_dict()
        ema = [dst[k] for k in self.keys]
        torch._foreach_mul_(ema, d)
        torch._foreach_add_(ema, [src[k].detach() for k in self.keys], alpha=1 - d)
        for k in self.other:
            dst[k].copy_(src[k])


DTCN_GEOMETRIC = {"max_rot": 12.0, "scale": (0.85, 1.15), "max_shift": 0.06}


def train_dtcn(data: dict, cfg: dict, dfsn: DFSN, device, out: str, finetune: bool):
    """Trains a DTCN head (frozen backbone) or the whole DTCN (finetune). Returns (model, result); with
    cfg["return_ema"] (and an EMA) returns (model, result, ema_model).

    Optional cfg keys (absent = rounds 1-5's recipe): geometric (augment.geometric kwargs, DTCN_GEOMETRIC),
    label_smoothing (0.05), channels_last (False), mixup_alpha (0: off; else mixup with lambda ~ Beta(a, a) per batch on the augmented
    classification batch, drawn from its own generator so the data order stays the same as without it),
    head_init (a head state dict to start from: round 6's LP-FT), select ("best": the checkpoint with the best
    validation score among the evaluations, raw or EMA, as rounds 1-2; "final": the final raw weights, no choice,
    the EMA only evaluated and returned)."""
    name = cfg.get("dtcn_name") or ("DTCN-finetune" if finetune else "DTCN-frozen")
    # head_seed fixes the head's initialisation across runs that differ only in their data order (weight averaging
    # of such runs needs one shared initialisation); the run's own seed then drives sampling and augmentation
    set_seed(cfg.get("head_seed", cfg["seed"] + (1 if finetune else 0)))
    backbone = copy.deepcopy(dfsn)
    dtcn = DTCN(backbone).to(device)
    if cfg.get("head_init") is not None:
        dtcn.head.load_state_dict(cfg["head_init"])
    # channels_last: the same arithmetic in the memory layout cuDNN's bf16 convolutions prefer (the shipped graph's
    # bf16 inference on an H100: 1,724 -> 2,391 slices/s, docs/benchmarks.md); round 6 turns it on for every arm
    memory_format = torch.channels_last if cfg.get("channels_last") else torch.contiguous_format
    if cfg.get("channels_last"):
        dtcn = dtcn.to(memory_format=memory_format)
    set_seed(cfg["seed"] + (1 if finetune else 0))
    geometric = dict(DTCN_GEOMETRIC, **(cfg.get("geometric") or {}))
    smoothing = cfg.get("label_smoothing", 0.05)
    mix_alpha = cfg.get("mixup_alpha", 0.0)
    mix_rng = np.random.default_rng(cfg["seed"] + 11)
    select = cfg.get("select", "best")
    if select not in ("best", "final"):
        raise ValueError(f"select must be 'best' or 'final', not {select!r}")
    for p in dtcn.dfsn.parameters():
        p.requires_grad_(finetune)
    items = data["cls"]
    # train_splits ("train",) by default; ("train", "val") refits on the validation items too (round 4's refit arm:
    # its validation numbers are then in-sample and reported as such)
    train_splits = tuple(cfg.get("train_splits", ("train",)))
    tr = np.array([i for i, c in enumerate(items) if c["split"] in train_splits])
    val = np.array([i for i, c in enumerate(items) if c["split"] == "val"])
    w = torch.from_numpy(cls_sampling_weights(items, tr, cfg.get("ucsd_min_share")))
    y_all = torch.from_numpy(data["cls_y"])
    groups = [{"params": list(dtcn.head.parameters()), "lr": cfg["head_lr"]}]
    if finetune:
        groups.append({"params": list(dtcn.dfsn.parameters()), "lr": cfg["backbone_lr"]})
    opt = torch.optim.AdamW(groups, weight_decay=1e-3)
    base = [grp["lr"] for grp in opt.param_groups]
    budget_s = cfg["dtcn_ft_budget_s"] if finetune else cfg["dtcn_frozen_budget_s"]
    bud = Budget(budget_s, cfg["dtcn_max_steps"])
    bs = cfg["dtcn_bs"]
    seg_tr = np.array([i for i, s in enumerate(data["seg"]) if s["split"] == "train"])
    g = torch.Generator().manual_seed(cfg["seed"] + 7)
    ema = Ema(dtcn, cfg["ema_decay"]) if cfg.get("ema_decay") else None
    save_best = cfg.get("save_best", True)
    best, best_state, best_from, hist, step, t_steps = -1.0, None, "raw", [], 0, 0.0
    ema_rep = ema_prob = None
    next_eval = cfg["eval_every_s"]
    while not bud.done(step):
        ts = time.time()
        frac = bud.frac(step)
        for grp, b in zip(opt.param_groups, base):
            grp["lr"] = b * cosine_lr(frac)
        idx = tr[torch.multinomial(w, bs, replacement=True, generator=g).numpy()]
        xb = take(data["cls_img_t"], idx).unsqueeze(1).to(device, non_blocking=True)
        yb = y_all[idx].to(device)
        with torch.no_grad():
            xb, _ = augment.geometric(xb, None, **geometric)
            xb = augment.intensity(xb, strength=1.3, blur_p=0.3)
            lam, perm = 1.0, None
            if mix_alpha > 0:
                lam = float(mix_rng.beta(mix_alpha, mix_alpha))
                perm = torch.from_numpy(mix_rng.permutation(len(idx))).to(xb.device)
                xb = lam * xb + (1 - lam) * xb[perm]
            xb = xb.contiguous(memory_format=memory_format)
        dtcn.train()
        if not finetune:
            dtcn.dfsn.eval()  # frozen backbone: BN statistics fixed, one backbone pass serves both outputs
        with autocast_ctx(device, cfg["amp"]):
            if finetune:
                logits, prob, f = dtcn.logits_and_prob(xb)
            else:
                with torch.no_grad():
                    f = dtcn.dfsn.features(xb)
                    prob = torch.sigmoid(f["logit"])
                logits = dtcn.head(f, prob)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=smoothing)
            if perm is not None:
                loss = lam * loss + (1 - lam) * F.cross_entropy(logits.float(), yb[perm], label_smoothing=smoothing)
            if finetune and cfg["ft_seg_weight"] > 0 and len(seg_tr):
                si = seg_tr[torch.randint(len(seg_tr), (cfg["ft_seg_bs"],), generator=g).numpy()]
                sx = take(data["seg_img_t"], si).unsqueeze(1).to(device)
                sm = take(data["seg_mask_t"], si).unsqueeze(1).to(device)
                with torch.no_grad():
                    sx, sm = augment.geometric(sx, sm)
                    sx = sx.contiguous(memory_format=memory_format)
                    sm = (sm >= 0.5).float()
                sl, _ = seg_loss(dtcn.dfsn, sx, sm, torch.ones(len(si), device=device))
                loss = loss + cfg["ft_seg_weight"] * sl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in dtcn.parameters() if p.requires_grad], 5.0)
        opt.step()
        if ema is not None:
            ema.update(dtcn)
        step += 1
        if device.type == "cuda" and step % 50 == 0:
            torch.cuda.synchronize()
        t_steps += time.time() - ts
        elapsed = time.time() - bud.t0
        if elapsed >= next_eval or bud.done(step):
            next_eval = elapsed + cfg["eval_every_s"]
            for kind, model in (("raw", dtcn),) + ((("ema", ema.model),) if ema is not None else ()):
                rep, prob = eval_cls(model, data, val, device, cfg["amp"])
                sc = cls_score(rep)
                u = rep["ucsd_val_covid_vs_rest"]
                hist.append({"step": step, "elapsed_s": elapsed, "loss": float(loss), "score": sc, "weights": kind,
                             "ucsd": {k: u.get(k) for k in ("accuracy", "f1", "auc")},
                             "balanced_accuracy_3class": rep["balanced_accuracy_3class"]})
                log(f"{name} step {step} {kind} loss {float(loss):.4f} score {sc:.4f} UCSD acc {u.get('accuracy', float('nan')):.3f} "
                    f"F1 {u.get('f1', float('nan')):.3f} AUC {u.get('auc', float('nan')):.3f} bal3 {rep['balanced_accuracy_3class']:.3f} "
                    f"({t_steps / step:.3f} s/step)", out)
                if kind == "ema" and select == "final":
                    ema_rep, ema_prob = rep, prob
                if sc > best and select == "best":
                    best, best_state, best_from = sc, copy.deepcopy(model.state_dict()), kind
                    if save_best and finetune:
                        save_npz(os.path.join(out, "dtcn_finetune.npz"), model)
                    elif save_best:
                        save_npz(os.path.join(out, "dtcn_frozen_head.npz"), model.head)
    if select == "best":
        dtcn.load_state_dict(best_state)
    else:
        best_from = "raw-final"  # no choice: the weights the last step left
    rep, prob = eval_cls(dtcn, data, val, device, cfg["amp"])
    res = {"variant": "finetune" if finetune else "frozen", "steps": step, "batch": bs, "best_weights": best_from,
           "ema_decay": cfg.get("ema_decay"), "ucsd_min_share": cfg.get("ucsd_min_share"),
           "seconds_per_step": t_steps / max(step, 1), "history": hist, "val": rep, "score": cls_score(rep),
           "train_counts": _counts(items, tr), "val_counts": _counts(items, val), "train_splits": list(train_splits),
           "recipe": {"geometric": {k: list(v) if isinstance(v, tuple) else v for k, v in geometric.items()},
                      "label_smoothing": smoothing, "mixup_alpha": mix_alpha, "head_init": cfg.get("head_init") is not None,
                      "select": select}}
    if finetune:
        segv = np.array([i for i, s in enumerate(data["seg"]) if s["split"] == "val"])
        gts = load_seg_originals(cfg["pack"], [data["seg"][i] for i in segv])
        res["seg_val_after_finetune"] = {k: v for k, v in eval_seg(dtcn.dfsn, data, segv, device, cfg["amp"], gts).items() if k != "per_image"}
    log(f"{name} {'best' if select == 'best' else 'final'}: score {res['score']:.4f} UCSD {rep['ucsd_val_covid_vs_rest']} ", out)
    if cfg.get("return_ema"):
        # the validation probabilities (numpy; callers pop them before writing JSON) spare a second evaluation
        res["val_prob"] = prob
        if ema is not None and select == "final":
            res["ema_val"], res["ema_val_prob"] = ema_rep, ema_prob
            if finetune:
                res["ema_seg_val"] = {k: v for k, v in eval_seg(ema.model.dfsn, data, segv, device, cfg["amp"], gts).items() if k != "per_image"}
        return dtcn, res, (ema.model if ema is not None else None)
    return dtcn, res


def _counts(items, idx):
    from collections import Counter
    return {f"{k[0]}/{k[1]}": v for k, v in sorted(Counter((items[i]["label"], items[i]["source"]) for i in idx).items())}


# ------------------------------------------------------------------ source-confounding probe

@torch.no_grad()
def embeddings(dtcn: DTCN, x: torch.Tensor, device, amp: bool) -> np.ndarray:
    dtcn.eval()

    def fn(xb):
        f = dtcn.dfsn.features(xb)
        return dtcn.head.embed(f, torch.sigmoid(f["logit"]))
    return predict_batches(fn, x, 32, device, amp)[0].numpy()


def linear_probe(xtr, ytr, xte, yte, seed=0, steps=300) -> float:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a = torch.from_numpy((xtr - mu) / sd).float()
    b = torch.from_numpy((xte - mu) / sd).float()
    ncls = int(max(ytr.max(), yte.max()) + 1)
    torch.manual_seed(seed)
    lin = torch.nn.Linear(a.shape[1], ncls)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=steps)
    yt = torch.from_numpy(ytr).long()

    def closure():
        opt.zero_grad()
        l = F.cross_entropy(lin(a), yt) + 1e-2 * lin.weight.pow(2).sum()
        l.backward()
        return l
    opt.step(closure)
    return float((lin(b).argmax(1).numpy() == yte).mean())


def source_probe(dtcn: DTCN, data: dict, device, amp: bool) -> dict:
    """Within one class, how well does a linear probe on DTCN features tell the SOURCE (train split -> val split)?"""
    items = data["cls"]
    emb = embeddings(dtcn, data["cls_img_t"], device, amp)
    res = {}
    for label in ("normal", "covid"):
        idx = [i for i, c in enumerate(items) if c["label"] == label]
        srcs = sorted({items[i]["source"] for i in idx})
        if len(srcs) < 2:
            continue
        s = np.array([srcs.index(items[i]["source"]) for i in idx])
        sp = np.array([items[i]["split"] for i in idx])
        tr, te = sp == "train", sp == "val"
        if tr.sum() < 2 or te.sum() < 1 or len(set(s[tr])) < 2:
            continue
        acc = linear_probe(emb[idx][tr], s[tr], emb[idx][te], s[te])
        maj = float(np.max(np.bincount(s[te], minlength=len(srcs))) / te.sum())
        res[label] = {"sources": srcs, "probe_val_accuracy": acc, "majority_baseline": maj, "n_train": int(tr.sum()),
                      "n_val": int(te.sum())}
    return res


# ------------------------------------------------------------------ throughput and FLOPs

def count_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    macs = [0]

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        macs[0] += out.numel() * k

    def lin_hook(m, inp, out):
        macs[0] += out.numel() * m.in_features
    hs = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hs.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hs.append(m.register_forward_hook(lin_hook))
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return macs[0] // x.shape[0]


def throughput(fn, device, bs: int, amp: bool, iters: int, channels_last: bool = False) -> float:
    x = torch.rand(bs, 1, 352, 352, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        for _ in range(3):
            with autocast_ctx(device, amp):
                fn(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.time()
        for _ in range(iters):
            with autocast_ctx(device, amp):
                fn(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return bs * iters / (time.time() - t)


def benchmark(dfsn: DFSN, dtcn_frozen: DTCN, dtcn_ft: DTCN, device, iters: int, bs: int = 32) -> dict:
    comb = Combined(dtcn_frozen).eval()
    dfsn.eval()
    dtcn_ft.eval()
    x1 = torch.rand(1, 1, 352, 352, device=device)
    macs_comb = count_macs(comb, x1)
    macs_two = count_macs(dfsn, x1) + count_macs(dtcn_ft, x1)
    res = {"batch": bs, "macs_per_slice": {"combined_frozen": macs_comb, "dfsn_plus_dtcn_finetune": macs_two},
           "flops_per_slice_note": "FLOPs = 2 x MACs of Conv2d + Linear layers (forward hooks); interpolation, BN, activations not counted",
           "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"}
    peaks = {"fp32": 67e12, "bf16_dense": 989e12}
    runs = {}
    for amp in ((False, True) if device.type == "cuda" else (False,)):
        key = "bf16_autocast" if amp else "fp32"
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        sps_c = throughput(comb, device, bs, amp, iters)
        sps_t = throughput(lambda x: (dfsn(x), dtcn_ft(x)), device, bs, amp, iters)
        peak = peaks["bf16_dense"] if amp else peaks["fp32"]
        runs[key] = {
            "combined_frozen_slices_per_s": sps_c,
            "two_graphs_finetune_slices_per_s": sps_t,
            "combined_frozen_fraction_of_peak": 2 * macs_comb * sps_c / peak if device.type == "cuda" else None,
            "two_graphs_fraction_of_peak": 2 * macs_two * sps_t / peak if device.type == "cuda" else None,
            "peak_used_tflops": peak / 1e12 if device.type == "cuda" else None,
        }
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = True
        sps_c = throughput(comb, device, bs, False, iters)
        runs["tf32"] = {"combined_frozen_slices_per_s": sps_c,
                        "combined_frozen_fraction_of_tf32_dense_peak_494T": 2 * macs_comb * sps_c / 494e12}
    res["runs"] = runs
    return res
