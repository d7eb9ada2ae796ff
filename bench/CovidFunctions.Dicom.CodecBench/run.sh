#!/usr/bin/env bash
# Pixel codec decode throughput (docs/benchmarks.md, "Pixel codecs").
# 1. the transfer-syntax copies of cornerstone's CTImage.dcm (512x512 int16);
# 2. the lung-pet-ct-dx CT series recompressed with gdcmconv (RLE, JPEG lossless SV1, JPEG-LS, JPEG 2000 lossless)
#    into a temporary folder, each decode checked byte for byte against the original slice.
# Usage: bench/CovidFunctions.Dicom.CodecBench/run.sh [min-seconds per set, default 5]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
data="${COVIDFN_SHARED_DATA:-$repo/../shared/data}"
seconds="${1:-5}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

dotnet build -c Release -v q "$here" >/dev/null
bench=(dotnet "$here/bin/Release/net10.0/CovidFunctions.Dicom.CodecBench.dll")

echo -e "set\tsyntax\tframes\tdecodes\tMB/s\tms/frame\tratio\tmismatches"
ct="$data/dicom/conformance/cornerstone-wado-testimages"
for copy in "$ct"/CTImage.dcm_*; do
  uid="$(sed -E 's/.*_(1\.2\.840\.[0-9.]+)\.dcm$/\1/' <<<"$copy")"
  case "$uid" in 1.2.840.10008.1.2 | 1.2.840.10008.1.2.1 | 1.2.840.10008.1.2.2 | 1.2.840.10008.1.2.1.99) continue ;; esac
  mkdir -p "$work/ct/$uid" && ln -s "$copy" "$work/ct/$uid/CTImage.dcm"
  "${bench[@]}" "$seconds" "CTImage" "$work/ct/$uid"
done

mkdir -p "$work/raw" "$work/rle" "$work/jpegll" "$work/jls" "$work/j2k"
i=0
while IFS= read -r slice; do
  i=$((i + 1)); name="$(printf '%03d.dcm' "$i")"
  cp "$slice" "$work/raw/$name"
  gdcmconv --rle "$slice" "$work/rle/$name"
  gdcmconv --jpeg "$slice" "$work/jpegll/$name"
  gdcmconv --jpegls "$slice" "$work/jls/$name"
  gdcmconv --j2k "$slice" "$work/j2k/$name"
done < <(find "$data/dicom/chest-ct/lung-pet-ct-dx" -name '*.dcm' | sort)
for set in rle jpegll jls j2k; do
  "${bench[@]}" "$seconds" "lung-pet-ct-dx" "$work/$set" "$work/raw"
done
