#!/usr/bin/env bash
# Before/after comparison of two covidfn builds against gdcmanon -e, alternating runs, on the input that run.sh
# prepared (docs/benchmarks.md, "De-identification"). Usage: tools/deid-bench/ab.sh BEFORE_BIN AFTER_BIN [RUNS=9]
# where *_BIN are ReadyToRun publish folders (dotnet publish src/CovidFunctions.Cli -c Release -r linux-x64
# --self-contained false -p:PublishReadyToRun=true -o DIR) of the two commits.
set -euo pipefail
BEFORE="$1"; AFTER="$2"; RUNS="${3:-9}"
W="${DEID_BENCH_DIR:-/tmp/covidfn-deid-bench}"
[ -d "$W/in" ] || { echo "run tools/deid-bench/run.sh first (it prepares $W/in)" >&2; exit 2; }
find "$W/in" -name '*.dcm' -exec cat {} + > /dev/null # warm the page cache
t() { /usr/bin/time -f "%e %U %S" -o "$W/t" "$@" > /dev/null 2>&1; cat "$W/t"; }
: > "$W/ab-before"; : > "$W/ab-after"; : > "$W/ab-gdcm"
for _ in $(seq 1 "$RUNS"); do
  rm -rf "$W/ob" "$W/oa" "$W/og"; mkdir -p "$W/og"
  t "$BEFORE/covidfn" deid "$W/in" "$W/ob" --key-file "$W/deid.key" >> "$W/ab-before"
  t "$AFTER/covidfn" deid "$W/in" "$W/oa" --key-file "$W/deid.key" >> "$W/ab-after"
  t gdcmanon -e -c "$W/cert.pem" -i "$W/in" -o "$W/og" -r >> "$W/ab-gdcm"
done
med() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for s in before after gdcm; do
  f="$W/ab-$s"
  echo "$s: median wall $(cut -d' ' -f1 "$f" | med) s, user $(cut -d' ' -f2 "$f" | med) s, sys $(cut -d' ' -f3 "$f" | med) s, CPU $(awk '{print $2 + $3}' "$f" | med) s; runs (wall user sys): $(tr '\n' ';' < "$f")"
done
echo "load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" cores=$(nproc)"
