"""ONNX Runtime on a lent GPU machine: which execution providers its Python onnxruntime offers, and, when the CUDA
provider is among them, the shipped graph (models/dfsn_dtcn.onnx) under the settings CovidFunctions.Inference uses
(OnnxModel.CudaProviderOptions: device 0, cuDNN conv algorithm search HEURISTIC; graph optimisation ALL), checked
against the CPU provider and the committed parity fixtures, and timed at batch 1 / 8 / 32.

  python3 src/training/covidfn_train/ort_gpu_probe.py --model models/dfsn_dtcn.onnx \
      --fixtures tests/data/inference --out DIR [--iters 20]

Why: the .NET CUDA path cannot be run on the lent machine (no .NET there, and ONNX Runtime GPU's CUDA provider library
is 284 MB, over what a device call carries), so this is the nearest check of the same graph with the same provider
options. Writes DIR/ort_gpu_probe.json; needs numpy and onnxruntime only.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def _session(ort, model, provider):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if provider == "CUDA":
        providers = [("CUDAExecutionProvider", {"device_id": 0, "cudnn_conv_algo_search": "HEURISTIC"}), "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(model, so, providers=providers)


def _rate(sess, batch, iters):
    x = np.random.default_rng(0).random((batch, 1, 352, 352), dtype=np.float32)
    for _ in range(3):
        sess.run(None, {"image": x})
    t = time.perf_counter()
    for _ in range(iters):
        sess.run(None, {"image": x})
    return batch * iters / (time.perf_counter() - t)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--iters", type=int, default=20)
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    res = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        import onnxruntime as ort
    except ImportError as ex:  # the report says so rather than failing the device call
        res["error"] = f"onnxruntime not importable: {ex}"
        _write(a.out, res)
        return
    res["onnxruntime"] = ort.__version__
    res["available_providers"] = ort.get_available_providers()
    res["model_bytes"] = os.path.getsize(a.model)
    x = np.load(os.path.join(a.fixtures, "input.npy"))
    want = {n: np.load(os.path.join(a.fixtures, f"dfsn_dtcn.{n}.npy")) for n in ("lesion_prob", "class_prob")}
    providers = ["CPU"] + (["CUDA"] if "CUDAExecutionProvider" in res["available_providers"] else [])
    outs = {}
    for p in providers:
        try:
            t = time.perf_counter()
            sess = _session(ort, a.model, p)
            entry = {"session_providers": sess.get_providers(), "create_s": time.perf_counter() - t}
            got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": x})))
            outs[p] = got
            entry["max_abs_vs_fixture"] = {n: float(np.abs(got[n] - want[n]).max()) for n in want}
            entry["slices_per_s"] = {str(b): _rate(sess, b, a.iters if b >= 8 else a.iters * 4) for b in (1, 8, 32)}
        except Exception as ex:  # noqa: BLE001 - a provider that fails to load is the finding
            entry = {"error": f"{type(ex).__name__}: {ex}"[:2000]}
        res[p] = entry
        print(p, json.dumps(entry)[:400], flush=True)
    if "CPU" in outs and "CUDA" in outs:
        res["max_abs_cuda_vs_cpu"] = {n: float(np.abs(outs["CUDA"][n] - outs["CPU"][n]).max()) for n in want}
    _write(a.out, res)


def _write(out, res):
    with open(os.path.join(out, "ort_gpu_probe.json"), "w", encoding="utf-8") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res)[:1500], flush=True)


if __name__ == "__main__":
    main()
