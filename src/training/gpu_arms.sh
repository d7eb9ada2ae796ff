#!/usr/bin/env bash
# Several DTCN fine-tuning arms at the same time on one GPU (round 4, docs/model-card.md): each arm is a set of
# members of the round-2 recipe with a fixed step count and the final raw weights (no EMA, no evaluation during
# training, no selection), one process per arm; each member is written when it finishes, so an arm stopped by HARD
# keeps the members it finished. Each arm's folder comes back as tars of at most 15 MiB, $OUT/<arm>.<k>.tar
# (gpu_bundle: the device tool returns at most 8 files of 16 MiB; round 4's first call lost an arm's files to that).
#
#   OUT=/some/empty/dir ARMS="E:31,32,33:0.5:1150 F:41,42,43:0.5:1150:--train-on-val" HARD=470 bash src/training/gpu_arms.sh
#
# ARMS: space-separated NAME:SEEDS:UCSD_MIN_SHARE:STEPS[:EXTRA_FLAG] (SEEDS comma-separated; EXTRA_FLAG e.g.
#       --train-on-val). Env: HARD (seconds before each arm is stopped, default 300), PACK, INIT, PYTHON, SMOKE=1.
# Carry .carry/pack/{cls,seg,index.json} and .carry/init.
set -uo pipefail
: "${OUT:?set OUT to an empty output folder}"
: "${ARMS:?set ARMS}"
HARD="${HARD:-300}"
cd "$(dirname "$0")/../.."
source src/training/gpu_common.sh
gpu_start "gpu_arms.sh (arms $ARMS, hard ${HARD}s)" "$PACK/index.json" "$INIT"
SMOKE_FLAG=()
if [ "${SMOKE:-0}" = "1" ]; then SMOKE_FLAG=(--smoke); fi
PIDS=()
NAMES=()
for spec in $ARMS; do
  IFS=: read -r name seeds share steps extra <<< "$spec"
  members=""
  for s in ${seeds//,/ }; do members="$members,$s:$share"; done
  mkdir -p "$OUT/$name"
  (
    PYTHONUNBUFFERED=1 PYTHONPATH=src/training timeout -k 10 "$HARD" "$PY" -u -m covidfn_train.finetune_round \
      --pack "$PACK" --dfsn-init "$INIT" --out "$OUT/$name" --device "$DEVICE" --steps "$steps" --eval-every-s 1e9 \
      --ema-decay 0 --members "${members#,}" --members-only ${extra:+"$extra"} "${SMOKE_FLAG[@]}" \
      > /dev/null 2>> "$OUT/$name/stderr.log"
    echo $? > "$OUT/$name/rc"
  ) &
  PIDS+=($!)
  NAMES+=("$name")
done
wait "${PIDS[@]}"
gpu_stop
RCS=""
for name in "${NAMES[@]}"; do
  RCS="$RCS $name=$(cat "$OUT/$name/rc" 2>/dev/null || echo 99)"
  gpu_bundle "$name"
done
ls -la "$OUT" | tee -a "$OUT/progress.log"
log "gpu_arms.sh end:$RCS"
case "$RCS" in *=[1-9]*) exit 1 ;; esac
