# Sourced by the device scripts (gpu_run.sh, gpu_finetune.sh, gpu_arms.sh): one place for the log line, the carried
# inputs check, the environment record, the device choice and the GPU utilisation sampler.
# Expects OUT; PACK, INIT and PYTHON have the defaults below; gpu_start sets DEVICE (cuda when torch sees a GPU, else
# cpu) unless it is set already.

PACK="${PACK:-.carry/pack}"
INIT="${INIT:-.carry/init/dfsn.npz}"
PY="${PYTHON:-python3}"

log() { echo "[$(date -u +%H:%M:%S)Z] $*" | tee -a "$OUT/progress.log"; }

# gpu_start NAME FILE...: logs the start, exits 2 when a carried input is missing, records the environment and
# starts nvidia-smi sampling into $OUT/gpu_util.csv (every 5 s) on a GPU.
gpu_start() {
  local name=$1 f
  shift
  mkdir -p "$OUT"
  log "$name start in $(pwd)"
  for f in "$@"; do
    if [ ! -e "$f" ]; then log "ERROR: $f missing (carry .carry/pack and .carry/init; see docs/model-card.md)"; exit 2; fi
  done
  { uname -a; nvidia-smi 2>&1 | head -15
    "$PY" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
  } >> "$OUT/env.txt" 2>&1
  DEVICE="${DEVICE:-$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}"
  UTIL_PID=""
  if command -v nvidia-smi >/dev/null 2>&1 && [ "$DEVICE" = "cuda" ]; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw,clocks.sm --format=csv -l 5 > "$OUT/gpu_util.csv" 2>&1 &
    UTIL_PID=$!
  fi
}

# gpu_stop: stops the sampler.
gpu_stop() {
  if [ -n "${UTIL_PID:-}" ]; then kill "$UTIL_PID" 2>/dev/null; fi
}

# gpu_bundle NAME: packs the folder $OUT/NAME into tars $OUT/NAME.<k>.tar of at most 15 MiB each and removes the folder.
# The device tool brings back at most 8 files of at most 16 MiB each (64 MiB together); round 4's first call lost an
# arm's 14 files to the count. A single file over 15 MiB gets a tar of its own, which will not come back: logged.
gpu_bundle() {
  local name=$1 part=0 size=0 limit=$((15 * 1024 * 1024)) f s
  local -a list=()
  [ -d "$OUT/$name" ] || return 0
  while IFS= read -r f; do
    s=$(stat -c %s "$OUT/$f")
    if [ "$s" -gt "$limit" ]; then log "WARNING: $f is $s bytes, over what the device tool returns"; fi
    if [ "${#list[@]}" -gt 0 ] && [ $((size + s)) -gt "$limit" ]; then
      tar -C "$OUT" -cf "$OUT/$name.$part.tar" "${list[@]}" || return 1
      part=$((part + 1)); list=(); size=0
    fi
    list+=("$f"); size=$((size + s))
  done < <(cd "$OUT" && find "$name" -type f | sort)
  if [ "${#list[@]}" -gt 0 ]; then tar -C "$OUT" -cf "$OUT/$name.$part.tar" "${list[@]}" || return 1; fi
  rm -rf "${OUT:?}/$name"
}
