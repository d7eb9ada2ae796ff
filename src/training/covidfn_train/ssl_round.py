"""Round 5 (run once, session 11; results in docs/model-card.md "Round 5 results"): adapt the ImageNet encoder to CT without labels, then train the DFSN and
DTCN members on it with round 4's protocol.

  /usr/bin/python3 -m covidfn_train.ssl_round --pack .carry/pack --out OUT --device cuda
  (on the device: `OUT=DIR bash src/training/gpu_ssl.sh`)

Why: round 4 measured the round-2 recipe without selection at UCSD val AUC 0.880; the recipe levers left (UCSD-only
draws, fewer steps) stay inside the seed noise. The anchor the issue cites, Self-Trans (AUC 0.94), adds
self-supervised learning on CT to ImageNet transfer. This round does that for our encoder (ResNet-18 stem +
layer1..layer3, the DFSN's trunk):

1. SimCLR (NT-Xent, temperature 0.2) from the ImageNet weights on every TRAINING image without its label: the
   classification train split of all sources and the COVID-SemiSeg training + pseudo-labelled slices. No validation
   image (classification or segmentation) is seen. Two views per image: the training augmentation made stronger
   (rotation ±20°, scale 0.7-1.3, shift ±10 %, flip; intensity 1.5x with blur p 0.5), at --ssl-size pixels (224:
   the trunk is fully convolutional, and 224 is ~2.5x cheaper than 352). Projection head: 256 -> 256 -> 128 on the
   global average of layer3.
2. DFSN from that encoder, round 1's recipe (time budget, best checkpoint by seg val Dice, as round 1).
3. DTCN members from that DFSN with round 4's protocol: a fixed step count, the final raw weights, no EMA, no
   evaluation during training, classification train split only, UCSD share >= 0.5.

The comparison (written before the call, in docs/model-card.md): the mean of the members here against round 4's arm E
(mean of 3 members, same protocol, ImageNet encoder): UCSD val 0.814 / 0.828 / 0.880.
Writes OUT/progress.log, metrics.json, ssl_encoder.npz (enc.* keys, fp16 floats), dfsn.npz, member_<k>.npz.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import augment, engine
from .data import load_pack
from .engine import Budget, autocast_ctx, cosine_lr, log, take, write_json
from .finetune_round import member_config, parse_members, save_fp16
from .models import DEFAULT_INPUT_MEAN, ResNet18Trunk


class SslNet(nn.Module):
    """The DFSN's trunk (same module names, so its enc.* weights load into a DFSN) and a SimCLR projection head."""

    def __init__(self):
        super().__init__()
        self.register_buffer("input_mean", torch.tensor(DEFAULT_INPUT_MEAN, dtype=torch.float32).view(1, 3, 1, 1))
        self.enc = ResNet18Trunk(with_layer4=False)
        self.proj = nn.Sequential(nn.Linear(256, 256), nn.ReLU(inplace=True), nn.Linear(256, 128))

    def forward(self, x):
        e = self.enc
        z = x * 255.0 - self.input_mean  # as DFSN.normalise
        s = F.relu(e.bn1(e.conv1(z)))
        l3 = e.layer3(e.layer2(e.layer1(e.maxpool(s))))
        return self.proj(l3.mean((2, 3)))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view's positive is the other view of its image; the other 2N-2 views are negatives."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z1.shape[0]
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def view(x: torch.Tensor, size: int) -> torch.Tensor:
    with torch.no_grad():
        v, _ = augment.geometric(x, None, max_rot=20.0, scale=(0.7, 1.3), max_shift=0.10)
        v = augment.intensity(v, strength=1.5, blur_p=0.5)
        if size != v.shape[-1]:
            v = F.interpolate(v, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return v


def ssl_images(data: dict) -> tuple[torch.Tensor, dict]:
    """Every training image, no label, no validation image: cls train split + seg training (doctor + pseudo) slices."""
    cls_tr = [i for i, c in enumerate(data["cls"]) if c["split"] == "train"]
    seg_tr = [i for i, s in enumerate(data["seg"]) if s["split"] == "train"]
    x = torch.cat([take(data["cls_img_t"], cls_tr), take(data["seg_img_t"], seg_tr)])
    return x, {"cls_train": len(cls_tr), "seg_train": len(seg_tr)}


def train_ssl(data: dict, a, device, out: str) -> tuple[dict, dict]:
    engine.set_seed(a.seed)
    net = SslNet().to(device)
    # SslNet has the DFSN's enc.* names and input_mean buffer, so the pack's ImageNet weights load as into a DFSN
    if not engine.load_encoder(net, a.pack):
        log("SSL: no ImageNet encoder in the pack: starting from random weights", out)
    x_all, counts = ssl_images(data)
    opt = torch.optim.AdamW(net.parameters(), lr=a.ssl_lr, weight_decay=1e-4)
    bud = Budget(a.ssl_budget_s, a.max_steps)
    g = torch.Generator().manual_seed(a.seed + 3)
    step, hist, t_steps = 0, [], 0.0
    net.train()
    while not bud.done(step):
        ts = time.time()
        for grp in opt.param_groups:
            grp["lr"] = a.ssl_lr * cosine_lr(bud.frac(step))
        idx = torch.randint(x_all.shape[0], (a.ssl_bs,), generator=g).numpy()
        xb = take(x_all, idx).unsqueeze(1)
        v1, v2 = view(xb, a.ssl_size), view(xb, a.ssl_size)
        with autocast_ctx(device, a.amp):
            loss = nt_xent(net(v1), net(v2), a.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        step += 1
        t_steps += time.time() - ts
        if step % 100 == 0 or bud.done(step) or step == 1:
            hist.append({"step": step, "loss": float(loss.detach()), "elapsed_s": time.time() - bud.t0})
            log(f"SSL step {step} loss {float(loss):.4f} ({t_steps / step:.3f} s/step)", out)
    state = {k: v.detach() for k, v in net.state_dict().items() if k.startswith("enc.")}
    res = {"steps": step, "batch": a.ssl_bs, "size": a.ssl_size, "temperature": a.temperature, "lr": a.ssl_lr,
           "seconds_per_step": t_steps / max(step, 1), "images": counts, "history": hist}
    return state, res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", default=".carry/pack")
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--ssl-budget-s", type=float, default=120.0)
    ap.add_argument("--ssl-bs", type=int, default=128)
    ap.add_argument("--ssl-size", type=int, default=224)
    ap.add_argument("--ssl-lr", type=float, default=3e-4)
    ap.add_argument("--temperature", type=float, default=0.2)
    ap.add_argument("--dfsn-budget-s", type=float, default=150.0)
    ap.add_argument("--dfsn-bs", type=int, default=32)
    ap.add_argument("--members", default="31:0.5,32:0.5,33:0.5", help="SEED:UCSD_MIN_SHARE,... (round 4's arm E seeds)")
    ap.add_argument("--steps", type=int, default=1150, help="fixed DTCN steps per member")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--no-amp", dest="amp", action="store_false")
    ap.add_argument("--smoke", action="store_true", help="a handful of images, 2 steps per stage (CI)")
    ap.add_argument("--ssl-only", action="store_true", help="stop after the SimCLR stage (the CPU pilot, ssl_probe.py)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = ap.parse_args(argv)
    a.max_steps = 10**9
    if a.smoke:
        a.max_steps, a.ssl_bs, a.ssl_size, a.dfsn_bs, a.steps = 2, 4, 64, 2, 2
    os.makedirs(a.out, exist_ok=True)
    t_start = time.time()
    device = torch.device(a.device)
    a.amp = a.amp and device.type == "cuda"
    if a.threads:
        torch.set_num_threads(a.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    env = {"python": sys.version.split()[0], "torch": torch.__version__, "device": a.device, "platform": platform.platform(),
           "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None, "argv": sys.argv, "smoke": a.smoke}
    metrics = {"env": env, "args": vars(a)}
    log(f"start: {env}", a.out)
    data = load_pack(a.pack, smoke=a.smoke)
    engine.data_to_device(data, device)
    log(f"data on {device}: seg {len(data['seg'])}, cls {len(data['cls'])} (load {time.time() - t_start:.1f} s)", a.out)

    enc_state, metrics["ssl"] = train_ssl(data, a, device, a.out)
    save_fp16(os.path.join(a.out, "ssl_encoder.npz"), enc_state)
    write_json(a.out, "metrics.json", metrics)
    if a.ssl_only:
        return engine.finish_run(metrics, t_start, a.out)

    cfg = {"seed": a.seed, "pack": a.pack, "amp": a.amp, "dfsn_lr": 1e-3, "dfsn_bs": a.dfsn_bs, "doctor_frac": 0.5,
           "pseudo_weight": 0.5, "dfsn_budget_s": 1e9 if a.smoke else a.dfsn_budget_s, "dfsn_max_steps": a.max_steps,
           "eval_every_s": 1e9 if a.smoke else 15.0, "smoke": a.smoke, "encoder_init": enc_state}
    dfsn, r = engine.train_dfsn(data, cfg, device, a.out)  # writes dfsn.npz at each better seg val Dice
    metrics["dfsn"] = r
    write_json(a.out, "metrics.json", metrics)

    # round 4's protocol: fixed steps, one evaluation at the end, final raw weights (no EMA)
    base = member_config(a.pack, a.amp, dtcn_bs=3 if a.smoke else 32, max_steps=a.steps, budget_s=1e9, eval_every_s=1e9,
                         smoke=a.smoke, head_seed=6, ema_decay=0)
    metrics["members"] = []
    for k, (seed, share) in enumerate(parse_members(a.members)):
        cfg_m = dict(base, seed=seed, ucsd_min_share=share, dtcn_name=f"ssl-member{k}(seed {seed}, ucsd>={share})")
        model, rm = engine.train_dtcn(data, cfg_m, dfsn, device, a.out, finetune=True)
        metrics["members"].append({"seed": seed, **rm})
        save_fp16(os.path.join(a.out, f"member_{k}.npz"), model.state_dict())
        write_json(a.out, "metrics.json", metrics)
        del model
    return engine.finish_run(metrics, t_start, a.out)


if __name__ == "__main__":
    main()
