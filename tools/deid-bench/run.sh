#!/usr/bin/env bash
# De-identification benchmark (docs/benchmarks.md, "De-identification"): covidfn deid vs gdcmanon -e on the same files,
# whole process included, warm page cache, median of N runs each, alternating.
# Usage: tools/deid-bench/run.sh [REPLICAS=5] [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/../.."
REPLICAS="${1:-5}"
RUNS="${2:-5}"
WORK="${DEID_BENCH_DIR:-/tmp/covidfn-deid-bench}"
SHARED="${COVIDFN_SHARED_DATA:-../shared/data}"
rm -rf "$WORK" && mkdir -p "$WORK/in"

# Input: the ORIGINAL\PRIMARY CT files (60 Lung-PET-CT-Dx + 12 COVID-19-NY-SBU axial), replicated with new SOP Instance
# UIDs (dcmodify -gin) and with (0012,0062-0064) cleared, since gdcmanon refuses files already marked de-identified.
mapfile -t SRC < <(find "$SHARED/dicom/chest-ct/lung-pet-ct-dx" "$SHARED/dicom/chest-ct/covid19-ny-sbu" -name '*.dcm' \
  \( -path '*lung-pet-ct-dx*' -o -path '*/axial/*' \) | sort)
n=0
for r in $(seq 1 "$REPLICAS"); do
  mkdir -p "$WORK/in/r$r"
  for f in "${SRC[@]}"; do
    n=$((n + 1))
    cp "$f" "$WORK/in/r$r/$n.dcm"
  done
  dcmodify -q -nb -gin -ie -ea "(0012,0062)" -ea "(0012,0063)" -ea "(0012,0064)" "$WORK"/in/r$r/*.dcm
done
FILES=$(find "$WORK/in" -name '*.dcm' | wc -l)
BYTES=$(find "$WORK/in" -name '*.dcm' -printf '%s\n' | awk '{s+=$1} END {print s}')

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 1 -subj "/CN=deid-bench" 2>/dev/null

# ReadyToRun (precompiled) framework-dependent publish: as a deployment would run it; JIT is most of a cold start.
# COVIDFN_BIN=<folder> reuses an earlier publish.
if [ -z "${COVIDFN_BIN:-}" ]; then
  dotnet publish src/CovidFunctions.Cli/CovidFunctions.Cli.csproj -c Release -r linux-x64 --self-contained false \
    -p:PublishReadyToRun=true -o "$WORK/covidfn" -v q -nologo 2>&1 | tail -n 2
  COVIDFN_BIN="$WORK/covidfn"
fi
COVIDFN="$COVIDFN_BIN/covidfn"
find "$WORK/in" -name '*.dcm' -exec cat {} + > /dev/null # warm the page cache

# Wall, user and system seconds of the whole process.
time_it() { /usr/bin/time -f "%e %U %S" -o "$WORK/t" "$@" > /dev/null 2>&1; cat "$WORK/t"; }
declare -a TC TG
for i in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/out-c" "$WORK/out-g"; mkdir -p "$WORK/out-g"
  TC+=("$(time_it "$COVIDFN" deid "$WORK/in" "$WORK/out-c" --key-file "$WORK/deid.key" | tr ' ' ',')")
  TG+=("$(time_it gdcmanon -e -c "$WORK/cert.pem" -i "$WORK/in" -o "$WORK/out-g" -r | tr ' ' ',')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wall() { for t in "$@"; do echo "${t%%,*}"; done; }
cpu() { for t in "$@"; do IFS=, read -r _ u s <<< "$t"; echo "$u + $s" | bc; done; }
MC=$(median $(wall "${TC[@]}")); MG=$(median $(wall "${TG[@]}"))
CC=$(median $(cpu "${TC[@]}")); CG=$(median $(cpu "${TG[@]}"))
OUT_C=$(find "$WORK/out-c" -name '*.dcm' | wc -l); OUT_G=$(find "$WORK/out-g" -type f | wc -l)
echo "files=$FILES bytes=$BYTES cores=$(nproc) load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\""
echo "covidfn runs (wall,user,sys): ${TC[*]}"
echo "gdcmanon runs (wall,user,sys): ${TG[*]}"
awk -v f="$FILES" -v b="$BYTES" -v t="$MC" -v c="$CC" -v o="$OUT_C" 'BEGIN {printf "covidfn deid:  median wall %.3f s  %.0f inst/s  %.1f MB/s  | median CPU %.3f s  %.0f inst/CPU-s  (%d written)\n", t, f/t, b/1e6/t, c, f/c, o}'
awk -v f="$FILES" -v b="$BYTES" -v t="$MG" -v c="$CG" -v o="$OUT_G" 'BEGIN {printf "gdcmanon -e:   median wall %.3f s  %.0f inst/s  %.1f MB/s  | median CPU %.3f s  %.0f inst/CPU-s  (%d written)\n", t, f/t, b/1e6/t, c, f/c, o}'
