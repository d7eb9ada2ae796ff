#!/usr/bin/env bash
# The one GPU run (H200): trains DFSN, DTCN frozen + fine-tuned, evaluates, probes source confounding, measures
# throughput; everything goes to $OUT as it goes (progress.log, env.txt, train.log, metrics.json, *.npz checkpoints).
#
#   OUT=/some/empty/dir bash src/training/gpu_run.sh            # from the repo root, with .carry/pack carried
#
# Env: BUDGET (total seconds for the Python run, default 400; a hard `timeout` kills it at BUDGET+90),
#      PACK (default .carry/pack), PYTHON (default python3), DEVICE (default cuda if available), SMOKE=1 (CPU CI check of this script).
set -uo pipefail
: "${OUT:?set OUT to an empty output folder}"
BUDGET="${BUDGET:-400}"
cd "$(dirname "$0")/../.."
source src/training/gpu_common.sh
gpu_start "gpu_run.sh (budget ${BUDGET}s)" "$PACK/index.json"
EXTRA=(--dfsn-bs 32 --dtcn-bs 32)
HARD=$((BUDGET + 90))
if [ "${SMOKE:-0}" = "1" ]; then EXTRA=(--smoke); HARD=3600; fi  # smoke on a shared 2-core CPU: steps are slow
PYTHONPATH=src/training timeout -k 10 "$HARD" "$PY" -u -m covidfn_train.run_all \
  --pack "$PACK" --out "$OUT" --device "$DEVICE" --time-budget-s "$BUDGET" "${EXTRA[@]}" 2>&1 | tee "$OUT/train.log"
RC=${PIPESTATUS[0]}
gpu_stop
ls -la "$OUT" | tee -a "$OUT/progress.log"
log "gpu_run.sh end rc=$RC"
exit "$RC"
