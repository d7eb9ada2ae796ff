#!/usr/bin/env bash
# Round 6 (prepared, not run; docs/model-card.md "Round 6 (prepared, not run)"): in ONE device call, a DFSN from the
# ImageNet encoder (round 1's recipe, 75 s; round 1's own DFSN is no longer on disk), then three DTCN arms at the same
# time on the one GPU (covidfn_train/round6.py: C = EMA / control, L = LP-FT, A = stronger augmentation + mixup),
# each 2 members of a fixed 1,150 fine-tuning steps, final weights, nothing chosen on validation.
#
#   OUT=/some/empty/dir bash src/training/gpu_round6.sh     # from the repo root; carry .carry/pack
#
# Writes as it goes: each member when it finishes ($OUT/r6/<arm>/member_<k>.npz, arm C also ema_<k>.npz, metrics.json);
# when an arm's process ends its folder becomes $OUT/r6/<arm>.<k>.tar (<= 15 MiB each; the device tool returns at
# most 8 files of 16 MiB). At HARD seconds after the start every arm still running is stopped (the members it
# finished stay). At the end: $OUT/progress.log (timings, the GPU-pack summary) and $OUT/r6/run.0.tar (DFSN and
# summary metrics, env.txt, gpu_util.csv), six files in all. The pre-registered numbers come afterwards, on CPU:
# `python3 -m covidfn_train.round6_report` (see the model card).
#
# Env: HARD (seconds from the start after which arms are stopped, default 560), DFSN_BUDGET (75), DFSN_HARD (150),
#      ARMS ("C L A"), SEEDS (61,62), STEPS (1150), PACK, PYTHON, DEVICE, SMOKE=1 (CPU check on a smoke pack).
set -uo pipefail
: "${OUT:?set OUT to an empty output folder}"
HARD="${HARD:-560}"
DFSN_BUDGET="${DFSN_BUDGET:-75}"
DFSN_HARD="${DFSN_HARD:-150}"
ARMS="${ARMS:-C L A}"
SEEDS="${SEEDS:-61,62}"
STEPS="${STEPS:-1150}"
T0=$(date +%s)
cd "$(dirname "$0")/../.."
source src/training/gpu_common.sh
NEEDS=("$PACK/index.json" "$PACK/cls" "$PACK/seg" "$PACK/encoder_resnet18.npz")
EXTRA=()
if [ "${SMOKE:-0}" = "1" ]; then EXTRA=(--smoke --threads 1); NEEDS=("${NEEDS[@]:0:3}"); fi  # a smoke pack may lack the encoder
gpu_start "gpu_round6.sh (arms $ARMS, seeds $SEEDS, $STEPS steps, DFSN ${DFSN_BUDGET}s, hard ${HARD}s)" "${NEEDS[@]}"
R6="$OUT/r6"
mkdir -p "$R6/dfsn"
elapsed() { echo $(( $(date +%s) - T0 )); }

# 1. DFSN from the ImageNet encoder (best checkpoint by segmentation val Dice, as round 1)
PYTHONUNBUFFERED=1 PYTHONPATH=src/training timeout -k 10 "$DFSN_HARD" "$PY" -u -m covidfn_train.round6 dfsn \
  --pack "$PACK" --out "$R6/dfsn" --device "$DEVICE" --budget-s "$DFSN_BUDGET" "${EXTRA[@]}" \
  > /dev/null 2> "$R6/dfsn/stderr.log"
RC_DFSN=$?
log "DFSN stage rc=$RC_DFSN after $(elapsed) s: $(grep -o 'DFSN best val Dice [0-9.]*' "$R6/dfsn/progress.log" 2>/dev/null | tail -1)"
if [ ! -s "$R6/dfsn/dfsn.npz" ]; then
  log "ERROR: no dfsn.npz; stderr tail:"; tail -20 "$R6/dfsn/stderr.log" | tee -a "$OUT/progress.log"
  gpu_stop; mv "$OUT/env.txt" "$OUT/gpu_util.csv" "$R6/dfsn/" 2>/dev/null; gpu_bundle r6/dfsn; exit 1
fi

# 2. the arms, one process each, all at once; each bundles its own folder when it ends
LEFT=$(( HARD - $(elapsed) ))
if [ "$LEFT" -lt 30 ]; then LEFT=30; fi
log "arms start after $(elapsed) s, stopped after ${LEFT} s at the latest"
PIDS=()
for name in $ARMS; do
  mkdir -p "$R6/$name"
  (
    PYTHONUNBUFFERED=1 PYTHONPATH=src/training timeout -k 10 "$LEFT" "$PY" -u -m covidfn_train.round6 arm --arm "$name" \
      --pack "$PACK" --dfsn "$R6/dfsn/dfsn.npz" --out "$R6/$name" --device "$DEVICE" --seeds "$SEEDS" --steps "$STEPS" \
      "${EXTRA[@]}" > /dev/null 2> "$R6/$name/stderr.log"
    rc=$?
    echo "$rc" > "$R6/$name/rc"
    log "arm $name ended rc=$rc after $(elapsed) s: $(ls "$R6/$name" | grep -c '^member_') member(s) finished"
    cp "$R6/$name/metrics.json" "$R6/dfsn/arm_$name.json" 2>/dev/null  # for the summary; the folder becomes tars
    gpu_bundle "r6/$name"
    exit "$rc"
  ) &
  PIDS+=($!)
done
RCS=""
i=0
for name in $ARMS; do wait "${PIDS[$i]}"; RCS="$RCS $name=$?"; i=$((i + 1)); done
gpu_stop

# 3. summary (GPU-pack numbers, timings) into progress.log; the rest into one small tar
PYTHONPATH=src/training "$PY" -m covidfn_train.round6 summary --out "$R6" > "$R6/dfsn/summary.txt" 2>&1
tee -a "$OUT/progress.log" < "$R6/dfsn/summary.txt"  # also into the reply's output tail
rm -f "$R6/dfsn/dfsn.npz"  # 12.5 MB; every member carries its own fine-tuned backbone
mv "$R6/summary.json" "$OUT/env.txt" "$OUT/gpu_util.csv" "$R6/dfsn/" 2>/dev/null
mv "$R6/dfsn" "$R6/run"
gpu_bundle r6/run
ls -la "$OUT" "$R6" | tee -a "$OUT/progress.log"
log "gpu_round6.sh end after $(elapsed) s: arm exit codes$RCS (124/137: stopped at HARD)"
case "$RCS" in *=[1-9]*) exit 1 ;; esac
