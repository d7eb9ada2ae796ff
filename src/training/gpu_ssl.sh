#!/usr/bin/env bash
# Round 5 (run in session 11: not shipped, SSL lowered UCSD AUC; docs/model-card.md "Round 5 results"): SimCLR on CT from the ImageNet encoder, then the DFSN, then three
# DTCN members with round 4's protocol, in one device call (~510 s on an H100: load 30, SSL 120, DFSN 120, members
# 3 x 80). What the run writes comes back as tars of at most 15 MiB, $OUT/r5.<k>.tar (gpu_bundle).
#
#   OUT=/some/empty/dir bash src/training/gpu_ssl.sh   # from the repo root; carry .carry/pack/{cls,seg,index.json,encoder_resnet18.npz}
#
# Env: HARD (seconds before the run is stopped, default 560; members finished by then are kept), SSL_BUDGET (120),
#      DFSN_BUDGET (120), PACK, PYTHON, SMOKE=1 (CPU check on a smoke pack).
set -uo pipefail
: "${OUT:?set OUT to an empty output folder}"
HARD="${HARD:-560}"
cd "$(dirname "$0")/../.."
source src/training/gpu_common.sh
gpu_start "gpu_ssl.sh (hard ${HARD}s)" "$PACK/index.json" "$PACK/encoder_resnet18.npz"
EXTRA=()
if [ "${SMOKE:-0}" = "1" ]; then EXTRA=(--smoke); fi
PYTHONUNBUFFERED=1 PYTHONPATH=src/training timeout -k 10 "$HARD" "$PY" -u -m covidfn_train.ssl_round \
  --pack "$PACK" --out "$OUT/r5" --device "$DEVICE" --ssl-budget-s "${SSL_BUDGET:-120}" --dfsn-budget-s "${DFSN_BUDGET:-120}" \
  "${EXTRA[@]}" > /dev/null 2> "$OUT/stderr.log"
RC=$?
gpu_stop
gpu_bundle r5
ls -la "$OUT" | tee -a "$OUT/progress.log"
log "gpu_ssl.sh end rc=$RC"
exit "$RC"
