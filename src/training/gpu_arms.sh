#!/usr/bin/env bash
# Several DTCN fine-tuning arms at the same time on one GPU (round 4b, docs/model-card.md): each arm is a set of
# members of the round-2 recipe with final raw weights (no EMA, no evaluation during training, no selection), one
# process per arm. Each arm's folder comes back as one tar ($OUT/<arm>.tar; the device tool returns at most 8 files).
#
#   OUT=/some/empty/dir ARMS="U:51,52:1.0:1150 S:51,52:0.5:600" bash src/training/gpu_arms.sh
#
# ARMS: space-separated NAME:SEEDS:UCSD_MIN_SHARE:STEPS[:EXTRA_FLAG] (SEEDS comma-separated, EXTRA_FLAG e.g.
#       --train-on-val). Env: HARD (seconds before each arm is stopped, default 300), PACK, INIT, PYTHON, SMOKE=1.
set -uo pipefail
: "${OUT:?set OUT to an empty output folder}"
: "${ARMS:?set ARMS}"
PACK="${PACK:-.carry/pack}"
INIT="${INIT:-.carry/init/dfsn.npz}"
PY="${PYTHON:-python3}"
HARD="${HARD:-300}"
cd "$(dirname "$0")/../.."
mkdir -p "$OUT"
log() { echo "[$(date -u +%H:%M:%S)Z] $*" | tee -a "$OUT/progress.log"; }
log "gpu_arms.sh start in $(pwd): arms $ARMS, hard ${HARD}s"
for f in "$PACK/index.json" "$INIT"; do
  if [ ! -f "$f" ]; then log "ERROR: $f missing (carry .carry/pack and .carry/init)"; exit 2; fi
done
DEVICE="${DEVICE:-$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}"
SMOKE_FLAG=()
if [ "${SMOKE:-0}" = "1" ]; then SMOKE_FLAG=(--smoke); fi
UTIL_PID=""
if command -v nvidia-smi >/dev/null 2>&1 && [ "$DEVICE" = "cuda" ]; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw,clocks.sm --format=csv -l 5 > "$OUT/gpu_util.csv" 2>&1 &
  UTIL_PID=$!
fi
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
if [ -n "$UTIL_PID" ]; then kill "$UTIL_PID" 2>/dev/null; fi
RCS=""
for name in "${NAMES[@]}"; do
  RCS="$RCS $name=$(cat "$OUT/$name/rc" 2>/dev/null || echo 99)"
  tar -C "$OUT" -cf "$OUT/$name.tar" "$name" && rm -rf "${OUT:?}/$name"
done
log "gpu_arms.sh end:$RCS"
ls -la "$OUT"
case "$RCS" in *=[1-9]*) exit 1 ;; esac
