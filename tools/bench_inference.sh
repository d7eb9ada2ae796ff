#!/usr/bin/env bash
# ORT (C#) vs PyTorch per-slice CPU time on the same weights, in one run (docs/benchmarks.md).
# Usage: tools/bench_inference.sh CKPT_DIR [MODELS_DIR=models] [SLICES=8] [THREADS=1,2] [BATCHES=1,4]
# CKPT_DIR holds the training checkpoints (dfsn.npz, dtcn_frozen_head.npz, dtcn_finetune.npz) that MODELS_DIR was exported from,
# or is a comma list of member checkpoints (A.npz,B.npz: the mean-of-members graph of export_onnx --members).
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT="${1:?checkpoint dir}"; MODELS="${2:-models}"; SLICES="${3:-8}"; THREADS="${4:-1,2}"; BATCHES="${5:-1,4}"
MODELS="$(cd "$MODELS" && pwd)"
if [[ "$CKPT" == *.npz* ]]; then
  TORCH_SOURCE=(--members "$(for p in ${CKPT//,/ }; do printf '%s,' "$(realpath "$p")"; done | sed 's/,$//')")
else
  TORCH_SOURCE=(--ckpt-dir "$(cd "$CKPT" && pwd)")
fi
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
dotnet build tools/InferenceBench/InferenceBench.csproj -c Release -v q -nologo 2>&1 | grep -E "error" || true
dotnet tools/InferenceBench/bin/Release/net10.0/InferenceBench.dll "$MODELS" "$SLICES" "$THREADS" "$BATCHES"
(cd src/training && /usr/bin/python3 -m covidfn_train.bench_torch "${TORCH_SOURCE[@]}" --slices "$SLICES" --threads "$THREADS" --batches "$BATCHES")
