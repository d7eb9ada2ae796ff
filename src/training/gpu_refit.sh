#!/usr/bin/env bash
# Round 4 (one device call, pre-registered in docs/model-card.md "Round 4"): the round-2 DTCN recipe with a fixed
# step count and no checkpoint selection, trained twice at the same time on one GPU:
#   arm E (estimate): members on the classification TRAIN split only -> an estimate of the recipe on UCSD val that no
#                     choice was fitted to;
#   arm F (refit):    the same recipe and seeds offset by 10 on TRAIN + VAL (the seg validation slices stay out).
# Each member is written to $OUT/{E,F}/member_<k>.npz when it finishes, so a call that runs out of time keeps the
# members it finished.
#
#   OUT=/some/empty/dir bash src/training/gpu_refit.sh   # from the repo root; carry .carry/pack/{cls,seg,index.json}, .carry/init
#
# Env: STEPS (default 1150), SEEDS (default 31,32,33; F uses each + 10), SHARE (UCSD min share, default 0.5),
#      HARD (seconds before each arm is stopped, default 470), PACK, INIT, PYTHON, SMOKE=1 (CPU check on a smoke pack).
set -uo pipefail
: "${OUT:?set OUT to an empty output folder}"
PACK="${PACK:-.carry/pack}"
INIT="${INIT:-.carry/init/dfsn.npz}"
PY="${PYTHON:-python3}"
STEPS="${STEPS:-1150}"
SEEDS="${SEEDS:-31,32,33}"
SHARE="${SHARE:-0.5}"
HARD="${HARD:-470}"
cd "$(dirname "$0")/../.."
mkdir -p "$OUT/E" "$OUT/F"
log() { echo "[$(date -u +%H:%M:%S)Z] $*" | tee -a "$OUT/progress.log"; }
log "gpu_refit.sh start in $(pwd): steps $STEPS, seeds $SEEDS, share $SHARE, hard ${HARD}s"
for f in "$PACK/index.json" "$INIT"; do
  if [ ! -f "$f" ]; then log "ERROR: $f missing (carry .carry/pack and .carry/init)"; exit 2; fi
done
{ uname -a; nvidia-smi 2>&1 | head -15; du -sh "$PACK" "$INIT"
  "$PY" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} 2>&1 | tee -a "$OUT/progress.log"
DEVICE="${DEVICE:-$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}"
members() { local off=$1 out="" s; for s in ${SEEDS//,/ }; do out="$out,$((s + off)):$SHARE"; done; echo "${out#,}"; }
EXTRA=()
if [ "${SMOKE:-0}" = "1" ]; then EXTRA=(--smoke); fi
UTIL_PID=""
if command -v nvidia-smi >/dev/null 2>&1 && [ "$DEVICE" = "cuda" ]; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw,clocks.sm --format=csv -l 5 > "$OUT/gpu_util.csv" 2>&1 &
  UTIL_PID=$!
fi
run_arm() {  # $1 arm name, $2 seed offset, rest: extra flags
  local arm=$1 off=$2; shift 2
  PYTHONUNBUFFERED=1 PYTHONPATH=src/training timeout -k 10 "$HARD" "$PY" -u -m covidfn_train.finetune_round \
    --pack "$PACK" --dfsn-init "$INIT" --out "$OUT/$arm" --device "$DEVICE" --steps "$STEPS" --eval-every-s 1e9 --ema-decay 0 \
    --members "$(members "$off")" --members-only "$@" "${EXTRA[@]}" > /dev/null 2>> "$OUT/$arm/stderr.log"
  echo $? > "$OUT/$arm/rc"
}
run_arm E 0 &
PID_E=$!
run_arm F 10 --train-on-val &
PID_F=$!
wait "$PID_E" "$PID_F"
if [ -n "$UTIL_PID" ]; then kill "$UTIL_PID" 2>/dev/null; fi
RC_E=$(cat "$OUT/E/rc" 2>/dev/null || echo 99); RC_F=$(cat "$OUT/F/rc" 2>/dev/null || echo 99)
ls -la "$OUT" "$OUT/E" "$OUT/F" | tee -a "$OUT/progress.log"
# the device tool brings back at most 8 files: one tar per arm (round 4 lost arm F's files to that limit)
for arm in E F; do tar -C "$OUT" -cf "$OUT/$arm.tar" "$arm" && rm -rf "${OUT:?}/$arm"; done
log "gpu_refit.sh end: arm E rc=$RC_E, arm F rc=$RC_F"
[ "$RC_E" = 0 ] && [ "$RC_F" = 0 ]
