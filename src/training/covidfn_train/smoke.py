"""CI training smoke test: pack a handful of images, train each stage for 2 steps on CPU, export ONNX.

  cd src/training && /usr/bin/python3 -m covidfn_train.smoke --out DIR

DIR/models/ then holds dfsn_dtcn.onnx, dfsn.onnx, dtcn.onnx, manifest.json; DIR/fixtures/ the PyTorch outputs on
synthetic inputs (.npy) that the C# test compares with ONNX Runtime. DIR/models-ensemble/ + DIR/fixtures-ensemble/ do
the same for the shipped layout: finetune_round members exported as their mean with fp16 storage; DIR/round4/ one
member of round 4's refit arm (fixed steps, train + val, members only); DIR/round5/ the prepared SSL round (2 steps per
stage, one member). Uses the ImageNet encoder when the NuGet
package is restored (tools/FetchResNet18), else a random encoder.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", default=None)
    a = ap.parse_args(argv)
    t0 = time.time()
    sys.path.insert(0, os.path.dirname(HERE))
    import pack_for_gpu  # noqa: E402
    from . import export_onnx, finetune_round, run_all
    from .data import default_shared
    pack = os.path.join(a.out, "pack")
    run = os.path.join(a.out, "run")
    pack_for_gpu.main(["--smoke", "--shared", a.shared or default_shared(), "--out", pack])
    run_all.main(["--pack", pack, "--out", run, "--device", "cpu", "--smoke", "--skip-bench", "--skip-probe"])
    export_onnx.main(["--ckpt-dir", run, "--out", os.path.join(a.out, "models"), "--fixtures", os.path.join(a.out, "fixtures"),
                      "--data-note", "SMOKE TEST ONLY: 2 steps per stage on a handful of images"])
    # round 2 (the shipped layout): members fine-tuned from the DFSN above, exported as their mean with fp16 storage
    round2 = os.path.join(a.out, "round2")
    finetune_round.main(["--pack", pack, "--dfsn-init", os.path.join(run, "dfsn.npz"), "--out", round2, "--device", "cpu",
                         "--smoke", "--members", "11:none,12:0.5", "--skip-bench"])
    export_onnx.main(["--members", ",".join(os.path.join(round2, f"member_{k}.npz") for k in range(2)), "--fp16-storage",
                      "--out", os.path.join(a.out, "models-ensemble"), "--fixtures", os.path.join(a.out, "fixtures-ensemble"),
                      "--metrics", os.path.join(round2, "metrics.json"), "--data-note", "SMOKE TEST ONLY"])
    # round 4 (gpu_arms.sh): fixed steps, final raw weights, members only; the refit arm trains on val too
    round4 = os.path.join(a.out, "round4")
    m4 = finetune_round.main(["--pack", pack, "--dfsn-init", os.path.join(run, "dfsn.npz"), "--out", round4, "--device", "cpu",
                              "--smoke", "--members", "41:0.5", "--members-only", "--train-on-val", "--steps", "1150",
                              "--ema-decay", "0", "--eval-every-s", "1e9"])
    r4 = m4["members"][0]
    if r4["train_splits"] != ["train", "val"] or r4["best_weights"] != "raw" or not os.path.isfile(os.path.join(round4, "member_0.npz")):
        raise SystemExit(f"round-4 refit arm: unexpected result {r4['train_splits']} {r4['best_weights']}")
    # round 5 (gpu_ssl.sh, run once in session 11): SimCLR on the encoder, DFSN from it, one DTCN member
    from . import ssl_round
    m5 = ssl_round.main(["--pack", pack, "--out", os.path.join(a.out, "round5"), "--device", "cpu", "--smoke", "--members", "31:0.5"])
    if m5["dfsn"]["pretrained_encoder"] not in ("imagenet+encoder_init", "encoder_init") or len(m5["members"]) != 1:
        raise SystemExit(f"round-5 smoke: the SSL encoder did not reach the DFSN ({m5['dfsn']['pretrained_encoder']})")
    print(f"smoke OK in {time.time() - t0:.0f} s: {a.out}", flush=True)


if __name__ == "__main__":
    main()
