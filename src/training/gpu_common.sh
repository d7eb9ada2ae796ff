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
