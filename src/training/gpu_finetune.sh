#!/usr/bin/env bash
# Second GPU round (one device call): DTCN members fine-tuned from the trained DFSN, EMA, weight averaging, then
# PyTorch throughput of the chosen model (docs/model-card.md, "Training round 2"). Outputs go to $OUT as they come.
#
#   mkdir -p .carry/init && <fp16 copy of round 1's dfsn.npz>   (see docs/model-card.md)
#   OUT=/some/empty/dir bash src/training/gpu_finetune.sh     # from the repo root; carry .carry/pack/{cls,seg,index.json}, .carry/init
#
# Env: SKIP_BENCH=1 (no throughput run), MEMBER_BUDGET (seconds per member, default 80), MEMBERS (default 11:none,12:none,11:0.5,12:0.5), PACK, INIT,
#      PYTHON (default python3), SMOKE=1 (CPU check of this script on a smoke pack).
set -uo pipefail
: "${OUT:?set OUT to an empty output folder}"
PACK="${PACK:-.carry/pack}"
INIT="${INIT:-.carry/init/dfsn.npz}"
PY="${PYTHON:-python3}"
MEMBER_BUDGET="${MEMBER_BUDGET:-80}"
MEMBERS="${MEMBERS:-11:none,12:none,11:0.5,12:0.5}"
cd "$(dirname "$0")/../.."
mkdir -p "$OUT"
log() { echo "[$(date -u +%H:%M:%S)Z] $*" | tee -a "$OUT/progress.log"; }
log "gpu_finetune.sh start in $(pwd)"
for f in "$PACK/index.json" "$INIT"; do
  if [ ! -f "$f" ]; then log "ERROR: $f missing (carry .carry/pack and .carry/init)"; exit 2; fi
done
{ uname -a; nvidia-smi 2>&1 | head -15; du -sh "$PACK" "$INIT"
  "$PY" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
  "$PY" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())" 2>&1
} 2>&1 | tee -a "$OUT/progress.log"
DEVICE="${DEVICE:-$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}"
N=$(echo "$MEMBERS" | tr ',' '\n' | wc -l)
HARD=$((N * MEMBER_BUDGET + 150))
EXTRA=()
if [ "${SMOKE:-0}" = "1" ]; then EXTRA=(--smoke); HARD=3600; fi
if [ "${SKIP_BENCH:-0}" = "1" ]; then EXTRA+=(--skip-bench); fi
UTIL_PID=""
if command -v nvidia-smi >/dev/null 2>&1 && [ "$DEVICE" = "cuda" ]; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw,clocks.sm --format=csv -l 5 > "$OUT/gpu_util.csv" 2>&1 &
  UTIL_PID=$!
fi
# progress.log is written by the Python run itself; its stdout is not kept twice
PYTHONUNBUFFERED=1 PYTHONPATH=src/training timeout -k 10 "$HARD" "$PY" -u -m covidfn_train.finetune_round \
  --pack "$PACK" --dfsn-init "$INIT" --out "$OUT" --device "$DEVICE" --member-budget-s "$MEMBER_BUDGET" \
  --members "$MEMBERS" "${EXTRA[@]}" > /dev/null 2>> "$OUT/progress.log"
RC=$?
if [ -n "$UTIL_PID" ]; then kill "$UTIL_PID" 2>/dev/null; fi
ls -la "$OUT" | tee -a "$OUT/progress.log"
log "gpu_finetune.sh end rc=$RC"
exit "$RC"
