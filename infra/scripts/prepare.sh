#!/usr/bin/env bash
# Installs what the tests and the local host need, idempotently, on a fresh Debian machine with the .NET SDK.
# Debian packages: DICOM peers (dcmtk, gdcm, dicom3tools, pydicom) used as independent checks, the native
# JPEG 2000 / JPEG-LS codecs, and PyTorch + onnx for src/training (run with /usr/bin/python3).
set -euo pipefail

APT_PACKAGES=(
  dcmtk libgdcm-tools dicom3tools python3-pydicom
  python3-nibabel  # independent NIfTI reader/writer for the CLI's 3-D contract (tests/CovidFunctions.Cli.Tests/volume_contract.py)
  libopenjp2-7 libcharls2
  python3-numpy python3-pil python3-scipy python3-torch python3-onnx
  fonts-dejavu-core
  shellcheck  # lints infra/scripts/postdeploy.sh (tests/CovidFunctions.Deployment.Tests)
  chromium tesseract-ocr tesseract-ocr-eng  # report screenshot test: render the HTML report, read its text back
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]})); then
  echo "prepare: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The pinned Azurite (infra/azurite/package-lock.json) that `covidfn up` and the storage integration tests start.
AZURITE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../azurite" && pwd)"
if [ ! -f "$AZURITE_DIR/node_modules/azurite/dist/src/azurite.js" ]; then
  echo "prepare: installing the pinned Azurite in $AZURITE_DIR" >&2
  npm ci --prefix "$AZURITE_DIR" --no-audit --no-fund --loglevel=error >/dev/null
fi
