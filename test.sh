#!/usr/bin/env bash
# The test command (README): prepares this machine (idempotent), then builds and runs every test project.
# Usage: ./test.sh [extra dotnet test arguments]
set -euo pipefail
cd "$(dirname "$0")"
./infra/scripts/prepare.sh
dotnet build CovidFunctions.sln -c Release -warnaserror 2>&1 | tail -n 5
dotnet test CovidFunctions.sln -c Release --no-build --logger "console;verbosity=normal" "$@"
