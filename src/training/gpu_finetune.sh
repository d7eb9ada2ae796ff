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
MEMBER_BUDGET="${MEMBER_BUDGET:-80}"
MEMBERS="${MEMBERS:-11:none,12:none,11:0.5,12:0.5}"
cd "$(dirname "$0")/../.."
source src/training/gpu_common.sh
gpu_start gpu_finetune.sh "$PACK/index.json" "$INIT"
N=$(echo "$MEMBERS" | tr ',' '\n' | wc -l)
HARD=$((N * MEMBER_BUDGET + 150))
EXTRA=()
if [ "${SMOKE:-0}" = "1" ]; then EXTRA=(--smoke); HARD=3600; fi
if [ "${SKIP_BENCH:-0}" = "1" ]; then EXTRA+=(--skip-bench); fi
# progress.log is written by the Python run itself; its stdout is not kept twice
PYTHONUNBUFFERED=1 PYTHONPATH=src/training timeout -k 10 "$HARD" "$PY" -u -m covidfn_train.finetune_round \
  --pack "$PACK" --dfsn-init "$INIT" --out "$OUT" --device "$DEVICE" --member-budget-s "$MEMBER_BUDGET" \
  --members "$MEMBERS" "${EXTRA[@]}" > /dev/null 2>> "$OUT/progress.log"
RC=$?
gpu_stop
ls -la "$OUT" | tee -a "$OUT/progress.log"
log "gpu_finetune.sh end rc=$RC"
exit "$RC"
