#!/usr/bin/env bash
# The one GPU run (H200): trains DFSN, DTCN frozen + fine-tuned, evaluates, probes source confounding, measures
# throughput; everything goes to $OUT as it goes (progress.log, train.log, metrics.json, *.npz checkpoints).
#
#   OUT=/some/empty/dir bash src/training/gpu_run.sh            # from the repo root, with .carry/pack carried
#
# Env: BUDGET (total seconds for the Python run, default 400; a hard `timeout` kills it at BUDGET+90),
#      PACK (default .carry/pack), PYTHON (default python3), DEVICE (default cuda if available), SMOKE=1 (CPU CI check of this script).
set -uo pipefail
: "${OUT:?set OUT to an empty output folder}"
BUDGET="${BUDGET:-400}"
PACK="${PACK:-.carry/pack}"
PY="${PYTHON:-python3}"
cd "$(dirname "$0")/../.."
mkdir -p "$OUT"
log() { echo "[$(date -u +%H:%M:%S)Z] $*" | tee -a "$OUT/progress.log"; }
log "gpu_run.sh start in $(pwd), budget ${BUDGET}s"
if [ ! -f "$PACK/index.json" ]; then log "ERROR: $PACK missing (run src/training/pack_for_gpu.py and carry .carry)"; exit 2; fi
{ date -u; uname -a; nvidia-smi 2>&1 | head -20; du -sh "$PACK"
  "$PY" -c "import sys, numpy, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
  "$PY" -c "import PIL; print('PIL', PIL.__version__)" 2>&1 || "$PY" -c "import torchvision; print('torchvision', torchvision.__version__)" 2>&1
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
DEVICE="${DEVICE:-$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}"
EXTRA=(--dfsn-bs 32 --dtcn-bs 32)
HARD=$((BUDGET + 90))
if [ "${SMOKE:-0}" = "1" ]; then EXTRA=(--smoke); HARD=3600; fi  # smoke on a shared 2-core CPU: steps are slow
UTIL_PID=""
if command -v nvidia-smi >/dev/null 2>&1 && [ "$DEVICE" = "cuda" ]; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw --format=csv -l 5 > "$OUT/gpu_util.csv" 2>&1 &
  UTIL_PID=$!
fi
PYTHONPATH=src/training timeout -k 10 "$HARD" "$PY" -u -m covidfn_train.run_all \
  --pack "$PACK" --out "$OUT" --device "$DEVICE" --time-budget-s "$BUDGET" "${EXTRA[@]}" 2>&1 | tee "$OUT/train.log"
RC=${PIPESTATUS[0]}
if [ -n "$UTIL_PID" ]; then kill "$UTIL_PID" 2>/dev/null; fi
ls -la "$OUT" | tee -a "$OUT/progress.log"
log "gpu_run.sh end rc=$RC"
exit "$RC"
