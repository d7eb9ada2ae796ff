"""Round 6's pre-registered numbers and decision (docs/model-card.md "Round 6 (prepared, not run)"), on CPU after the
device call of `gpu_round6.sh`.

  cd src/training && /usr/bin/python3 -m covidfn_train.round6_report --fetched FILES_AT --work ../../.carry/round6 \
      --out ../../.carry/round6/round6_report.json [--shipped-scores ../../.carry/scores/shipped]

1. Unpacks FILES_AT/r6/*.tar (what the call brought back) into WORK/.
2. Scores every returned checkpoint alone on the ORIGINAL UCSD val files through the serving preprocessing
   (score_slices.score: lung2d-v1, the image and its mirror; WORK/scores/<arm>/<checkpoint>/scores_ucsd-val.npz,
   resumable). An ensemble's scores are the mean of its members' class probabilities, written as logits = log(mean p),
   exactly what score_slices.MeanOfMembers and the exported EnsembleCombined compute (lesion maps: only the mean
   lesion probability, which is linear in the members').
3. Per arm: the primary candidate (arm C: the EMA weights; L and A: the final raw weights) as the mean of its members,
   each member alone, and arm C's raw weights = the control. Accuracy / F1 / AUC, covid vs rest, argmax label,
   p(covid) for AUC (round_report.summary); paired bootstrap (5,000, seed 0) against the control and, with
   --shipped-scores, against the shipped graph.
4. The rule written before the call: an arm ships only if it finished >= 2 members and its primary mean on the original
   files has AUC > the shipped graph's, accuracy >= and F1 >= the shipped graph's (models/manifest.json
   validation.classification_val, selection-biased: 0.925 / 0.873 / 0.882) and the same mean's lesion map keeps
   Dice@0.5 >= 0.78 on the 10 original seg val slices (evaluate.segmentation, computed only for an arm whose
   classification passes). Several passing: the highest AUC.
5. With an arm to ship (or --export-arm, the CPU smoke test) the candidate graph is exported with export_onnx
   (--members, --fp16-storage) into WORK/export/ and its size checked (< 25 MB). Shipping itself is the lead's
   step (models/, tests/data/inference, C# parity tests; the model card lists the commands).

--limit N scores only N UCSD val images (half covid; the smoke test). Writes --out (one JSON, no image data).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import tarfile
import time

import numpy as np
import torch

from . import CLASSES, export_onnx
from .calibrate import softmax
from .data import cls_index, default_shared
from .evaluate import segmentation
from .round_report import paired_bootstrap, summary
from .score_slices import load_dtcn, score

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
SIZE_CAP_BYTES = 25 * 10**6
SEG_DICE_MIN = 0.78
PRIMARY = {"C": "ema", "L": "member", "A": "member"}  # checkpoint prefix of each arm's primary weights


def unpack(fetched: str, work: str) -> list[str]:
    tars = sorted(glob.glob(os.path.join(fetched, "r6", "*.tar")) + glob.glob(os.path.join(fetched, "*.tar")))
    os.makedirs(work, exist_ok=True)
    for t in tars:
        with tarfile.open(t) as tf:
            for m in tf.getmembers():
                if not m.name.startswith("r6/") or ".." in m.name.split("/") or not (m.isfile() or m.isdir()):
                    raise SystemExit(f"{t}: unexpected member {m.name!r} (expected r6/<arm>/...)")
            tf.extractall(work)
    return [os.path.basename(t) for t in tars]


def ucsd_val_items(shared: str, limit: int) -> list[dict]:
    items = [it for it in cls_index(shared) if it["split"] == "val" and it["source"] == "ucsd"]
    if limit:
        covid = [it for it in items if it["label"] == "covid"][: (limit + 1) // 2]
        rest = [it for it in items if it["label"] != "covid"][: limit // 2]
        keep = {it["id"] for it in covid + rest}
        items = [it for it in items if it["id"] in keep]
    return items


def score_checkpoint(ckpt: str, out_dir: str, items: list[dict], threads: int) -> dict:
    path = os.path.join(out_dir, "scores_ucsd-val.npz")
    if not os.path.exists(path):
        os.makedirs(out_dir, exist_ok=True)
        torch.set_num_threads(threads)
        t0 = time.time()
        res = score(load_dtcn(ckpt), [it["path"] for it in items], partial=os.path.join(out_dir, "partial_ucsd-val.npz"))
        np.savez(path, ids=np.array([it["id"] for it in items]), y=np.array([it["y"] for it in items]),
                 source=np.array([it["source"] for it in items]), **res)
        print(f"  scored {ckpt} on {len(items)} images in {time.time() - t0:.0f} s", flush=True)
    return load(out_dir)


def load(d: str) -> dict:
    z = np.load(os.path.join(d, "scores_ucsd-val.npz"), allow_pickle=True)
    return {"ids": [str(i) for i in z["ids"]], "y": z["y"], "source": z["source"], "logits": z["logits"],
            "logits_flip": z["logits_flip"], "lesion_mean": z["lesion_mean"], "lesion_mean_tta": z["lesion_mean_tta"]}


def write_mean(members: list[dict], out_dir: str) -> None:
    """The ensemble's score file: log of the mean member probabilities (MeanOfMembers' logits)."""
    os.makedirs(out_dir, exist_ok=True)
    first = members[0]
    if any(m["ids"] != first["ids"] for m in members):
        raise SystemExit("members were not scored on the same images")
    np.savez(os.path.join(out_dir, "scores_ucsd-val.npz"), ids=np.array(first["ids"]), y=first["y"], source=first["source"],
             logits=np.log(np.mean([softmax(m["logits"]) for m in members], 0)),
             logits_flip=np.log(np.mean([softmax(m["logits_flip"]) for m in members], 0)),
             lesion_mean=np.mean([m["lesion_mean"] for m in members], 0),
             lesion_mean_tta=np.mean([m["lesion_mean_tta"] for m in members], 0))


def as_round_report(s: dict) -> dict:
    return {"ids": s["ids"], "p": softmax(s["logits"]), "covid": (s["y"] == 0).astype(int)}


def shipped_numbers(manifest: str) -> dict:
    with open(manifest) as fh:
        v = json.load(fh)["validation"]["classification_val"]["ucsd_val_covid_vs_rest"]
    return {k: v[k] for k in ("n", "accuracy", "f1", "auc")}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--fetched", required=True, help="the device call's files (files_at): r6/*.tar")
    ap.add_argument("--work", required=True, help="where the tars are unpacked and the scores written (git-ignored, e.g. .carry/round6)")
    ap.add_argument("--out", required=True, help="the report JSON")
    ap.add_argument("--shared", default=None)
    ap.add_argument("--manifest", default=os.path.join(REPO, "models", "manifest.json"),
                    help="the shipped graph's manifest: its UCSD val numbers are the bar of the rule")
    ap.add_argument("--shipped-scores", default=None, help="DIR with the shipped graph's scores_ucsd-val.npz (paired bootstrap)")
    ap.add_argument("--shipped-classify-json", default=None,
                    help="instead: `covidfn classify ../shared/data/cls/ucsd-covid-ct --json F` of the shipped graph (item paths "
                         "relative to that folder, e.g. COVID/x.png = id ucsd/COVID/x.png)")
    ap.add_argument("--limit", type=int, default=0, help="score only this many UCSD val images (smoke test)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--export-arm", default=None, help="export this arm's primary mean even if the rule does not ship it (smoke test)")
    a = ap.parse_args(argv)
    t_start = time.time()
    tars = unpack(a.fetched, a.work)
    items = ucsd_val_items(a.shared or default_shared(), a.limit)
    bar = shipped_numbers(a.manifest)
    report = {"round": 6, "how": __doc__.split("\n\n")[0].strip(), "tars": tars, "images": len(items), "limit": a.limit,
              "shipped_bar": bar, "arms": {}}
    scores, ckpts = {}, {}
    for arm_dir in sorted(glob.glob(os.path.join(a.work, "r6", "*", "metrics.json"))):
        arm = os.path.basename(os.path.dirname(arm_dir))
        if arm not in PRIMARY:
            continue
        m = json.load(open(arm_dir))
        for prefix in sorted({"member", PRIMARY[arm]}):
            paths = sorted(glob.glob(os.path.join(os.path.dirname(arm_dir), f"{prefix}_*.npz")))
            ckpts[(arm, prefix)] = paths
            scores[(arm, prefix)] = [score_checkpoint(p, os.path.join(a.work, "scores", arm, os.path.basename(p)[:-4]), items, a.threads)
                                     for p in paths]
        report["arms"][arm] = {"recipe": m.get("recipe"), "protocol": m.get("protocol"), "members_finished": len(m["members"]),
                               "seeds": [r["seed"] for r in m["members"]], "seconds": [r["seconds"] for r in m["members"]],
                               "seconds_per_step": [r["seconds_per_step"] for r in m["members"]],
                               "pack": m.get("ensemble_pack"),
                               "seg_val_dice_pack": [((r.get("ema_seg_val") if PRIMARY[arm] == "ema" else r.get("seg_val_after_finetune")) or {}).get("dice")
                                                     for r in m["members"]]}
    control = scores.get(("C", "member")) or []
    ctrl = None
    if len(control) >= 1:
        write_mean(control, os.path.join(a.work, "scores", "C_control_mean"))
        ctrl = as_round_report(load(os.path.join(a.work, "scores", "C_control_mean")))
        report["control"] = {"what": "arm C's final raw weights = round 4's recipe on this call's DFSN", "members": len(control),
                             **summary(ctrl), "members_alone": [summary(as_round_report(s)) for s in control]}
    shipped = None
    if a.shipped_classify_json:
        shipped = as_round_report(shipped_from_classify(a.shipped_classify_json, items))
        report["shipped_scores"] = {"classify_json": a.shipped_classify_json, **summary(shipped)}
    elif a.shipped_scores and os.path.exists(os.path.join(a.shipped_scores, "scores_ucsd-val.npz")):
        shipped = as_round_report(load_shipped(a.shipped_scores, items))
        report["shipped_scores"] = {"dir": a.shipped_scores, **summary(shipped)}
    passing = []
    for arm, info in report["arms"].items():
        members = scores.get((arm, PRIMARY[arm])) or []
        if not members:
            info["primary"] = None
            continue
        mean_dir = os.path.join(a.work, "scores", f"{arm}_primary_mean")
        write_mean(members, mean_dir)
        cand = as_round_report(load(mean_dir))
        p = {"weights": PRIMARY[arm], "members": len(members), **summary(cand),
             "members_alone": [summary(as_round_report(s)) for s in members]}
        if ctrl is not None and (arm, PRIMARY[arm]) != ("C", "member"):
            p["vs_control"] = paired_bootstrap(ctrl, cand)
            p["auc_minus_control_by_seed"] = [summary(as_round_report(s))["auc"] - summary(as_round_report(c))["auc"]
                                              for s, c in zip(members, control)]
        if shipped is not None:
            p["vs_shipped"] = paired_bootstrap(shipped, cand)
        checks = {"members>=2": len(members) >= 2, "auc>shipped": p["auc"] > bar["auc"],
                  "accuracy>=shipped": p["accuracy"] >= bar["accuracy"], "f1>=shipped": p["f1"] >= bar["f1"]}
        # segmentation of the graph that would ship: the members' mean lesion map on the 10 ORIGINAL seg val slices
        # (evaluate.segmentation, as the shipped manifest's number); computed only where classification passes
        checks["seg_dice>=0.78"] = None
        if all(checks[k] for k in ("members>=2", "auc>shipped", "accuracy>=shipped", "f1>=shipped")) or arm == a.export_arm:
            torch.set_num_threads(a.threads)
            p["seg_val_original"] = segmentation(load_dtcn(",".join(ckpts[(arm, PRIMARY[arm])])), a.shared or default_shared())
            checks["seg_dice>=0.78"] = p["seg_val_original"]["dice@0.5"] >= SEG_DICE_MIN
        p["rule"] = checks
        p["passes"] = all(bool(v) for v in checks.values()) and not a.limit  # a --limit run never ships
        if p["passes"]:
            passing.append(arm)
        info["primary"] = p
        print(f"arm {arm} ({PRIMARY[arm]}, {len(members)} members): acc {p['accuracy']:.3f} F1 {p['f1']:.3f} AUC {p['auc']:.3f} "
              f"rule {checks}", flush=True)
    ship = max(passing, key=lambda k: report["arms"][k]["primary"]["auc"]) if passing else None
    report["decision"] = {"ship": ship, "passing": passing,
                          "rule": "members >= 2; on the original UCSD val files AUC > shipped, accuracy >= shipped, F1 >= shipped "
                                  "(models/manifest.json); the mean's seg val Dice@0.5 (10 original slices) >= 0.78; several: highest AUC"}
    export_arm = ship or a.export_arm
    if export_arm:
        paths = ckpts.get((export_arm, PRIMARY[export_arm])) or []
        if not paths:
            raise SystemExit(f"arm {export_arm}: no primary checkpoints to export")
        dest = os.path.join(a.work, "export", export_arm)
        validation = os.path.join(dest, "round6_validation.json")
        os.makedirs(dest, exist_ok=True)
        with open(validation, "w") as fh:
            json.dump({"how": "round 6 (docs/model-card.md): original UCSD val files, serving preprocessing, no selection",
                       "arm": export_arm, "ucsd_val_covid_vs_rest": {k: report["arms"][export_arm]["primary"][k] for k in ("n", "accuracy", "f1", "auc")},
                       "segmentation_val": report["arms"][export_arm]["primary"].get("seg_val_original"),
                       "seg_val_dice_pack_members": report["arms"][export_arm]["seg_val_dice_pack"]}, fh, indent=1, default=float)
        export_onnx.main(["--members", ",".join(paths), "--fp16-storage", "--out", os.path.join(dest, "models"),
                          "--fixtures", os.path.join(dest, "fixtures"), "--fixture-slices", "2", "--validation", validation,
                          "--data-note", f"round 6 arm {export_arm}" + (" (SMOKE TEST ONLY)" if a.limit else "")])
        size = os.path.getsize(os.path.join(dest, "models", "dfsn_dtcn.onnx"))
        report["export"] = {"arm": export_arm, "dir": dest, "bytes": size, "under_25_MB": size < SIZE_CAP_BYTES,
                            "members": [os.path.basename(p) for p in paths]}
        print(f"exported arm {export_arm}: {size / 1e6:.2f} MB", flush=True)
    report["total_s"] = time.time() - t_start
    with open(a.out, "w") as fh:
        json.dump(report, fh, indent=1, default=float)
    print(f"decision: {report['decision']['ship'] or 'nothing shipped'}; report {a.out} ({report['total_s']:.0f} s)", flush=True)
    return report


def load_shipped(d: str, items: list[dict]) -> dict:
    """The shipped graph's scores (score_slices or `covidfn classify` converted: ids, y, logits) on the same images."""
    z = np.load(os.path.join(d, "scores_ucsd-val.npz"), allow_pickle=True)
    pos = {str(i): k for k, i in enumerate(z["ids"])}
    missing = [it["id"] for it in items if it["id"] not in pos]
    if missing:
        raise SystemExit(f"{d}: no shipped scores for {missing[:3]} ...")
    sel = [pos[it["id"]] for it in items]
    return {"ids": [it["id"] for it in items], "y": z["y"][sel], "logits": z["logits"][sel]}


def shipped_from_classify(path: str, items: list[dict]) -> dict:
    """The shipped graph's scores from the serving CLI's JSON ({"items": [{"path", "probabilities"}]}): logits =
    log of its class probabilities, in CLASSES order."""
    with open(path) as fh:
        rows = {"ucsd/" + r["path"].replace("\\", "/"): r["probabilities"] for r in json.load(fh)["items"]}
    missing = [it["id"] for it in items if it["id"] not in rows]
    if missing:
        raise SystemExit(f"{path}: no item for {missing[:3]} ... (run covidfn classify on ../shared/data/cls/ucsd-covid-ct)")
    p = np.array([[rows[it["id"]][c] for c in CLASSES] for it in items], dtype=np.float64)
    return {"ids": [it["id"] for it in items], "y": np.array([it["y"] for it in items]), "logits": np.log(np.clip(p, 1e-12, 1))}


if __name__ == "__main__":
    main()
