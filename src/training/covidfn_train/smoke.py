"""CI training smoke test: pack a handful of images, train each stage for 2 steps on CPU, export ONNX.

  cd src/training && /usr/bin/python3 -m covidfn_train.smoke --out DIR

DIR/models/ then holds dfsn_dtcn.onnx, dfsn.onnx, dtcn.onnx, manifest.json; DIR/fixtures/ the PyTorch outputs on
synthetic inputs (.npy) that the C# test compares with ONNX Runtime. Uses the ImageNet encoder when the NuGet
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
    from . import export_onnx, run_all
    from .data import default_shared
    pack = os.path.join(a.out, "pack")
    run = os.path.join(a.out, "run")
    pack_for_gpu.main(["--smoke", "--shared", a.shared or default_shared(), "--out", pack])
    run_all.main(["--pack", pack, "--out", run, "--device", "cpu", "--smoke", "--skip-bench", "--skip-probe"])
    export_onnx.main(["--ckpt-dir", run, "--out", os.path.join(a.out, "models"), "--fixtures", os.path.join(a.out, "fixtures"),
                      "--data-note", "SMOKE TEST ONLY: 2 steps per stage on a handful of images"])
    print(f"smoke OK in {time.time() - t0:.0f} s: {a.out}", flush=True)


if __name__ == "__main__":
    main()
