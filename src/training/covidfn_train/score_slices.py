"""Score classification images with a trained DTCN, with and without horizontal-flip test-time augmentation.

  cd src/training && /usr/bin/python3 -m covidfn_train.score_slices --ckpt ../../.carry/gpu-out/dtcn_finetune.npz \
      --out DIR [--groups val,ucsd-train]

Each image is read from the ORIGINAL file in ../shared/data and preprocessed exactly as the C# serving path does
(lung2d-v1, preprocess.py; not the JPEG q90 copies of the GPU pack). For each image and each view (the image and its
left-right mirror) it stores the class logits and the lesion statistics the patient-level rule uses (mean lesion
probability over the 352x352 map, fraction of pixels >= 0.5); for the flip-averaged view the lesion map is the mean
of the map and the un-mirrored map of the mirror. Output: DIR/scores_<group>.npz (ids, y, source, arrays) used by
calibrate.py. Groups: "val" = every validation item of data.cls_index (UCSD official val, MosMed/CC-CCII/neg-unknown
val; also as "ucsd-val" + "other-val"), "ucsd-train" = UCSD official train (the model was trained on these: only for a comparison, never a
validation number).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from .data import cls_index, default_shared
from .engine import load_dtcn_members
from .models import DTCN
from .preprocess import preprocess_file


class MeanOfMembers(torch.nn.Module):
    """Scores like models.EnsembleCombined (the exported mean of members): `logits` are log mean class
    probabilities (softmax of them gives the mean probabilities back), the lesion map is the mean map."""

    def __init__(self, members: list[DTCN]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def logits_and_prob(self, x):
        outs = [m.logits_and_prob(x) for m in self.members]
        p = torch.stack([torch.softmax(o[0], 1) for o in outs]).mean(0)
        return torch.log(p), torch.stack([o[1] for o in outs]).mean(0), None


def load_dtcn(ckpt: str) -> torch.nn.Module:
    """One checkpoint, or a comma list of members scored as their mean."""
    members = load_dtcn_members(ckpt)
    return members[0] if len(members) == 1 else MeanOfMembers(members).eval()


KEYS = ("logits", "logits_flip", "lesion_mean", "lesion_frac", "lesion_mean_tta", "lesion_frac_tta")


@torch.no_grad()
def score(model: DTCN, paths: list[str], bs: int = 8, log_every: int = 40, partial: str | None = None) -> dict:
    """Scores paths in batches; with `partial`, the results so far are saved there after every batch and a rerun
    resumes after them (the shared 2-core machine is slow)."""
    out = {k: [] for k in KEYS}
    done = 0
    if partial and os.path.exists(partial):
        with np.load(partial) as z:
            done = int(z["done"])
            for k in KEYS:
                out[k].append(z[k])
    t0 = time.time()
    for i in range(done, len(paths), bs):
        x = torch.from_numpy(np.stack([preprocess_file(p) for p in paths[i:i + bs]])).unsqueeze(1)
        xf = torch.flip(x, dims=[3])
        logits, prob, _ = model.logits_and_prob(torch.cat([x, xf]))
        n = x.shape[0]
        p, pf = prob[:n, 0], torch.flip(prob[n:, 0], dims=[2])
        pt = 0.5 * (p + pf)
        out["logits"].append(logits[:n].numpy())
        out["logits_flip"].append(logits[n:].numpy())
        out["lesion_mean"].append(p.mean(dim=(1, 2)).numpy())
        out["lesion_frac"].append((p >= 0.5).float().mean(dim=(1, 2)).numpy())
        out["lesion_mean_tta"].append(pt.mean(dim=(1, 2)).numpy())
        out["lesion_frac_tta"].append((pt >= 0.5).float().mean(dim=(1, 2)).numpy())
        if partial:
            np.savez(partial + ".tmp.npz", done=i + n, **{k: np.concatenate(v) for k, v in out.items()})
            os.replace(partial + ".tmp.npz", partial)
        if (i // bs) % max(1, log_every // bs) == 0:
            print(f"  {i + n}/{len(paths)} images, {time.time() - t0:.0f} s", flush=True)
    return {k: np.concatenate(v) for k, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True, help="dtcn_finetune.npz (the weights exported as models/dfsn_dtcn.onnx), or a comma list of "
                                                  "members (finetune_round member_k.npz) scored as their mean")
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", default=None)
    ap.add_argument("--groups", default="val")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    items = cls_index(a.shared or default_shared())
    model = load_dtcn(a.ckpt)
    for group in a.groups.split(","):
        if group == "val":
            sel = [it for it in items if it["split"] == "val"]
        elif group == "ucsd-val":
            sel = [it for it in items if it["split"] == "val" and it["source"] == "ucsd"]
        elif group == "other-val":
            sel = [it for it in items if it["split"] == "val" and it["source"] != "ucsd"]
        elif group == "ucsd-train":
            sel = [it for it in items if it["split"] == "train" and it["source"] == "ucsd"]
        else:
            raise SystemExit(f"unknown group {group}")
        print(f"{group}: {len(sel)} images", flush=True)
        res = score(model, [it["path"] for it in sel], partial=os.path.join(a.out, f"partial_{group}.npz"))
        np.savez(os.path.join(a.out, f"scores_{group}.npz"), ids=np.array([it["id"] for it in sel]),
                 y=np.array([it["y"] for it in sel]), source=np.array([it["source"] for it in sel]), **res)


if __name__ == "__main__":
    main()
